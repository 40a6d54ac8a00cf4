"""The student's side of an exercise in JupyterLab: write the answers, press Validate.

nbgrader's JupyterLab extension puts a "Validate" button on the notebook toolbar; it saves the
notebook, runs it on the server and shows a "Validation Results" dialog. These tests press it
as a student would: on an untouched exercise (it must point at the unanswered cells) and after
typing the reference answers into the answer cells (it must report success).

Every released exercise is checked untouched automatically; SOLVED lists the exercises whose
answers are also typed in (each costs one full run of the notebook).
"""

from __future__ import annotations

import re

import nbformat
import pytest
from lab_driver import cell, open_notebook

from splatcourse.paths import repo_root

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EXERCISES = sorted(
    p.name for p in (repo_root() / "exercises").iterdir() if (p / f"{p.name}.ipynb").exists()
)
SOLVED = ["ex01_toy_splats"]
VALIDATE_TIMEOUT_MS = 300_000  # the server runs the whole notebook; CI machines are slow


def press_validate(page, shots, name: str) -> tuple[str, str]:
    """Click Validate, wait for the result dialog, photograph it, close it.

    Returns the dialog's text and the result class nbgrader gives it (validation-success,
    validation-failed, validation-changed, ...)."""
    button = page.locator(".jp-NotebookPanel-toolbar .validate-button")
    assert button.count() == 1, (
        "no Validate button on the notebook toolbar: is the nbgrader "
        "JupyterLab extension enabled? (jupyter labextension list)"
    )
    button.click()
    dialog = page.locator(".jp-Dialog").filter(has_text="Validation Results")
    dialog.wait_for(state="visible", timeout=VALIDATE_TIMEOUT_MS)
    message = dialog.locator("#validation-message")
    dialog.locator(".jp-Dialog-content").screenshot(path=shots / f"{name}.png")
    text = message.inner_text()
    kind = next(
        (c for c in (message.get_attribute("class") or "").split() if c.startswith("validation-")),
        "",
    )
    dialog.locator("button", has_text="Ok").click()
    dialog.wait_for(state="hidden")
    return text, kind


def answer_cells(assignment: str) -> dict[int, str]:
    """Cell index in the student notebook -> the reference answer, markers removed."""
    released = nbformat.read(repo_root() / "exercises" / assignment / f"{assignment}.ipynb", 4)
    source = nbformat.read(repo_root() / "solutions" / assignment / f"{assignment}.ipynb", 4)
    answers = {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in source.cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }
    marker = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)
    out = {}
    for index, c in enumerate(released.cells):
        gid = c.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            out[index] = marker.sub("", answers[gid])
    assert out, f"{assignment}: no answer cells found"
    return out


@pytest.fixture
def fresh_page(lab, browser, notebooks):
    notebooks.close()  # the lesson runner's page and kernel are no longer needed
    lab.shutdown_kernels()
    page = browser.new_page()
    yield page
    page.close()
    lab.shutdown_kernels()


@pytest.mark.parametrize("assignment", EXERCISES)
def test_validate_untouched_exercise_names_the_missing_answers(assignment, lab, fresh_page, shots):
    open_notebook(fresh_page, lab, f"exercises/{assignment}/{assignment}.ipynb")
    text, kind = press_validate(fresh_page, shots, f"validate-{assignment}-untouched")
    assert kind == "validation-failed", f"expected a failed validation, got {kind!r}:\n{text}"
    assert "NotImplementedError" in text, text


@pytest.mark.parametrize("assignment", SOLVED)
def test_validate_after_typing_the_answers_succeeds(assignment, lab, fresh_page, shots):
    page = fresh_page
    open_notebook(page, lab, f"exercises/{assignment}/{assignment}.ipynb")
    for index, answer in answer_cells(assignment).items():
        editor = cell(page, index).locator(".cm-content")
        editor.scroll_into_view_if_needed()
        editor.click()
        page.keyboard.press("ControlOrMeta+a")
        # inserted as one edit, as a paste would be: no auto-indent or bracket closing
        page.keyboard.insert_text(answer)
    page.screenshot(path=shots / f"validate-{assignment}-answered-notebook.png")
    text, kind = press_validate(page, shots, f"validate-{assignment}-answered")
    assert kind == "validation-success", f"expected success, got {kind!r}:\n{text}"
    assert "passes all the tests" in text
