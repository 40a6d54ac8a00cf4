"""End-to-end grading through nbgrader itself, for the tests.

A temporary copy of the course is released and graded exactly as an instructor would; scores are
read back from the gradebook (nbgrader reports success even when a student's code crashes, so
only the gradebook counts).

Used by: tests/test_autograde_e2e.py, tests/test_hostile_submissions.py and the benches that time grading.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from splatcourse.grading import instructor
from splatcourse.paths import repo_root

_MARKER_LINE = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)


@dataclass(frozen=True)
class Mutant:
    """A plausible wrong answer: in answer cell `cell`, replace `old` by `new`.

    `fails` names the test cells that must lose points; every other test cell must still
    score full marks, so the wrong answer loses exactly the right points.
    """

    name: str
    cell: str
    old: str
    new: str
    fails: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fails", frozenset(self.fails))


def mutants_for(assignment: str, folder: Path | None = None) -> list[Mutant]:
    """The wrong answers written for `assignment` (`tests/mutants/<assignment>.py`), if any.

    Loaded by file path, so the package never needs the tests folder on `sys.path`.
    """
    path = (folder or repo_root() / "tests" / "mutants") / f"{assignment}.py"
    if not path.is_file():
        return []
    spec = importlib.util.spec_from_file_location(f"_mutants_{assignment}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.MUTANTS)


def copy_course(
    dest: Path, source: Path | None = None, with_gradebook: bool = False
) -> instructor.Course:
    """A throw-away course: solutions, exercises, the nbgrader config (and the gradebook)."""
    source = source or repo_root()
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("solutions", "exercises"):
        if (source / name).exists():
            shutil.copytree(source / name, dest / name, dirs_exist_ok=True)
    (dest / "autograde").mkdir(exist_ok=True)
    shutil.copy2(source / "autograde" / "nbgrader_config.py", dest / "autograde")
    if with_gradebook:
        shutil.copy2(source / "autograde" / "gradebook.db", dest / "autograde")
    return instructor.Course(dest)


def notebooks(folder: Path) -> dict[str, nbformat.NotebookNode]:
    return {p.name: nbformat.read(p, as_version=4) for p in sorted(folder.glob("*.ipynb"))}


def grade_id(cell: nbformat.NotebookNode) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def completed(course: instructor.Course, assignment: str) -> dict[str, nbformat.NotebookNode]:
    """The released notebooks with every answer cell filled in from the solution source."""
    released = notebooks(course.exercises / assignment)
    source = notebooks(course.solutions / assignment)
    for name, nb in released.items():
        answers = {
            grade_id(c): c.source
            for c in source[name].cells
            if c.get("metadata", {}).get("nbgrader", {}).get("solution")
        }
        for cell in nb.cells:
            gid = grade_id(cell)
            if gid in answers:
                cell.source = _MARKER_LINE.sub("", answers[gid])
    return released


def apply(
    mutant: Mutant, nbs: dict[str, nbformat.NotebookNode]
) -> dict[str, nbformat.NotebookNode]:
    for nb in nbs.values():
        for cell in nb.cells:
            if grade_id(cell) == mutant.cell:
                if mutant.old not in cell.source:
                    raise AssertionError(
                        f"mutant {mutant.name}: {mutant.old!r} not in cell "
                        f"{mutant.cell}:\n{cell.source}"
                    )
                cell.source = cell.source.replace(mutant.old, mutant.new)
                return nbs
    raise AssertionError(f"mutant {mutant.name}: no cell {mutant.cell}")


def write_submission(
    folder: Path, student: str, assignment: str, nbs: dict[str, nbformat.NotebookNode]
) -> None:
    dest = folder / student / assignment
    dest.mkdir(parents=True, exist_ok=True)
    for name, nb in nbs.items():
        nbformat.write(nb, dest / name)


def cell_scores(
    course: instructor.Course, assignment: str, student: str
) -> dict[str, tuple[float, float]]:
    """grade_id -> (score, max) for one graded submission, from the gradebook."""
    from nbgrader.api import Gradebook

    out: dict[str, tuple[float, float]] = {}
    with Gradebook(f"sqlite:///{course.gradebook}", "splat-course") as gb:
        sub = gb.find_submission(assignment, student)
        for nb in sub.notebooks:
            for grade in nb.grades:
                out[grade.name] = (float(grade.score), float(grade.max_score))
    return out


def grade_one_seconds(assignment: str, workers: int = 1) -> float:
    """Wall seconds to autograde one completed submission of `assignment` from a fresh
    temporary course copy (release excluded), as an instructor's machine would: the benches
    quote it as the cost of grading one submission."""
    with tempfile.TemporaryDirectory() as tmp:
        course = copy_course(Path(tmp) / "course")
        instructor.release(course, [assignment])
        subs = Path(tmp) / "subs"
        write_submission(subs, "bench", assignment, completed(course, assignment))
        t0 = time.perf_counter()
        report = instructor.autograde(subs, course, [assignment], workers=workers, progress=False)
        seconds = time.perf_counter() - t0
        if report.failures:
            raise RuntimeError(report.summary())
    return seconds
