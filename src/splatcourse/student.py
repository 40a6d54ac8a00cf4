"""The student's side of the course: open it, start an exercise on a private copy, hand it in.

`exercises/` is tracked by git and updated by every `git pull` of the course, so a student who
typed answers into it would see them conflict with, or be overwritten by, the next fix. The
student therefore works on a copy: `start` copies a released exercise into `work/` (which git
ignores) and never overwrites one that is already there; `submit` packs that copy into a zip
laid out exactly as the instructor's `splatcourse autograde` reads a hub-less course,
`<student>/<assignment>/<notebook>.ipynb`. `lab_command` is the one definition of how the course
opens in JupyterLab, used by `make lab` (through `splatcourse lab`) and by the browser test that
walks a student's first hour.

Used by: the course home page (lessons/00_start_here.ipynb), the `splatcourse start | submit |
lab` commands and `make lab`.
"""

from __future__ import annotations

import getpass
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .paths import repo_root

#: the notebook JupyterLab shows first
FIRST_LESSON = "lessons/01_splats_in_2d.ipynb"
#: the course home page: every lesson and exercise in order, with links
HOME_PAGE = "lessons/00_start_here.ipynb"
#: a student id as the instructor's autograde accepts it (a folder name it can trust)
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
#: what `start` leaves behind of a released exercise (JupyterLab's and Python's droppings)
_NOT_COPIED = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")


def work_dir(root: Path | None = None) -> Path:
    """`work/`: the student's copies of the exercises; git ignores it, so pulls never touch it."""
    return (root or repo_root()) / "work"


def submissions_dir(root: Path | None = None) -> Path:
    """`work/submissions/`: the zips `submit` writes, one per assignment."""
    return work_dir(root) / "submissions"


def released_exercises(root: Path | None = None) -> list[str]:
    """Every folder of `exercises/` that holds a notebook, in course order."""
    exercises = (root or repo_root()) / "exercises"
    if not exercises.is_dir():
        raise FileNotFoundError(f"no exercises folder at {exercises}")
    return sorted(p.name for p in exercises.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def _check_exercise(assignment: str, root: Path) -> Path:
    known = released_exercises(root)
    if assignment not in known:
        raise ValueError(f"unknown exercise {assignment!r}; the course has: {', '.join(known)}")
    return root / "exercises" / assignment


@dataclass(frozen=True)
class Started:
    """Where the student's copy of an exercise is, and whether `start` just made it."""

    assignment: str
    folder: Path
    created: bool

    @property
    def notebooks(self) -> list[Path]:
        return sorted(self.folder.glob("*.ipynb"))

    def message(self) -> str:
        where = ", ".join(str(p) for p in self.notebooks) or str(self.folder)
        if self.created:
            return f"started {self.assignment}: your copy is {where}"
        return (
            f"{self.assignment} is already started: your work in {self.folder} is kept as it "
            "is (to start over, rename or delete that folder first)"
        )


def start(assignment: str, root: Path | None = None) -> Started:
    """Copy the released `assignment` into `work/<assignment>/`, unless it is already there.

    An existing copy is the student's work, so it is never overwritten, merged or refreshed:
    starting twice just points at it again.
    """
    root = root or repo_root()
    released = _check_exercise(assignment, root)
    folder = work_dir(root) / assignment
    if folder.exists():
        return Started(assignment, folder, created=False)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f".{assignment}.partial")  # a copy cut short is never "started"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(released, staging, ignore=_NOT_COPIED)
    staging.rename(folder)
    return Started(assignment, folder, created=True)


def default_student() -> str:
    """The login name: what `submit` calls the student unless told otherwise."""
    return getpass.getuser()


def check_student_id(student: str) -> str:
    if not STUDENT_ID.match(student):
        raise ValueError(
            f"student id {student!r} is not usable as a submission folder name: use letters, "
            "digits and . _ @ + - (starting with a letter or digit), e.g. --student jdoe"
        )
    return student


def submit(assignment: str, student: str | None = None, root: Path | None = None) -> Path:
    """Zip `work/<assignment>/`'s notebooks as `<student>/<assignment>/<notebook>.ipynb`.

    That is the layout `splatcourse autograde` grades: the instructor unzips every student's
    file into one folder (e.g. `autograde/inbox/`) and grades that folder. Only notebooks go in,
    as they are on disk (save in JupyterLab first); the zip is rewritten on each submit.
    """
    root = root or repo_root()
    _check_exercise(assignment, root)
    student = check_student_id(student or default_student())
    folder = work_dir(root) / assignment
    notebooks = sorted(folder.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(
            f"no notebook in {folder}: run `splatcourse start {assignment}` and do the "
            "exercise there first"
        )
    out = submissions_dir(root) / f"{student}_{assignment}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for notebook in notebooks:
            archive.write(notebook, f"{student}/{assignment}/{notebook.name}")
    return out


def lab_command(
    root: Path | None = None, port: int | None = None, extra: list[str] | None = None
) -> list[str]:
    """The JupyterLab command that opens the course: rooted at the course (so lessons,
    exercises and `work/` are all reachable) with lesson 1 in front. Run it from the course
    root: nbgrader's Validate reads the course's `nbgrader_config.py` from there."""
    root = root or repo_root()
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.default_url=/lab/tree/{FIRST_LESSON}",
    ]
    if port is not None:
        command.append(f"--ServerApp.port={port}")
    return command + list(extra or [])
