"""`data/manifest.json`: which captures the course knows, where they come from, their licence,
and the size and sha256 of every file, so a download or a local copy can be verified.

Refresh the file list of an entry from a trusted local copy with
`python -m splatcourse.capture.manifest NAME FOLDER` (prints the JSON; review, then commit).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..paths import manifest_path


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, with forward slashes
    size: int
    sha256: str


@dataclass
class CaptureEntry:
    name: str
    title: str
    source_url: str
    licence: str
    licence_url: str
    attribution: str
    base_url: str
    files: list[FileEntry]
    default_width: int | None = None
    notes: list[str] = field(default_factory=list)


def load_manifest(path: str | Path | None = None) -> dict[str, CaptureEntry]:
    path = Path(path) if path is not None else manifest_path()
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"capture manifest not found: {path}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    out = {}
    for name, e in raw.get("captures", {}).items():
        try:
            files = [FileEntry(f["path"], int(f["size"]), f["sha256"].lower()) for f in e["files"]]
            out[name] = CaptureEntry(
                name=name,
                title=e.get("title", name),
                source_url=e["source_url"],
                licence=e["licence"],
                licence_url=e.get("licence_url", ""),
                attribution=e["attribution"],
                base_url=e["base_url"],
                files=files,
                default_width=e.get("default_width"),
                notes=e.get("notes", []),
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"{path}: capture {name!r} is missing field {err}") from None
    return out


def get_entry(name: str, path: str | Path | None = None) -> CaptureEntry:
    entries = load_manifest(path)
    if name not in entries:
        raise KeyError(
            f"capture {name!r} is not in the manifest "
            f"(known: {', '.join(sorted(entries)) or 'none'})"
        )
    return entries[name]


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_file(path: Path, entry: FileEntry) -> str | None:
    """None when the file matches the manifest, else what is wrong with it."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size != entry.size:
        return f"size {size} bytes, expected {entry.size} (truncated or a different file)"
    digest = sha256_file(path)
    if digest != entry.sha256:
        return (
            f"sha256 {digest[:16]}..., expected {entry.sha256[:16]}... "
            "(corrupt or a different version)"
        )
    return None


def verify_folder(entry: CaptureEntry, folder: str | Path) -> list[str]:
    """Problems found in a local copy, as 'path: problem' strings (empty when all is well)."""
    folder = Path(folder)
    problems = []
    for f in entry.files:
        p = check_file(folder / f.path, f)
        if p:
            problems.append(f"{f.path}: {p}")
    return problems


def hash_folder(folder: str | Path) -> list[FileEntry]:
    """Manifest entries for every file below a folder (hidden files skipped), sorted."""
    folder = Path(folder)
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    return [
        FileEntry(p.relative_to(folder).as_posix(), p.stat().st_size, sha256_file(p)) for p in files
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m splatcourse.capture.manifest NAME FOLDER", file=sys.stderr)
        return 2
    files = [f.__dict__ for f in hash_folder(argv[1])]
    print(json.dumps({argv[0]: {"files": files}}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
