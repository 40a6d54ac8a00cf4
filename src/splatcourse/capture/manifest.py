"""`data/manifest.json`: which captures the course knows, where their original files come from
(a repository at a pinned commit), their licence, and how the course copy is derived.

Each entry names a list of the original files (`source_files`, a small tab-separated file under
`data/upstream/`) with every file's git blob SHA-1 and size. Git itself names file contents by
that hash, so a download can be checked against the very commit it claims to come from, and the
list can be regenerated and reviewed with `git ls-tree -r -l COMMIT` in a clone of the source.
Derived files (downsampled photos, PNG masks) are made locally and never verified against the
manifest: Pillow decides their exact bytes.

Used by: load_capture (course resolutions), `splatcourse download`, the manifest tests.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from ..paths import manifest_path

CHUNK = 1 << 20


@dataclass(frozen=True)
class FileEntry:
    """One original file of the source repository."""

    path: str  # relative, with forward slashes
    blob_sha1: str  # git's name for the content: sha1(b"blob <size>\0" + content)
    size: int | None  # bytes; None where the list does not know it (checked by SHA-1 alone)


@dataclass(frozen=True)
class DeriveParams:
    """How the course copy is made from the originals (recorded with every derived file)."""

    image_width: int  # photos are resized to this width, height keeping the aspect ratio
    jpeg_quality: int
    mask_threshold: int  # mask pixels above this (after resizing) are object (255), others 0
    resample: str = "LANCZOS"  # a Pillow resampling filter, for photos and masks


@dataclass
class CaptureEntry:
    name: str
    title: str
    source_url: str
    source_repo: str  # owner/name on GitHub
    source_commit: str  # full 40-hex commit: the files never change under it
    raw_url_template: str  # with {repo}, {commit} and {path} (URL-quoted)
    source_files: Path  # the tab-separated list of original files
    derive: DeriveParams
    licence: str
    licence_url: str
    attribution: str
    default_width: int | None = None
    notes: list[str] = field(default_factory=list)

    def files(self) -> list[FileEntry]:
        """The original files to download (read from `source_files` on each call)."""
        return read_source_files(self.source_files)

    def file_url(self, path: str) -> str:
        """Where the original `path` is served at the pinned commit."""
        return self.raw_url_template.format(
            repo=self.source_repo, commit=self.source_commit, path=urllib.parse.quote(path)
        )


def load_manifest(path: str | Path | None = None) -> dict[str, CaptureEntry]:
    path = Path(path) if path is not None else manifest_path()
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"capture manifest not found: {path}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    return {name: _parse_entry(name, e, path) for name, e in raw.get("captures", {}).items()}


def _parse_entry(name: str, e: dict, path: Path) -> CaptureEntry:
    try:
        entry = CaptureEntry(
            name=name,
            title=e.get("title", name),
            source_url=e["source_url"],
            source_repo=e["source_repo"],
            source_commit=e["source_commit"].lower(),
            raw_url_template=e["raw_url_template"],
            source_files=path.parent / e["source_files"],  # relative to the manifest
            derive=DeriveParams(**e["derive"]),
            licence=e["licence"],
            licence_url=e.get("licence_url", ""),
            attribution=e["attribution"],
            default_width=e.get("default_width"),
            notes=e.get("notes", []),
        )
    except KeyError as err:
        raise ValueError(f"{path}: capture {name!r} is missing field {err}") from None
    except TypeError as err:
        raise ValueError(f"{path}: capture {name!r} has a malformed field ({err})") from None
    if not _is_hex40(entry.source_commit):
        raise ValueError(
            f"{path}: capture {name!r}: source_commit must be a full 40-hex commit "
            f"(a short one could become ambiguous), got {entry.source_commit!r}"
        )
    return entry


def _is_hex40(text: str) -> bool:
    return len(text) == 40 and all(c in "0123456789abcdef" for c in text.lower())


def read_source_files(path: str | Path) -> list[FileEntry]:
    """Parse a list of original files: `path<TAB>blob SHA-1<TAB>size or unknown` per line,
    `#` comment lines. Errors name the file and the line."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"list of source files not found: {path}") from None
    files = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(f"{path}:{number}: expected path, blob SHA-1 and size, got {line!r}")
        rel, blob, size = fields
        if not _is_hex40(blob):
            raise ValueError(f"{path}:{number}: {blob!r} is not a 40-hex git blob SHA-1")
        if size != "unknown" and not size.isdigit():
            raise ValueError(f"{path}:{number}: size {size!r} is neither bytes nor 'unknown'")
        files.append(FileEntry(rel, blob.lower(), None if size == "unknown" else int(size)))
    if not files:
        raise ValueError(f"{path}: lists no files")
    return files


def get_entry(name: str, path: str | Path | None = None) -> CaptureEntry:
    entries = load_manifest(path)
    if name not in entries:
        raise KeyError(
            f"capture {name!r} is not in the manifest "
            f"(known: {', '.join(sorted(entries)) or 'none'})"
        )
    return entries[name]


def _hash_file(h, path: str | Path) -> str:
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: str | Path) -> str:
    return _hash_file(hashlib.sha256(), path)


def git_blob_sha1(path: str | Path) -> str:
    """The id git gives this file's content (`git hash-object FILE`)."""
    size = Path(path).stat().st_size
    return _hash_file(hashlib.sha1(b"blob %d\0" % size), path)


class FileProblem(Exception):
    """What is wrong with one original file; the subclass names the kind of problem."""

    kind = "unusable"

    def __init__(self, path: str, detail: str):
        super().__init__(f"{path}: {self.kind}: {detail}")
        self.path, self.detail = path, detail


class MissingFile(FileProblem):
    kind = "missing"


class TruncatedFile(FileProblem):
    kind = "truncated"


class CorruptFile(FileProblem):
    kind = "corrupt"


def check_file(path: Path, entry: FileEntry) -> FileProblem | None:
    """None when the file at `path` is the original `entry`, else what is wrong with it."""
    if not path.is_file():
        return MissingFile(entry.path, f"no file at {path}")
    size = path.stat().st_size
    if entry.size is not None and size < entry.size:
        return TruncatedFile(entry.path, f"{size} bytes, expected {entry.size}")
    if entry.size is not None and size > entry.size:
        return CorruptFile(entry.path, f"{size} bytes, expected {entry.size}")
    blob = git_blob_sha1(path)
    if blob != entry.blob_sha1:
        return CorruptFile(
            entry.path, f"git blob SHA-1 {blob}, expected {entry.blob_sha1} ({size} bytes)"
        )
    return None


def verify_folder(entry: CaptureEntry, folder: str | Path) -> list[str]:
    """Problems in a folder of original files (e.g. a clone of the source repository), as
    'path: kind: detail' strings; empty when every listed file is there and intact."""
    folder = Path(folder)
    problems = (check_file(folder / f.path, f) for f in entry.files())
    return [str(p) for p in problems if p is not None]
