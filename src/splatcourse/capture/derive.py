"""The course copy of a capture, derived locally from its verified original files.

The originals are large (5184x3456 photos, about 4 MB each); the course trains on small
copies. From a MicroPasts-style repository (`photos/`, `masks/`, `other/`) this writes:

    images/NAME.JPG       photos/NAME.JPG resized to `image_width` (height keeps the aspect
                          ratio), Pillow LANCZOS, JPEG at `jpeg_quality`
    masks/NAME_mask.png   masks/NAME_mask.JPG resized the same way, then binarised: above
                          `mask_threshold` is object (255), the rest 0; PNG
    other/...             copied unchanged (camera XML, markers XML, Bundler .out)
    README.original.md    the repository's README.md, unchanged
    LICENSE.md            unchanged
    ATTRIBUTION.md, SOURCE.md   written from the manifest entry
    derived.json          the record: every file above with its size, sha256, the original
                          (path and git blob SHA-1) it came from, and the parameters

The record says what was made, from what; it never vouches for the source (the originals are
verified by their git blob SHA-1 before anything is derived). A file whose record no longer
matches (changed, missing, made from another original or with other parameters) is made again.

Used by: `splatcourse download` (the course copy of the axe that lesson 5 and exercise 4 load).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import PIL
from PIL import Image

from .manifest import CaptureEntry, FileEntry, sha256_file

RECORD = "derived.json"
GENERATED = "manifest"  # the `source` of files written from the manifest entry


@dataclass(frozen=True)
class Derivation:
    """One file of the course copy and the original it is made from."""

    path: str  # in the capture folder
    kind: str  # "photo", "mask", "copy" or "text"
    source: FileEntry | None  # None for files written from the manifest entry


def derived_path(original: str) -> tuple[str, str]:
    """(path in the course copy, kind) for an original file of the source repository."""
    folder, _, rest = original.partition("/")
    if folder == "photos" and rest:
        return f"images/{rest}", "photo"
    if folder == "masks" and rest:
        return f"masks/{Path(rest).stem}.png", "mask"
    if folder == "other" and rest:
        return original, "copy"
    if original == "README.md":
        return "README.original.md", "copy"
    if original == "LICENSE.md":
        return original, "copy"
    raise ValueError(
        f"{original}: no rule derives a course file from it (known: photos/, masks/, other/, "
        f"README.md, LICENSE.md); remove it from the list of source files or add a rule"
    )


def plan(files: list[FileEntry]) -> list[Derivation]:
    """Every file of the course copy, in the order of `files`, then the two written ones."""
    out = [Derivation(*derived_path(f.path), source=f) for f in files]
    out += [Derivation(name, "text", None) for name in ("ATTRIBUTION.md", "SOURCE.md")]
    return out


def photo_size(width: int, height: int, new_width: int) -> tuple[int, int]:
    """(w, h) at `new_width`, height rounded to the nearest pixel (5184x3456 -> 512x341)."""
    return new_width, max(1, round(height * new_width / width))


def _resample(entry: CaptureEntry) -> Image.Resampling:
    try:
        return Image.Resampling[entry.derive.resample]
    except KeyError:
        raise ValueError(
            f"capture {entry.name!r}: derive.resample {entry.derive.resample!r} is not a Pillow "
            f"filter (one of {', '.join(r.name for r in Image.Resampling)})"
        ) from None


def _write_photo(src: Path, out, entry: CaptureEntry) -> None:
    # EXIF orientation is ignored on purpose: the cameras were calibrated on the stored pixels.
    with Image.open(src) as im:
        small = im.convert("RGB").resize(
            photo_size(*im.size, entry.derive.image_width), _resample(entry)
        )
    small.save(out, "JPEG", quality=entry.derive.jpeg_quality)


def _write_mask(src: Path, out, entry: CaptureEntry) -> None:
    threshold = entry.derive.mask_threshold
    with Image.open(src) as im:
        grey = im.convert("L").resize(
            photo_size(*im.size, entry.derive.image_width), _resample(entry)
        )
    lut = [255 if v > threshold else 0 for v in range(256)]
    binary = grey.point(lut)  # object or not: the JPEG ringing goes
    binary.save(out, "PNG", optimize=True)


def attribution_text(entry: CaptureEntry) -> str:
    return (
        f"# Attribution\n\n{entry.attribution}\n\n"
        f"Licence: {entry.licence} ({entry.licence_url}).\n"
        f"Source: {entry.source_url} at commit {entry.source_commit}.\n"
        "The repository's LICENSE.md is copied unchanged as LICENSE.md, its README.md as "
        "README.original.md.\n"
    )


def source_text(entry: CaptureEntry) -> str:
    d = entry.derive
    notes = "".join(f"- {n}\n" for n in entry.notes)
    return (
        f"# Source: {entry.title}\n\n"
        f"- Repository: {entry.source_url}, commit `{entry.source_commit}`.\n"
        f"- Original files: listed with their git blob SHA-1 and size in the course's "
        f"`data/{entry.source_files.parent.name}/{entry.source_files.name}`; each one was "
        "verified before anything here was made from it.\n"
        f"- Licence: {entry.licence} ({entry.licence_url}); see ATTRIBUTION.md.\n\n"
        f"## What is here (made by `splatcourse download {entry.name}`)\n\n"
        f"- `images/`: the photos resized to {d.image_width} px wide (height keeps the aspect "
        f"ratio), Pillow {d.resample}, JPEG quality {d.jpeg_quality}, original file names.\n"
        f"- `masks/`: the JPEG masks resized the same way, then above {d.mask_threshold} -> 255 "
        "(object), else 0, saved as PNG.\n"
        "- `other/` copied unchanged; `README.original.md` is the repository's README.md, "
        "`LICENSE.md` its LICENSE.md, both unchanged.\n"
        f"- `{RECORD}`: every file made here, its size and sha256, and the original (path, git "
        "blob SHA-1) it came from.\n\n"
        f"## Notes\n\n{notes}"
    )


def _text(entry: CaptureEntry, path: str) -> bytes:
    return (attribution_text if path == "ATTRIBUTION.md" else source_text)(entry).encode()


def _writer(d: Derivation, originals: Path, entry: CaptureEntry) -> Callable[[Path], object]:
    """A function that writes the derived file `d` to the path it is given."""
    if d.source is None:
        return lambda out: out.write_bytes(_text(entry, d.path))
    src = originals / d.source.path
    if d.kind == "photo":
        return lambda out: _write_photo(src, out, entry)
    if d.kind == "mask":
        return lambda out: _write_mask(src, out, entry)
    return lambda out: shutil.copyfile(src, out)


def _write_atomic(target: Path, write: Callable[[Path], object]) -> None:
    """An interrupted run leaves a .tmp file, never half a file under the real name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _row(d: Derivation, folder: Path) -> dict:
    target = folder / d.path
    return {
        "path": d.path,
        "size": target.stat().st_size,
        "sha256": sha256_file(target),
        "source": d.source.path if d.source else GENERATED,
        "source_blob_sha1": d.source.blob_sha1 if d.source else None,
    }


def parameters(entry: CaptureEntry) -> dict:
    return {**dataclasses.asdict(entry.derive), "png_optimize": True}


def read_record(folder: Path) -> dict:
    """The record of an earlier derivation, or an empty one (missing or unreadable)."""
    try:
        record = json.loads((folder / RECORD).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


def _is_current(d: Derivation, row: dict | None, folder: Path, entry: CaptureEntry) -> bool:
    """Whether the file on disk is still what the record says, made from the same original."""
    target = folder / d.path
    if row is None or not target.is_file() or target.stat().st_size != row.get("size"):
        return False
    if d.source is None:  # written from the manifest entry: compare with what it says now
        return target.read_bytes() == _text(entry, d.path)
    same_source = row.get("source_blob_sha1") == d.source.blob_sha1
    return same_source and sha256_file(target) == row.get("sha256")


def derive_capture(
    entry: CaptureEntry, originals: str | Path, folder: str | Path, progress=None
) -> list[str]:
    """Make (or bring up to date) the course copy of `entry` in `folder` from the verified
    originals in `originals`; returns the paths it (re)made. `progress(path)` is called after
    each file made."""
    originals, folder = Path(originals), Path(folder)
    record = read_record(folder)
    same_params = record.get("parameters") == parameters(entry)
    rows = {r["path"]: r for r in record.get("files", [])} if same_params else {}
    made = []
    new_rows = []
    for d in plan(entry.files()):
        if not _is_current(d, rows.get(d.path), folder, entry):
            _write_atomic(folder / d.path, _writer(d, originals, entry))
            made.append(d.path)
            if progress is not None:
                progress(d.path)
        new_rows.append(_row(d, folder) if d.path in made else rows[d.path])
    if made or not same_params or len(rows) != len(new_rows):
        _write_record(folder, entry, new_rows)
    return made


def _write_record(folder: Path, entry: CaptureEntry, rows: list[dict]) -> None:
    record = {
        "capture": entry.name,
        "source_repo": entry.source_repo,
        "source_commit": entry.source_commit,
        "parameters": parameters(entry),
        "pillow": PIL.__version__,
        "comment": "Files made from the verified originals; this record is not a checksum "
        "of the source.",
        "files": rows,
    }
    text = json.dumps(record, indent=1) + "\n"
    _write_atomic(folder / RECORD, lambda out: out.write_text(text))
