"""Merge the gradebooks of a sharded grading run into one.

`splatcourse autograde --shard I/N` lets N machines grade a class side by side, each into its own
SQLite gradebook (SQLite must not be shared over a network file system). Afterwards the shards
come back together here, through nbgrader's `Gradebook` API, so the merged gradebook is one
nbgrader would have written itself: assignments with their notebooks and cells, students, and
every submission with each cell's grade and comment.

Shards graded from different releases of an assignment, or that both hold the same student's
submission, are refused: merging them would silently keep one grade and drop the other.

Used by: instructors, through `splatcourse merge-gradebooks` (the README's Kubernetes recipe).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

COURSE_ID = "splat-course"


@contextmanager
def _alembic_on_path() -> Iterator[None]:
    """nbgrader runs `alembic` (installed beside this interpreter) to create a gradebook."""
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), old])
    try:
        yield
    finally:
        os.environ["PATH"] = old


def _open(path: Path):
    from nbgrader.api import Gradebook

    return Gradebook(f"sqlite:///{path}", COURSE_ID)


def _cells(notebook) -> dict[str, tuple]:
    """A released notebook's cells as comparable values: what grading depended on."""
    out: dict[str, tuple] = {}
    for c in notebook.grade_cells:
        out[f"grade:{c.name}"] = (c.max_score, c.cell_type)
    for c in notebook.task_cells:
        out[f"task:{c.name}"] = (c.max_score, c.cell_type)
    for c in notebook.solution_cells:
        out[f"solution:{c.name}"] = ()
    for c in notebook.source_cells:
        out[f"source:{c.name}"] = (c.cell_type, c.locked, c.checksum)
    return out


def _release(assignment) -> dict[str, dict[str, tuple]]:
    return {nb.name: _cells(nb) for nb in assignment.notebooks}


def _copy_assignment(out, assignment) -> None:
    """Add an assignment (notebooks and cells) that the merged gradebook lacks."""
    name = assignment.name
    out.add_assignment(name, duedate=assignment.duedate)
    for nb in assignment.notebooks:
        out.add_notebook(nb.name, name, kernelspec=nb.kernelspec)
        for c in nb.grade_cells:
            out.add_grade_cell(c.name, nb.name, name, max_score=c.max_score, cell_type=c.cell_type)
        for c in nb.solution_cells:
            out.add_solution_cell(c.name, nb.name, name)
        for c in nb.task_cells:
            out.add_task_cell(c.name, nb.name, name, max_score=c.max_score, cell_type=c.cell_type)
        for c in nb.source_cells:
            out.add_source_cell(
                c.name,
                nb.name,
                name,
                cell_type=c.cell_type,
                locked=c.locked,
                source=c.source,
                checksum=c.checksum,
            )


def _different_release(name: str, path: Path, other: object) -> ValueError:
    return ValueError(
        f"{path}: assignment {name!r} was graded from another release than in {other} (its "
        "notebooks or cells differ): grade every shard from the same release"
    )


def _check_shards(shards: list[Path]) -> dict[str, tuple[dict, Path]]:
    """Refuse, before anything is written, shards that disagree on a release or that both hold
    one student's submission; returns each assignment's release and a shard that has it."""
    releases: dict[str, tuple[dict, Path]] = {}
    owner: dict[tuple[str, str], Path] = {}
    for path in shards:
        with _open(path) as shard:
            for assignment in shard.assignments:
                name, release = str(assignment.name), _release(assignment)
                first = releases.setdefault(name, (release, path))
                if first[0] != release:
                    raise _different_release(name, path, first[1])
                for sub in assignment.submissions:
                    key = (name, str(sub.student.id))
                    if key in owner:
                        raise ValueError(
                            f"{key[1]}/{key[0]} is graded in both {owner[key]} and {path}: "
                            "shards must not overlap (use --shard I/N with one N)"
                        )
                    owner[key] = path
    return releases


def _merge_releases(out, out_path: Path, releases: dict[str, tuple[dict, Path]]) -> None:
    """Every shard's assignments in `out`: copied where missing, refused where different."""
    from nbgrader.api import MissingEntry

    for name, (release, path) in releases.items():
        try:
            if _release(out.find_assignment(name)) != release:
                raise _different_release(name, path, out_path)
        except MissingEntry:
            with _open(path) as shard:
                _copy_assignment(out, shard.find_assignment(name))


def _copy_student(out, student) -> None:
    # nbgrader's models are untyped SQLAlchemy: on an instance a Column attribute is its value
    fields: dict[str, Any] = {
        f: getattr(student, f) for f in ("first_name", "last_name", "email", "lms_user_id")
    }
    out.update_or_create_student(str(student.id), **fields)


def _copy_submission(out, sub) -> None:
    """One student's submission with every grade and comment as the shard recorded them."""
    assignment, student = sub.assignment.name, sub.student.id
    out.add_submission(assignment, student, timestamp=sub.timestamp, extension=sub.extension)
    for nb in sub.notebooks:
        mine = out.find_submission_notebook(nb.name, assignment, student)
        mine.flagged = nb.flagged
        for grade in nb.grades:
            g = out.find_grade(grade.name, nb.name, assignment, student)
            g.auto_score, g.manual_score = grade.auto_score, grade.manual_score
            g.extra_credit, g.needs_manual_grade = grade.extra_credit, grade.needs_manual_grade
        for comment in nb.comments:
            c = out.find_comment(comment.name, nb.name, assignment, student)
            c.auto_comment, c.manual_comment = comment.auto_comment, comment.manual_comment
    out.db.commit()


def merge_gradebooks(out_path: Path | str, shard_paths: Iterable[Path | str]) -> int:
    """Merge the shards' gradebooks into `out_path` (created if missing); returns how many
    submissions were merged. A submission already in `out_path` (an earlier run) is replaced
    by the shard's; two shards holding the same submission are refused."""
    from nbgrader.api import MissingEntry

    out_path = Path(out_path)
    shards = [Path(p) for p in shard_paths]
    if not shards:
        raise ValueError("merge-gradebooks: name at least one shard gradebook")
    for path in shards:
        if not path.is_file():
            raise FileNotFoundError(f"shard gradebook {path} does not exist")
        if path.resolve() == out_path.resolve():
            raise ValueError(f"{path} is both a shard and the output: write to a new file")
    releases = _check_shards(shards)
    merged = 0
    with warnings.catch_warnings(), _alembic_on_path():
        warnings.simplefilter("ignore")  # SQLAlchemy notes nbgrader's lazy row creation
        with _open(out_path) as out:
            _merge_releases(out, out_path, releases)
            for path in shards:
                with _open(path) as shard:
                    for student in shard.students:
                        _copy_student(out, student)
                    for sub in (x for a in shard.assignments for x in a.submissions):
                        try:
                            out.remove_submission(sub.assignment.name, sub.student.id)
                        except MissingEntry:
                            pass
                        _copy_submission(out, sub)
                        merged += 1
    return merged
