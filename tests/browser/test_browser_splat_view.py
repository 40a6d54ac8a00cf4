"""The viser splat viewer in JupyterLab: live and as a snapshot, does it draw and follow the mouse?

A small notebook (lesson 4's ring, 250 Gaussians: headless Chromium draws WebGL in software)
shows the viewer both ways. The splats count as drawn when hiding them from Python changes the
picture; the camera counts as free when a mouse drag changes it. The viewer's web client
ships inside viser's wheel, so nothing may leave the machine: every request to a host other
than loopback is refused and fails the test.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import nbformat
import numpy as np
import pytest
from lab_driver import cell, changed_fraction, open_notebook, run_cells, save_png, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOK = "splat_view_check.ipynb"
CELLS = [
    "from splatcourse.splat3d import scenes\nfrom splatcourse.ui.splat_view import view_splats\n"
    "ring = scenes.sh_cloud()",
    "live = view_splats(ring, live=True, height=360)\nlive",
    "live.splats.visible = False",
    "live.splats.visible = True",
    "snapshot = view_splats(ring, height=360)\nsnapshot",
    "snapshot.splats.visible = False\nsnapshot",  # the same snapshot, splats hidden
]
LIVE, HIDE_LIVE, SHOW_LIVE, SHOWN, HIDDEN = range(1, 6)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MIN_CHANGE = 0.005  # of the viewer's pixels


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in {"data", "blob", "about"} or parts.hostname in LOOPBACK


@pytest.fixture(scope="module")
def viewer_page(lab, browser):
    """The check notebook, run in a page that refuses (and lists) every outside request."""
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(c) for c in CELLS],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    nbformat.write(nb, lab.root / NOTEBOOK)
    page = browser.new_page()
    outside: list[str] = []

    def guard(route) -> None:
        if is_local(route.request.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    def guard_websocket(ws) -> None:
        if is_local(ws.url):
            ws.connect_to_server()
        else:
            outside.append(ws.url)
            ws.close()

    page.route("**/*", guard)
    page.route_web_socket("**/*", guard_websocket)  # page.on("websocket") misses iframes
    open_notebook(page, lab, NOTEBOOK)
    run_cells(page, 0, 0)
    yield page, outside
    page.close()
    lab.shutdown_kernels()
    assert not outside, f"requests tried to leave the machine: {outside}"


def viewer(page, index: int):
    frame = cell(page, index).locator("iframe.splatcourse-splat-view")
    frame.scroll_into_view_if_needed()
    return frame


def scene_pixels(locator) -> np.ndarray:
    """The middle of the viewer, where the splats are drawn: clear of viser's control panel
    (right) and its notices (left), whose icons also change when the splats are hidden."""
    image = screenshot(locator)
    h, w = image.shape[:2]
    return image[int(0.15 * h) : int(0.85 * h), int(0.35 * w) : int(0.65 * w)]


def coloured(image: np.ndarray) -> float:
    """Share of pixels away from the viewer's white background."""
    return float(((255 - image.astype(int)).max(axis=-1) > 12).mean())


def drawn(locator, timeout: float = 90.0) -> np.ndarray:
    """The middle of the viewer once the splats show there (software WebGL is slow to start)."""
    locator.content_frame.locator("canvas").first.wait_for(state="visible", timeout=90_000)
    deadline = time.monotonic() + timeout
    while coloured(scene_pixels(locator)) < 0.05:
        assert time.monotonic() < deadline, f"no splats drawn in the viewer after {timeout} s"
        time.sleep(0.5)
    time.sleep(1.0)  # let the sort settle
    return scene_pixels(locator)


def changed_scene(locator, before: np.ndarray, timeout: float = 60.0) -> np.ndarray:
    """The middle of the viewer once it differs from `before` (or after `timeout`): a change
    reaches the picture only after the next depth sort, which software WebGL takes a while to do."""
    deadline = time.monotonic() + timeout
    while changed_fraction(before, after := scene_pixels(locator)) < MIN_CHANGE:
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return after


def centre_of(locator) -> tuple[float, float]:
    box = locator.bounding_box()
    assert box is not None, "the viewer is not on the page"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def drag(page, locator) -> None:
    x, y = centre_of(locator)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 120, y + 40, steps=12)
    page.mouse.up()


def assert_changed(before, after, what: str, shots, name: str) -> None:
    fraction = changed_fraction(before, after)
    save_png(before, shots / f"splat_view-{name}-before.png")
    save_png(after, shots / f"splat_view-{name}-after.png")
    assert fraction >= MIN_CHANGE, (
        f"{what}: only {fraction:.2%} of the viewer changed; screenshots in {shots}"
    )


def test_live_viewer_draws_the_splats_and_follows_the_mouse(viewer_page, shots):
    page, outside = viewer_page
    run_cells(page, LIVE, LIVE)
    frame = viewer(page, LIVE)
    shown = drawn(frame)
    run_cells(page, HIDE_LIVE, HIDE_LIVE)
    hidden = changed_scene(frame, shown)
    assert_changed(shown, hidden, "live: hiding the splats", shots, "live-hide")
    assert coloured(hidden) < 0.01, "live: splats still drawn after hiding them"
    run_cells(page, SHOW_LIVE, SHOW_LIVE)
    before = drawn(frame)
    drag(page, frame)
    assert_changed(before, changed_scene(frame, before), "live: a mouse drag", shots, "live-drag")
    # one software-WebGL viewer at a time: with three on the page, the first one
    # sometimes stopped redrawing
    page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    assert not outside, f"requests tried to leave the machine: {outside}"


def test_snapshot_draws_the_splats_and_follows_the_mouse(viewer_page, shots):
    page, outside = viewer_page
    run_cells(page, SHOWN, HIDDEN)
    hidden_frame = viewer(page, HIDDEN)
    hidden_frame.content_frame.locator("canvas").first.wait_for(state="visible")
    time.sleep(2.0)  # what a drawn frame would have shown by now
    hidden = scene_pixels(hidden_frame)
    shown_frame = viewer(page, SHOWN)
    shown = drawn(shown_frame)
    assert_changed(hidden, shown, "snapshot: splats hidden against shown", shots, "snap-hide")
    drag(page, shown_frame)
    after = changed_scene(shown_frame, shown)
    assert_changed(shown, after, "snapshot: a mouse drag", shots, "snap-drag")
    assert not outside, f"requests tried to leave the machine: {outside}"
