"""Notebooks: committed clean, well-formed for nbgrader, and every lesson runs top to bottom.

Solution notebooks are executed by tests/test_autograde_e2e.py, where nbgrader runs them with
their hidden tests and they must score full marks.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from splatcourse.paths import repo_root

ROOT = repo_root()
ALL_NOTEBOOKS = sorted(
    p
    for d in ("lessons", "solutions", "exercises")
    for p in (ROOT / d).rglob("*.ipynb")
    if ".ipynb_checkpoints" not in p.parts
)
LESSONS = sorted((ROOT / "lessons").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*/*.ipynb"))


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_rel)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, (
                f"{_rel(path)} cell {i} has outputs: clear them before committing"
            )
            assert cell.execution_count is None, f"{_rel(path)} cell {i} has an execution count"


@pytest.mark.parametrize("path", SOLUTIONS, ids=_rel)
def test_exercise_is_well_formed(path):
    nb = nbformat.read(path, as_version=4)
    meta = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    ids = [m["grade_id"] for m in meta if "grade_id" in m]
    assert len(ids) == len(set(ids)), f"duplicate grade_ids in {_rel(path)}"
    tests = [(m, c) for m, c in zip(meta, nb.cells) if m.get("grade")]
    answers = [c for m, c in zip(meta, nb.cells) if m.get("solution")]
    assert answers, "an exercise needs answer cells"
    assert all("### BEGIN SOLUTION" in c.source for c in answers if c.cell_type == "code")
    assert len(tests) >= 3 and all(m.get("points", 0) > 0 for m, _ in tests)
    assert any("BEGIN HIDDEN TESTS" in c.source for _, c in tests), "needs hidden tests"
    assert any(
        ("BEGIN HIDDEN TESTS" not in c.source) or c.source.index("BEGIN HIDDEN TESTS") > 0
        for _, c in tests
    ), "needs visible tests"
    intro = nb.cells[0].source
    assert "What is graded" in intro, "the first cell must say what is graded"
    total = sum(m["points"] for m, _ in tests)
    assert f"({total:g} points)" in intro, f"the intro must state the total ({total:g} points)"


@pytest.mark.slow
@pytest.mark.parametrize("path", LESSONS, ids=_rel)
def test_lesson_executes(path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors, errors
