"""Late work: the time `nbgrader collect` records travels with a submission into grading, and
`splatcourse grades` exports how late each one was (the course marks late work, deducts nothing).

The gradebook here is written through nbgrader's own API (no notebook is graded), so this runs
in a second; tests/browser/test_browser_hub.py walks the same path through a real JupyterHub."""

from __future__ import annotations

import csv
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook

from splatcourse.grading import instructor, submissions

A = "ex01_toy_splats"
DUE = datetime(2026, 12, 5, 23, 0, 0)


def _gradebook_with(course: instructor.Course, timestamps: dict[str, datetime]) -> None:
    course.autograde.mkdir(parents=True)
    with Gradebook(f"sqlite:///{course.gradebook}", "splat-course") as gb:
        gb.add_assignment(A, duedate=DUE)
        for student, when in timestamps.items():
            gb.add_student(student)
            gb.add_submission(A, student, timestamp=when)


def test_grades_csv_says_how_late_each_submission_was(tmp_path, monkeypatch):
    # a new gradebook runs `alembic`, which lives beside this interpreter
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    course = instructor.Course(tmp_path / "course")
    _gradebook_with(
        course,
        {
            "early": DUE - timedelta(hours=1),
            "on_the_dot": DUE,
            "late": DUE + timedelta(minutes=90, seconds=0.5),
        },
    )
    csv_path, _ = instructor.export_grades(course, tmp_path / "grades")
    with csv_path.open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == instructor.GRADE_COLUMNS
        late = {row["student"]: row["late"] for row in reader}
    assert late == {"early": "0", "on_the_dot": "0", "late": str(90 * 60 + 1)}


def _submission(folder, timestamp: str | None, notebook: str = "") -> Path:
    """FOLDER/ada/<A>/ as `nbgrader collect` leaves it: the notebook and nbgrader's receipts."""
    here = folder / "ada" / A
    here.mkdir(parents=True)
    if notebook:
        (here / f"{A}.ipynb").write_text(notebook)
    (here / submissions.SECRET_FILE).write_text("0123abcd")
    if timestamp is not None:
        (here / submissions.TIMESTAMP_FILE).write_text(timestamp + "\n")
    return here


def test_the_collected_time_is_kept_and_changes_the_hash(tmp_path):
    """The same notebook handed in again later is graded again: its lateness may differ."""
    notebook = nbformat.writes(nbformat.v4.new_notebook())
    release = tmp_path / "release"
    release.mkdir()
    (release / f"{A}.ipynb").write_text(notebook)
    hashes = set()
    for i, when in enumerate(["2026-12-05 22:00:00.000000 UTC", "2026-12-05 23:30:00 UTC", None]):
        folder = tmp_path / f"subs{i}"
        _submission(folder, when, notebook)
        inspection = submissions.inspect(folder, "ada", A, release)
        assert inspection.timestamp == when and not inspection.notes
        assert inspection.receipts[submissions.SECRET_FILE] == "0123abcd"
        hashes.add(inspection.content_hash())
    assert len(hashes) == 3


def test_a_receipt_that_is_not_a_small_file_is_ignored_with_a_note(tmp_path):
    here = _submission(tmp_path / "subs", None)
    (here / submissions.TIMESTAMP_FILE).mkdir()
    receipts, notes = submissions.read_receipts(here)
    assert receipts == {submissions.SECRET_FILE: "0123abcd"}
    assert len(notes) == 1 and submissions.TIMESTAMP_FILE in notes[0]


class _NoGrader:
    """A worker stand-in: grading itself is not what this test is about."""

    def grade(self, assignment: str, student: str, timeout: float) -> tuple[bool, str | None]:
        return False, "not graded in this test"


def test_grading_the_collected_folder_in_place_keeps_what_the_student_handed_in(
    tmp_path, monkeypatch
):
    """`splatcourse autograde autograde/submitted` (the README's recipe) grades the folder
    `nbgrader collect` filled: the copy into autograde/submitted is then the folder itself, and
    must not delete the student's other files (a .ply, a picture) or nbgrader's receipts."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    course = instructor.Course(tmp_path / "course")
    _gradebook_with(course, {"ada": DUE})
    (course.autograde / "nbgrader_config.py").write_text("c = get_config()\n")
    notebook = nbformat.writes(nbformat.v4.new_notebook())
    (course.exercises / A).mkdir(parents=True)
    (course.exercises / A / f"{A}.ipynb").write_text(notebook)
    here = _submission(course.submitted, "2026-12-05 22:00:00 UTC", notebook)
    (here / "my_axe.ply").write_bytes(b"ply\n")
    before = {p.name: p.read_bytes() for p in here.iterdir()}
    instructor._grade_one(course, course.submitted, "ada", A, _NoGrader(), True, 1.0)  # type: ignore[arg-type]
    assert {p.name: p.read_bytes() for p in here.iterdir()} == before
