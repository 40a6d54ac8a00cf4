"""Remake the README's pictures of a lesson and its widget, from the real JupyterLab.

    python tests/browser/readme_images.py          # writes docs/img/*.png
    python tests/browser/readme_images.py viewer   # only the 3D viewer's picture
    python tests/browser/readme_images.py hub      # only the JupyterHub class's pictures

Runs lesson 1 in JupyterLab under headless Chromium (the same set-up as the browser tests),
photographs the top of the lesson, the splat explorer and the fit scrubber, and stores them
as small PNGs (each must stay under MAX_BYTES, so the repository stays light). The 3D viewer's
picture is the trained axe of `splatcourse renderer-model` (built if missing; it needs the
real capture) in the live viser viewer, with the capture's cameras. The JupyterHub pictures (a
student's Assignment List, a feedback page a student fetched) are two of the photographs the
hub test (test_browser_hub.py) takes; `hub` runs it (a few minutes).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from lab_driver import (
    LabServer,
    cell,
    chromium_path,
    click_button,
    drag_slider,
    find_cell,
    launch_chromium,
    open_notebook,
    run_cells,
    widget_images,
)

from splatcourse.paths import repo_root

LESSON = "lessons/01_splats_in_2d.ipynb"
MAX_BYTES = 150_000


def small_png(png: bytes, path: Path, width: int) -> int:
    """Shrink to `width` pixels and store as the smallest PNG that keeps the colours honest:
    full colour if it fits under MAX_BYTES, else a 256-colour palette."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="png", optimize=True)
    if buffer.tell() >= MAX_BYTES:
        buffer = io.BytesIO()
        image.quantize(256, method=Image.Quantize.FASTOCTREE).save(
            buffer, format="png", optimize=True
        )
    path.write_bytes(buffer.getvalue())
    return buffer.tell()


def viewer_png(playwright, executable: str) -> bytes:
    """The trained axe in the live 3D viewer, pulled back from a held-out camera so that the
    cameras around it show."""
    from splatcourse.capture import COURSE_CAPTURE
    from splatcourse.train.recipes import grading_capture
    from splatcourse.train.renderer_model import (
        RENDERER_MODEL_WIDTH,
        build_renderer_model,
        load_renderer_model,
    )
    from splatcourse.ui.splat_view import view_splats

    build_renderer_model()
    capture = grading_capture(COURSE_CAPTURE, RENDERER_MODEL_WIDTH)
    view = view_splats(load_renderer_model()["params"], capture, live=True)
    context, profile = launch_chromium(playwright, executable)
    try:
        page = context.new_page()
        page.set_viewport_size({"width": 1100, "height": 640})
        page.goto(f"http://127.0.0.1:{view.port}/")
        page.locator("canvas").first.wait_for(state="visible")
        page.add_style_tag(content=".mantine-Notification-root { display: none; }")
        page.mouse.move(550, 320)
        page.mouse.wheel(0, 500)  # back away from the held-out camera, to see the others
        page.mouse.down()
        page.mouse.move(400, 260, steps=10)  # and orbit a little
        page.mouse.up()
        page.wait_for_timeout(6000)  # software WebGL: a few seconds to sort and draw
        return page.screenshot()
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)
        view.stop()


def lesson_pngs(playwright, executable: str) -> list[tuple[str, bytes, int]]:
    """(name, png, width) of lesson 1's top, its splat explorer and its fit scrubber."""
    lab = LabServer(repo_root()).start()
    try:
        context, profile = launch_chromium(playwright, executable)
        page = context.new_page()
        page.set_viewport_size({"width": 1280, "height": 1100})
        open_notebook(page, lab, LESSON)
        page.evaluate("window.jupyterapp.commands.execute('application:toggle-left-area')")
        explorer = find_cell(lab.root / LESSON, "SplatExplorer(")
        scrubber = find_cell(lab.root / LESSON, "FitScrubber(")
        run_cells(page, 0, explorer)

        page.evaluate("""() => {
            const panel = window.jupyterapp.shell.currentWidget;
            panel.content.activeCellIndex = 0;
            panel.node.querySelectorAll('*').forEach(el => { el.scrollTop = 0; }); }""")
        page.wait_for_timeout(800)
        lesson_png = page.locator(".jp-NotebookPanel").first.screenshot()

        widget_images(page, scrubber)
        scrubber_out = cell(page, scrubber).locator(".jp-Cell-outputWrapper")
        drag_slider(page, scrubber, "snapshot", fraction=0.06)
        page.wait_for_timeout(1500)
        scrubber_png = scrubber_out.screenshot()

        widget_images(page, explorer)
        click_button(page, explorer, "depth-sorted alpha compositing")
        drag_slider(page, explorer, "angle °", fraction=0.2)
        page.wait_for_timeout(1500)
        explorer_png = cell(page, explorer).locator(".jp-Cell-outputWrapper").screenshot()
        context.close()
        shutil.rmtree(profile, ignore_errors=True)
    finally:
        lab.stop()
    return [
        ("lesson01.png", lesson_png, 900),
        ("splat_explorer.png", explorer_png, 900),
        ("fit_scrubber.png", scrubber_png, 800),
    ]


#: README picture <- the hub test's photograph (in its artifacts folder)
HUB_PICTURES = {
    "hub_assignment_list.png": "hub-assignment-list.png",
    "hub_feedback.png": "hub-feedback.png",
}


def hub_pngs() -> list[tuple[str, bytes, int]]:
    """(name, png, width) of the hub test's two README pictures: it runs with its own
    artifacts folder."""
    artifacts = Path(tempfile.mkdtemp(prefix="splatcourse-hub-images-"))
    test = Path(__file__).parent / "test_browser_hub.py"
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:xdist",
                "-q",
                "-m",
                "browser",
                f"{test}::test_one_exercise_through_a_real_hub",
            ],
            env={**os.environ, "SPLATCOURSE_ARTIFACTS": str(artifacts), "OMP_NUM_THREADS": "1"},
            check=True,
        )
        shots = artifacts / "screenshots"
        return [(name, (shots / shot).read_bytes(), 900) for name, shot in HUB_PICTURES.items()]
    finally:
        shutil.rmtree(artifacts, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="?", choices=["lesson", "viewer", "hub"], help="one set only")
    parser.add_argument("--out", type=Path, default=repo_root() / "docs" / "img")
    args = parser.parse_args()
    executable = chromium_path()
    if executable is None:
        sys.exit("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    images = []
    with sync_playwright() as playwright:
        if args.only in (None, "lesson"):
            images += lesson_pngs(playwright, executable)
        if args.only in (None, "viewer"):
            images.append(("splat_viewer.png", viewer_png(playwright, executable), 900))
    if args.only in (None, "hub"):
        images += hub_pngs()
    for name, png, width in images:
        size = small_png(png, args.out / name, width)
        print(f"{args.out / name}: {size / 1000:.0f} kB")
        if size >= MAX_BYTES:
            sys.exit(f"{name} is {size} bytes, over the {MAX_BYTES} limit")


if __name__ == "__main__":
    main()
