"""A slow widget previews while its slider moves and draws in full once it rests."""

from __future__ import annotations

import asyncio
from io import BytesIO

from PIL import Image

from splatcourse.ui.throttle import PreviewThenSettle
from splatcourse.ui.widgets3d import PREVIEW_SHRINK, GaussianExplorer3D

DELAY = 0.05


def counting() -> tuple[PreviewThenSettle, list[str]]:
    calls: list[str] = []
    throttle = PreviewThenSettle(
        lambda: calls.append("preview"), lambda: calls.append("full"), delay=DELAY
    )
    return throttle, calls


def test_without_an_event_loop_every_change_draws_in_full():
    throttle, calls = counting()
    throttle.changed()
    throttle.changed()
    assert calls == ["full", "full"] and not throttle.pending


def test_a_drag_previews_each_move_and_draws_in_full_once_at_rest():
    async def drag() -> list[str]:
        throttle, calls = counting()
        for _ in range(5):  # moves closer together than the settle delay
            throttle.changed()
            await asyncio.sleep(DELAY / 5)
        assert calls == ["preview"] * 5 and throttle.pending
        await asyncio.sleep(3 * DELAY)
        assert not throttle.pending
        return calls

    assert asyncio.run(drag()) == ["preview"] * 5 + ["full"]


def test_explorer_previews_at_lower_resolution_then_catches_up():
    async def drag() -> None:
        explorer = GaussianExplorer3D(width=64, height=48)
        full_png = explorer.render_view.value
        renders = explorer.render_count
        explorer.sliders["yaw"].value = 40.0
        explorer.sliders["yaw"].value = 50.0
        assert explorer.preview_count == 2 and explorer.render_count == renders
        assert explorer.render_view.value != full_png  # the preview is on screen at once
        assert explorer.values["yaw"] == 50.0
        # the model is current at once; only the picture waits for the full redraw
        assert explorer.cov3d is not None and explorer.camera.width == 64
        await asyncio.sleep(0.5)
        assert explorer.render_count == renders + 1
        assert explorer.image.shape == (48, 64, 3)

    asyncio.run(drag())


def test_explorer_preview_has_fewer_pixels_shown_at_the_same_size():
    explorer = GaussianExplorer3D(width=64, height=48)
    full = explorer.render_view.value
    explorer.preview()
    preview = explorer.render_view.value
    full_size = Image.open(BytesIO(full)).size
    assert Image.open(BytesIO(preview)).size == full_size
    # nearest-neighbour enlargement: every PREVIEW_SHRINK x PREVIEW_SHRINK block is one colour
    pixels = Image.open(BytesIO(preview)).convert("RGB")
    block = PREVIEW_SHRINK * explorer.zoom
    corner = [pixels.getpixel((x, y)) for x in range(block) for y in range(block)]
    centre_x, centre_y = full_size[0] // 2 // block * block, full_size[1] // 2 // block * block
    middle = [
        pixels.getpixel((centre_x + x, centre_y + y)) for x in range(block) for y in range(block)
    ]
    assert len(set(corner)) == 1 and len(set(middle)) == 1
