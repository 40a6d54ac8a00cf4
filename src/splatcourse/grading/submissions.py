"""Look at a student's submission before grading it: what can be graded, and what to tell them.

Everything here reads files only (no student code runs). It decides which notebook is graded
under which name, refuses what is not a notebook, and notes test cells the student edited or
deleted (nbgrader restores them from the gradebook; the notes tell the student it happened).

Used by: every exercise's autograding (before anything runs).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..student import STUDENT_ID  # the one rule for a student id, shared with `submit`
from .guard import tamper_notes

#: a notebook bigger than this is not a reasonable submission (outputs are cleared anyway)
MAX_NOTEBOOK_BYTES = 50 * 1024**2
#: when a submission came in, as `nbgrader collect` recorded it: autograde marks late work by it
TIMESTAMP_FILE = "timestamp.txt"
#: the secret nbgrader's Submit wrote: feedback returned through the exchange is filed under a
#: hash of it, so only the student who submitted can fetch their page
SECRET_FILE = "submission_secret.txt"
#: the small files of nbgrader's exchange that travel with the notebooks into grading
RECEIPT_FILES = (TIMESTAMP_FILE, SECRET_FILE)
MAX_RECEIPT_BYTES = 1000


@dataclass
class Inspection:
    """What will be graded (`files`: notebook name -> bytes) and what the student should know."""

    student: str
    assignment: str
    files: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: nbgrader's receipts found beside the notebooks (file name -> text), see RECEIPT_FILES
    receipts: dict[str, str] = field(default_factory=dict)

    @property
    def timestamp(self) -> str | None:
        """When it was submitted, as `nbgrader collect` wrote it (None: no record, never late)."""
        return self.receipts.get(TIMESTAMP_FILE)

    @property
    def gradable(self) -> bool:
        return bool(self.files)

    def content_hash(self, salt: bytes = b"") -> str:
        """Changes with the notebooks and with the receipts (the time decides lateness, the
        secret where the feedback goes)."""
        h = hashlib.sha256(salt)
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        for name in sorted(self.receipts):
            h.update(b"\0receipt\0" + name.encode() + b"\0" + self.receipts[name].encode())
        return h.hexdigest()


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _read(path: Path) -> tuple[bytes | None, str | None]:
    """The bytes of a plausible notebook, or why it is not one."""
    if path.is_symlink() or not path.is_file():
        return None, f"{path.name} is not a regular file (links are not followed)"
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        return None, f"{path.name} is larger than {MAX_NOTEBOOK_BYTES // 1024**2} MB"
    data = path.read_bytes()
    try:
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        nbformat.validate(nb)
    except Exception as err:
        first = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        return None, f"{path.name} is not a readable notebook ({first})"
    return data, None


def read_receipts(folder: Path) -> tuple[dict[str, str], list[str]]:
    """nbgrader's receipts in FOLDER (see RECEIPT_FILES), and a note for each one ignored."""
    receipts, notes = {}, []
    for name in RECEIPT_FILES:
        path = Path(folder) / name
        if not path.exists() and not path.is_symlink():
            continue
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_RECEIPT_BYTES:
            notes.append(f"{name} is not a small regular file: it is ignored")
            continue
        text = path.read_text(errors="replace").strip()
        if text:
            receipts[name] = text
    return receipts, notes


def linked_folder(folder: Path, student: str, assignment: str) -> str | None:
    """Why a submission's path is refused, if its student or assignment folder is a link.

    A link there would grade someone else's work (``bob/ex05 -> ../alice/ex05``) as this
    student's; notebooks that are links are refused by `_read`.
    """
    for part in (Path(student), Path(student) / assignment):
        path = Path(folder) / part
        if path.is_symlink():
            return (
                f"{part.as_posix()} is a link (to {Path(path.readlink()).as_posix()}): links are "
                "not followed, so this submission is not graded"
            )
    return None


def test_cell_notes(
    released: nbformat.NotebookNode, submitted: nbformat.NotebookNode, name: str
) -> list[str]:
    """Which read-only cells (tests, setup) the student edited or deleted."""
    mine = {_meta(c).get("grade_id"): c for c in submitted.cells if _meta(c).get("grade_id")}
    notes = []
    for cell in released.cells:
        meta = _meta(cell)
        gid = meta.get("grade_id")
        if not gid or meta.get("solution") or not (meta.get("locked") or meta.get("grade")):
            continue
        kind = "test cell" if meta.get("grade") else "read-only cell"
        if gid not in mine:
            notes.append(f"{name}: {kind} {gid} was deleted; the original was put back and graded")
        elif mine[gid].source.strip() != cell.source.strip():
            notes.append(f"{name}: {kind} {gid} was edited; the original was put back and graded")
    return notes


def inspect(folder: Path, student: str, assignment: str, release_dir: Path) -> Inspection:
    """Pick the notebooks to grade from FOLDER/<student>/<assignment>/ (see module docstring);
    a link anywhere on that path (student folder, assignment folder, notebook) is refused."""
    out = Inspection(student, assignment)
    if not STUDENT_ID.match(student):
        out.notes.append(f"student folder name {student!r} is not a valid id: not graded")
        return out
    link = linked_folder(folder, student, assignment)
    if link:
        out.notes.append(link)
        return out
    expected = sorted(p.name for p in release_dir.glob("*.ipynb"))
    if not expected:
        raise FileNotFoundError(
            f"no released notebook in {release_dir}: run `splatcourse release {assignment}` first"
        )
    here = Path(folder) / student / assignment
    candidates = (
        sorted(p for p in here.iterdir() if not p.name.startswith(".")) if here.is_dir() else []
    )
    out.receipts, notes = read_receipts(here)
    out.notes += notes
    readable: dict[str, bytes] = {}
    for path in candidates:
        if path.suffix != ".ipynb" and path.name not in expected:
            continue
        data, problem = _read(path)
        if problem:
            out.notes.append(problem)
        else:
            readable[path.name] = data  # type: ignore[assignment]
    for name in expected:
        if name in readable:
            out.files[name] = readable.pop(name)
    missing = [n for n in expected if n not in out.files]
    if len(missing) == 1 and len(readable) == 1:
        ((other, data),) = readable.items()
        out.files[missing[0]] = data
        out.notes.append(f"graded {other} as {missing[0]} (the notebook was renamed)")
        missing = []
    for name in missing:
        out.notes.append(f"no notebook {name} was submitted: it scores 0")
    for name, data in out.files.items():
        released = nbformat.read(release_dir / name, as_version=4)
        submitted = nbformat.reads(data.decode("utf-8"), as_version=4)
        out.notes += test_cell_notes(released, submitted, name)
        out.notes += tamper_notes(
            {
                f"{name}[{i}]": c.source
                for i, c in enumerate(submitted.cells)
                if c.cell_type == "code" and not _meta(c).get("grade")
            }
        )
    return out
