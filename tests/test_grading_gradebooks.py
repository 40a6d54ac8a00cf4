"""Sharded grading comes back together: three shards graded as separate processes, then merged,
give exactly the gradebook of one run over the whole class."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from splatcourse.grading import instructor
from splatcourse.grading.gradebooks import COURSE_ID, merge_gradebooks
from splatcourse.grading.harness import (
    apply,
    completed,
    copy_course,
    mutants_for,
    notebooks,
    write_submission,
)

A = "ex05_pipeline_brief"
SHARDS = 3


def _autograde(course: instructor.Course, subs: Path, *extra: str) -> None:
    """`splatcourse autograde` in its own process, as one machine of a sharded run would."""
    env = dict(os.environ, SPLATCOURSE_ROOT=str(course.root))
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(instructor.__file__).parents[2]), env.get("PYTHONPATH")])
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "splatcourse.cli",
            "autograde",
            str(subs),
            "--assignment",
            A,
            "--workers",
            "1",
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "graded 1 of 1" in proc.stdout or "graded 3 of 3" in proc.stdout, proc.stdout


def gradebook_rows(path: Path) -> list[tuple]:
    """Every row that says something about a grade, by natural keys (ids are random)."""
    from nbgrader.api import Gradebook

    rows: list[tuple] = []
    with Gradebook(f"sqlite:///{path}", COURSE_ID) as gb:
        for s in gb.students:
            rows.append(("student", s.id, s.first_name, s.last_name, s.email, s.lms_user_id))
        for a in gb.assignments:
            rows.append(("assignment", a.name, a.duedate))
            for nb in a.notebooks:
                for c in nb.grade_cells:
                    rows.append(("grade cell", a.name, nb.name, c.name, c.max_score, c.cell_type))
                for c in nb.source_cells:
                    rows.append(("source cell", a.name, nb.name, c.name, c.checksum, c.locked))
                rows += [("solution cell", a.name, nb.name, c.name) for c in nb.solution_cells]
                rows += [("task cell", a.name, nb.name, c.name) for c in nb.task_cells]
            for sub in a.submissions:
                key = (a.name, sub.student.id)
                rows.append(
                    ("submission", *key, sub.timestamp, sub.extension, sub.score, sub.max_score)
                )
                for nb in sub.notebooks:
                    rows.append(("notebook", *key, nb.name, nb.flagged, nb.score))
                    for g in nb.grades:
                        rows.append(
                            (
                                "grade",
                                *key,
                                nb.name,
                                g.name,
                                g.auto_score,
                                g.manual_score,
                                g.extra_credit,
                                g.needs_manual_grade,
                                g.score,
                            )
                        )
                    for c in nb.comments:
                        rows.append(
                            ("comment", *key, nb.name, c.name, c.auto_comment, c.manual_comment)
                        )
    return sorted(rows, key=repr)


@pytest.mark.slow
def test_three_shards_merge_into_the_gradebook_of_one_run(tmp_path):
    template = copy_course(tmp_path / "template")
    instructor.release(template, [A])
    subs = tmp_path / "subs"
    wrong = next(m for m in mutants_for(A) if m.fails)
    write_submission(subs, "solution", A, completed(template, A))
    write_submission(subs, "wrong", A, apply(wrong, completed(template, A)))
    write_submission(subs, "untouched", A, notebooks(template.exercises / A))

    whole = copy_course(tmp_path / "whole", template.root, with_gradebook=True)
    _autograde(whole, subs)
    shards = []
    for i in range(SHARDS):
        course = copy_course(tmp_path / f"shard{i}", template.root, with_gradebook=True)
        _autograde(course, subs, "--shard", f"{i}/{SHARDS}")
        shards.append(course.gradebook)

    merged = tmp_path / "merged.db"
    from splatcourse import cli

    assert cli.main(["merge-gradebooks", str(merged), *map(str, shards)]) == 0
    want, got = gradebook_rows(whole.gradebook), gradebook_rows(merged)
    assert [r for r in want if r[0] == "grade"], "the whole run graded nothing"
    assert {r[2] for r in want if r[0] == "submission"} == {"solution", "wrong", "untouched"}
    assert got == want
    # merging again into the merged gradebook replaces each submission: nothing changes
    assert cli.main(["merge-gradebooks", str(merged), *map(str, shards)]) == 0
    assert gradebook_rows(merged) == want
    # merging the same shard twice would keep one of two grades: refused
    with pytest.raises(ValueError, match="shards must not overlap"):
        merge_gradebooks(tmp_path / "again.db", [shards[0], shards[0]])
    assert not (tmp_path / "again.db").exists(), "refused before anything was written"


def test_every_student_is_in_the_gradebook_before_any_worker_grades(
    released_course, tmp_path, monkeypatch
):
    """Two workers grading two exercises of one student at once both made nbgrader add the
    student, and the second failed on SQLite's unique key: an honest submission lost. Students
    are now added before grading starts; grading itself is replaced by that check here."""
    course = copy_course(tmp_path / "course", released_course.root, with_gradebook=True)
    assignments = ["ex01_toy_splats", A]
    for student in ["ada", "bo"]:
        for a in assignments:
            write_submission(tmp_path / "subs", student, a, notebooks(course.exercises / a))
    known_when_graded = []

    def grade_one(course, folder, student, assignment, worker, force, timeout):
        def find(gb):
            return gb.find_student(student).id

        known_when_graded.append(instructor._with_gradebook(course, find))
        return instructor.GradeResult(student, assignment, "graded", "", 0.0, 1.0)

    monkeypatch.setattr(instructor, "_grade_one", grade_one)
    report = instructor.autograde(tmp_path / "subs", course, assignments, workers=2, progress=False)
    assert not report.failures, report.summary()
    assert sorted(known_when_graded) == ["ada", "ada", "bo", "bo"]
