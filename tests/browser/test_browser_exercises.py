"""The student's side of an exercise in JupyterLab: write the answers, press Validate.

nbgrader's JupyterLab extension puts a "Validate" button on the notebook toolbar; it saves the
notebook, runs it on the server and shows a "Validation Results" dialog. These tests press it
as a student would: on an untouched exercise (it must point at the unanswered cells) and after
typing the reference answers into the answer cells (it must report success).

Every released exercise is checked untouched automatically; SOLVED lists the exercises whose
answers are also typed in (each costs one full run of the notebook).
"""

from __future__ import annotations

import pytest
from lab_driver import answer_cells, open_notebook, press_validate, type_answers

from splatcourse.paths import repo_root

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EXERCISES = sorted(
    p.name for p in (repo_root() / "exercises").iterdir() if (p / f"{p.name}.ipynb").exists()
)
SOLVED = ["ex01_toy_splats"]


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
    type_answers(page, answer_cells(assignment))
    page.screenshot(path=shots / f"validate-{assignment}-answered-notebook.png")
    text, kind = press_validate(page, shots, f"validate-{assignment}-answered")
    assert kind == "validation-success", f"expected success, got {kind!r}:\n{text}"
    assert "passes all the tests" in text
