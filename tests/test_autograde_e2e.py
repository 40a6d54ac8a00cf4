"""The grading pipeline, end to end through nbgrader, on every assignment.

For each assignment: the solution scores full marks, the untouched release scores zero and
grading still finishes, and each plausible wrong answer loses the points of exactly the test
cells it should fail.
"""

from __future__ import annotations

import csv
import html
import re

import nbformat
import pytest

from splatcourse.grading import instructor
from splatcourse.grading.harness import (
    apply,
    cell_scores,
    completed,
    copy_course,
    mutants_for,
    notebooks,
    write_submission,
)
from splatcourse.paths import repo_root

ASSIGNMENTS = instructor.default_course().assignments()
CASES = [(a, None) for a in ASSIGNMENTS] + [(a, m) for a in ASSIGNMENTS for m in mutants_for(a)]

pytestmark = pytest.mark.slow


def _strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return nbformat.from_dict(dict(nb.items()))


def test_every_assignment_has_three_wrong_answers():
    for a in ASSIGNMENTS:
        assert len(mutants_for(a)) >= 3, f"{a} needs at least three plausible wrong answers"


def test_exercises_are_generated_from_solutions(released_course):
    """exercises/ is exactly what nbgrader generates from solutions/ (never edited by hand)."""
    committed = repo_root() / "exercises"
    assert sorted(p.name for p in committed.iterdir() if p.is_dir()) == ASSIGNMENTS
    for a in ASSIGNMENTS:
        fresh = notebooks(released_course.exercises / a)
        mine = notebooks(committed / a)
        assert sorted(fresh) == sorted(mine), (
            f"{a}: notebooks differ: {sorted(fresh)} vs {sorted(mine)}"
        )
        for name in fresh:
            assert fresh[name] == mine[name], (
                f"exercises/{a}/{name} has drifted from solutions/: run `splatcourse release {a}`"
            )


@pytest.mark.parametrize(
    "assignment,mutant",
    CASES,
    ids=[f"{a}-{m.name if m else 'solution+untouched'}" for a, m in CASES],
)
def test_grades(assignment, mutant, released_course, tmp_path):
    course = copy_course(tmp_path / "course", released_course.root, with_gradebook=True)
    subs = tmp_path / "submissions"
    if mutant is None:
        write_submission(subs, "solution", assignment, completed(course, assignment))
        write_submission(subs, "untouched", assignment, notebooks(course.exercises / assignment))
    else:
        write_submission(subs, "wrong", assignment, apply(mutant, completed(course, assignment)))
    report = instructor.autograde(subs, course, assignments=[assignment])
    assert not report.failures, report.summary()

    if mutant is None:
        full = cell_scores(course, assignment, "solution")
        assert full and all(s == m for s, m in full.values()), f"solution lost points: {full}"
        zero = cell_scores(course, assignment, "untouched")
        assert sorted(zero) == sorted(full)
        assert all(s == 0 for s, _ in zero.values()), f"untouched release scored: {zero}"
        # grades export works from the same gradebook
        csv_path, plot_path = instructor.export_grades(course)
        rows = list(csv.DictReader(csv_path.open()))
        assert {(r["student"], float(r["score"])) for r in rows} == {
            ("solution", sum(m for _, m in full.values())),
            ("untouched", 0.0),
        }
        assert plot_path.stat().st_size > 1000
        _check_feedback(course, assignment)
    else:
        got = cell_scores(course, assignment, "wrong")
        unknown = mutant.fails - set(got)
        assert not unknown, f"mutant names unknown test cells {unknown}"
        for cell, (score, top) in got.items():
            if cell in mutant.fails:
                assert score < top, (
                    f"{mutant.name}: {cell} should lose points, scored {score}/{top}"
                )
            else:
                assert score == top, (
                    f"{mutant.name}: {cell} should keep full marks, scored {score}/{top}"
                )


def _hidden_lines(course, assignment: str) -> list[str]:
    """Lines that only hidden tests contain (a line also in visible code may be shown)."""
    hidden_re = r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS"
    lines, visible = [], set()
    for nb in notebooks(course.solutions / assignment).values():
        for cell in nb.cells:
            for block in re.findall(hidden_re, cell.source, flags=re.DOTALL):
                lines += [ln.strip() for ln in block.splitlines() if len(ln.strip()) > 25]
            visible |= {
                ln.strip()
                for ln in re.sub(hidden_re, "", cell.source, flags=re.DOTALL).splitlines()
            }
    return [ln for ln in lines if ln not in visible]


def _check_feedback(course, assignment: str) -> None:
    """Feedback exists for every graded student and never shows a hidden test's code."""
    pages = instructor.feedback(course, [assignment])
    students = {p.parts[-3] for p in pages}
    assert students == {"solution", "untouched"}, pages
    hidden = _hidden_lines(course, assignment)
    assert hidden, "no hidden tests found"
    for page in pages:
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        text = re.sub(r"\s+", " ", text)
        leaked = [ln for ln in hidden if re.sub(r"\s+", " ", ln) in text]
        assert not leaked, f"{page} shows hidden test code: {leaked[:3]}"
        assert "hidden tests run here" in text
        if page.parts[-3] == "untouched":
            # its stubs raise NotImplementedError() with no message: the grader says why instead
            assert "[grader] this cell scored 0 of" in text, (
                f"{page} never says why points were lost"
            )
