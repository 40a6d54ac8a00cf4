"""A student's first hour, walked in the browser exactly as the README tells it.

JupyterLab starts the way `make lab` starts it (`splatcourse lab`, over a throw-away copy of
the course). The student reads and runs lesson 1, opens the course home page from the file
browser, presses Start on exercise 1, opens their copy in `work/` from the home page's link,
types the answers, presses Validate, and hands in with `splatcourse submit`; the instructor
unzips the file and grades it with `splatcourse autograde`. Full marks, or the test says which
step broke. Every step is photographed (`first-hour-NN-*.png` in the artifacts folder) and the
time each took is written to `first-hour-timings.json` beside them.
"""

from __future__ import annotations

import json
import time
import zipfile

import nbformat
import pytest
from lab_driver import (
    CourseLab,
    answer_cells,
    cell,
    press_validate,
    run_cells,
    type_answers,
    wait_for_notebook,
)

from splatcourse import student
from splatcourse.grading.harness import cell_scores
from splatcourse.grading.instructor import Course
from splatcourse.paths import repo_root

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: the README's "Your first hour" steps, in order (tests/test_student.py checks they agree)
STEPS = [
    "`make lab`",
    "Run lesson 1",
    "Open the course home page",
    "Start exercise 1",
    "Open your copy",
    "Press Validate",
    "Hand it in",
]
EXERCISE = "ex01_toy_splats"
STUDENT = "student1"
WORK_COPY = f"work/{EXERCISE}/{EXERCISE}.ipynb"


@pytest.fixture(scope="module")
def course_lab(browser_ready):
    server = CourseLab(repo_root()).start()
    yield server
    server.stop()


def open_from_file_browser(page, path: str) -> None:
    """Double-click through the file browser's folders to `path`, from the course root."""
    page.locator(".jp-BreadCrumbs-home").click()
    for name in path.split("/"):
        item = page.locator(".jp-DirListing-item").filter(
            has=page.locator(".jp-DirListing-itemText", has_text=name)
        )
        item.first.dblclick()


def code_cells(notebook) -> list[int]:
    nb = nbformat.read(notebook, as_version=4)
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def test_first_hour_lesson_1_to_a_graded_exercise(course_lab, browser, shots, tmp_path):
    lab, timings = course_lab, {}
    page = browser.new_page()
    step = iter(range(1, 100))

    def photograph(what: str) -> None:
        page.screenshot(path=shots / f"first-hour-{next(step):02d}-{what}.png")

    # 1. `make lab`: the front page opens lesson 1 (JupyterLab was started by `splatcourse lab`)
    page.goto(lab.home_url())
    wait_for_notebook(page, student.FIRST_LESSON)
    photograph("lesson-1-in-front")

    # 2. Run lesson 1, top to bottom
    last = len(nbformat.read(lab.root / student.FIRST_LESSON, as_version=4).cells) - 1
    started = time.perf_counter()
    run_cells(page, 0, last)
    timings["lesson_1_run_s"] = round(time.perf_counter() - started, 1)
    photograph("lesson-1-run")
    lab.shutdown_kernels()

    # 3. Open the course home page from the file browser, which shows the whole course. Once
    # in CI the listing showed "lessons" (the course folder) and then, for 60 s, no
    # "exercises": the file browser had left the course folder by itself (the cause is not
    # known; no picture was taken). A student would click the home icon again, and so does
    # this test, once, keeping a picture of what it saw.
    listing = page.locator(".jp-DirListing-content")

    def course_folders_shown(timeout_ms: float) -> bool:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout  # (skipped if missing)

        try:
            for folder in ("lessons", "exercises"):
                listing.get_by_text(folder, exact=True).wait_for(timeout=timeout_ms)
        except PlaywrightTimeout:
            return False
        return True

    page.locator(".jp-BreadCrumbs-home").click()
    if not course_folders_shown(15_000):
        photograph("file-browser-went-back")
        page.locator(".jp-BreadCrumbs-home").click()
        assert course_folders_shown(60_000), "the file browser does not stay on the course folder"
    open_from_file_browser(page, student.HOME_PAGE)
    wait_for_notebook(page, student.HOME_PAGE)
    photograph("home-page")

    # 4. Start exercise 1 with the home page's button
    (starter,) = code_cells(lab.root / student.HOME_PAGE)
    run_cells(page, starter, starter)
    cell(page, starter).locator("button", has_text=f"Start {EXERCISE}").click()
    status = cell(page, starter).locator(".widget-html", has_text=WORK_COPY)
    status.wait_for(state="visible")
    assert (lab.root / WORK_COPY).exists(), "Start did not copy the exercise into work/"
    photograph("exercise-1-started")

    # 5. Open your copy through the home page's link
    link = page.locator(".jp-RenderedMarkdown a", has_text=f"work/{EXERCISE}")
    link.scroll_into_view_if_needed()
    link.click()
    wait_for_notebook(page, WORK_COPY)
    lab.shutdown_kernels()  # the home page's kernel is done with
    photograph("exercise-1-work-copy")

    # 6. Press Validate, after typing the answers
    type_answers(page, answer_cells(EXERCISE))
    photograph("exercise-1-answered")
    started = time.perf_counter()
    text, kind = press_validate(page, shots, f"first-hour-{next(step):02d}-validate")
    timings["validate_s"] = round(time.perf_counter() - started, 1)
    assert kind == "validation-success", f"expected success, got {kind!r}:\n{text}"
    assert "passes all the tests" in text
    page.close()
    lab.shutdown_kernels()

    # 7. Hand it in: the zip holds exactly <student>/<assignment>/<notebook>.ipynb
    out = lab.splatcourse("submit", EXERCISE, "--student", STUDENT)
    archive = student.submissions_dir(lab.root) / f"{STUDENT}_{EXERCISE}.zip"
    assert str(archive) in out
    with zipfile.ZipFile(archive) as zipped:
        assert zipped.namelist() == [f"{STUDENT}/{EXERCISE}/{EXERCISE}.ipynb"]
        inbox = tmp_path / "inbox"
        zipped.extractall(inbox)
    submitted = nbformat.read(inbox / STUDENT / EXERCISE / f"{EXERCISE}.ipynb", as_version=4)
    typed = answer_cells(EXERCISE)
    assert all(typed[i].strip() == submitted.cells[i].source.strip() for i in typed), (
        "the submission does not hold what was typed: was the notebook saved?"
    )

    # then the instructor grades it: full marks
    started = time.perf_counter()
    log = lab.splatcourse("release", EXERCISE)
    log += lab.splatcourse("autograde", str(inbox), "--assignment", EXERCISE)
    timings["release_and_autograde_s"] = round(time.perf_counter() - started, 1)
    (shots / f"first-hour-{next(step):02d}-autograde.txt").write_text(log)
    scores = cell_scores(Course(lab.root), EXERCISE, STUDENT)
    (shots / "first-hour-timings.json").write_text(json.dumps(timings) + "\n")
    print(json.dumps({"first_hour": timings, "scores": scores}))
    assert scores, f"no grades recorded for {STUDENT}:\n{log}"
    assert all(score == top for score, top in scores.values()), f"lost points: {scores}\n{log}"
