"""Every lesson widget, used with the mouse in JupyterLab: does the picture really change?

A widget can pass every headless test and still be dead in the browser (a missing front-end
extension, a comm that never connects, an image that never redraws). Here the lesson runs in
JupyterLab, the test drags a slider or presses a button, and compares screenshots of the
widget's image before and after.

To cover a new lesson or widget, add one line to CASES.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from lab_driver import (
    cell,
    click_button,
    drag_slider,
    find_cell,
    save_png,
    screenshot,
    wait_for_change,
    widget_images,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@dataclass(frozen=True)
class Case:
    """lesson: notebook in lessons/; cell: text of the code cell that shows the widget;
    action: "drag <slider label>", "click <button text>" or "play" (the Play button);
    view: which image of the widget must change (0 = the first, e.g. the render)."""

    lesson: str
    cell: str
    action: str
    view: int = 0

    @property
    def id(self) -> str:
        text = f"{self.lesson.removesuffix('.ipynb')}-{self.cell}-{self.action}"
        return re.sub(r"_*-_*", "-", re.sub(r"[^A-Za-z0-9_-]+", "_", text)).strip("_")


CASES = [
    Case("01_splats_in_2d.ipynb", "FitScrubber(", "drag snapshot"),
    Case("01_splats_in_2d.ipynb", "SplatExplorer(", "drag x"),
    Case("01_splats_in_2d.ipynb", "SplatExplorer(", "click add Gaussian"),
    Case("02_colour.ipynb", "FitScrubber(", "play"),
    Case("02_colour.ipynb", "SplatExplorer(", "drag width ↔"),
    Case("02_colour.ipynb", "SplatExplorer(", "click remove it"),
    Case("03_one_gaussian_3d.ipynb", "GaussianExplorer3D(", "drag yaw °"),
    Case("03_one_gaussian_3d.ipynb", "GaussianExplorer3D(", "drag cam distance"),
    Case("04_rendering_a_cloud.ipynb", "SceneOrbiter(ring)", "drag azimuth °"),
    Case("04_rendering_a_cloud.ipynb", "SceneOrbiter(scenes.occluding", "click sum (no order)"),
]


def act(page, index: int, action: str) -> None:
    verb, _, what = action.partition(" ")
    if verb == "drag":
        drag_slider(page, index, what)
    elif verb == "click":
        click_button(page, index, what)
    elif verb == "play":
        cell(page, index).locator(".widget-play button").first.click()
    else:
        raise ValueError(f"unknown action {action!r} (use drag/click/play)")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_widget_redraws_in_the_browser(case: Case, lab, notebooks, shots):
    path = f"lessons/{case.lesson}"
    index = find_cell(lab.root / path, case.cell)
    page = notebooks.run_to(path, index)

    images = widget_images(page, index)
    assert images.count() > case.view, (
        f"{case.lesson} cell {index}: expected at least {case.view + 1} widget images, "
        f"found {images.count()}"
    )
    view = images.nth(case.view)
    view.scroll_into_view_if_needed()
    before = screenshot(view)
    output = cell(page, index).locator(".jp-Cell-outputWrapper")
    output.screenshot(path=shots / f"{case.id}-before.png")

    act(page, index, case.action)
    after, fraction = wait_for_change(view, before)

    output.screenshot(path=shots / f"{case.id}-after.png")
    save_png(before, shots / f"{case.id}-view-before.png")
    save_png(after, shots / f"{case.id}-view-after.png")
    assert fraction >= 0.005, (
        f"{case.lesson}: after '{case.action}' on the widget in cell {index}, only "
        f"{fraction:.2%} of its image changed; screenshots in {shots}"
    )
