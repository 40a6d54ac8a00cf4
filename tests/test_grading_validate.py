"""The Validate button (nbgrader's Validator) judges a test cell as the grader does: by its
checks, not by what it wrote to stderr (autograde/nbgrader_config.py folds stderr there too)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from splatcourse.paths import repo_root

STDERR_THEN_CHECK = 'import sys\nsys.stderr.write("fit: 100%|##########| 150/150\\n")\nassert {ok}'


def _test_cell(source: str) -> nbformat.NotebookNode:
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {
        "grade": True,
        "grade_id": "test_fit",
        "locked": True,
        "points": 2,
        "schema_version": 3,
        "solution": False,
        "task": False,
    }
    return cell


def _validate(tmp_path: Path, ok: bool, cwd: Path) -> str:
    path = tmp_path / f"answer_{ok}.ipynb"
    nbformat.write(new_notebook(cells=[_test_cell(STDERR_THEN_CHECK.format(ok=ok))]), path)
    run = subprocess.run(
        [sys.executable, "-m", "nbgrader", "validate", str(path)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return run.stdout + run.stderr


@pytest.mark.slow
def test_validate_passes_a_test_cell_that_wrote_to_stderr(tmp_path):
    assert "Success! Your notebook passes all the tests." in _validate(tmp_path, True, repo_root())


@pytest.mark.slow
def test_validate_still_fails_a_failed_check_and_nbgrader_alone_fails_stderr(tmp_path):
    failed = _validate(tmp_path, False, repo_root())
    assert "AssertionError" in failed and "Success!" not in failed
    # the cause: without the course's config, nbgrader calls the same passing cell a failure
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert "Success!" not in _validate(tmp_path, True, elsewhere)
