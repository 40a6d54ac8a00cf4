"""`load_capture`: one call that finds a capture by name or path and loads it.

Search order for a name: an explicit path; the course data folder `data/captures/NAME`
(where `splatcourse download NAME` installs it); the shared data folder
(`$SPLATCOURSE_SHARED_DATA/NAME`, default `<repo>/../shared/data/NAME`). The name "default"
(or "synthetic") is the course's own synthetic capture.

A named capture that is not found raises FileNotFoundError saying how to get it: a fit of the
synthetic object reported as a fit of the axe would be a wrong result, not a convenience. Only
an explicit `fallback=True` substitutes the synthetic capture, with a banner on stdout and a
warning; under nbgrader (`NBGRADER_EXECUTION` set) even that is refused, so a grade is never
computed on the wrong data.

Used by: lessons 5-7 and exercise 4 (load_capture), the grader's fit in train.recipes.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..paths import ENV_SHARED, captures_dir, shared_data_dir
from .colmap import find_model_dir, load_colmap
from .dataset import Capture
from .manifest import CaptureEntry, load_manifest
from .photoscan import load_photoscan_folder
from .synthetic import synthetic_capture
from .transforms_json import load_transforms_json

#: The real capture the course is built around.
COURSE_CAPTURE = "socketed_axe_arreton"
SYNTHETIC_NAMES = ("default", "synthetic")
SYNTHETIC_WIDTH = 128
#: Set by nbgrader while it executes a notebook for grading.
ENV_GRADING = "NBGRADER_EXECUTION"


class SyntheticSubstituteWarning(UserWarning):
    """`load_capture(NAME, fallback=True)` loaded the synthetic capture instead of NAME."""


def find_capture(name: str) -> Path | None:
    """The folder holding capture `name`, or None (see the module docstring for the order)."""
    for root in (captures_dir(), shared_data_dir()):
        if (root / name).is_dir():
            return root / name
    return None


def _manifest_entry(name: str) -> CaptureEntry | None:
    try:
        return load_manifest().get(name)
    except (FileNotFoundError, ValueError):
        return None


def load_folder(
    path: str | Path,
    width: int | None = None,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    name: str | None = None,
    attribution: str = "",
) -> Capture:
    """Load a capture folder in any supported format (detected from its files)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        return load_transforms_json(path, width, background, name, attribution)
    if not path.is_dir():
        raise FileNotFoundError(f"capture not found: {path}")
    if not attribution:
        attribution = _attribution_from_folder(path)
    if (path / "transforms.json").is_file():
        return load_transforms_json(path, width, background, name, attribution)
    if find_model_dir(path) is not None:
        return load_colmap(
            path, width=width, background=background, name=name, attribution=attribution
        )
    if any(path.glob("*.xml")) or any(path.glob("*/*.xml")):
        return load_photoscan_folder(path, width, background, name, attribution)
    raise ValueError(
        f"{path}: no capture found (looked for transforms.json, a COLMAP model in "
        f"sparse/0, or a PhotoScan camera XML)"
    )


def _attribution_from_folder(path: Path) -> str:
    for fname in ("ATTRIBUTION.md", "ATTRIBUTION.txt", "LICENSE.md", "LICENSE"):
        if (path / fname).is_file():
            return (path / fname).read_text().strip()
    return ""


def _how_to_get(key: str, entry: CaptureEntry | None) -> str:
    """Where the loader looked and what gets the capture there."""
    where = f"capture {key!r} not found in {captures_dir() / key} or {shared_data_dir() / key}."
    if entry is None:
        return (
            f"{where} It is not in data/manifest.json either: pass the path of a capture "
            "folder (or of a transforms.json) instead."
        )
    return (
        f"{where} Get it with one of:\n"
        f"  splatcourse download {key}\n"
        f"      (fetches the original files from {entry.source_url}, verifies them and makes "
        f"{captures_dir() / key});\n"
        f"  or put the shared copy, a folder named {key}, into {shared_data_dir()}\n"
        f"      (or set ${ENV_SHARED} to the folder that holds it)."
    )


def _refuse_or_announce_substitute(key: str, entry: CaptureEntry | None, fallback: bool) -> None:
    """Raise FileNotFoundError for a missing named capture, unless the caller asked for the
    synthetic substitute (and is not being graded): then say so loudly."""
    how = _how_to_get(key, entry)
    if os.environ.get(ENV_GRADING):
        raise FileNotFoundError(
            f"{how}\nFor the instructor: this notebook is being graded ({ENV_GRADING} is set), "
            f"so it may not fall back to the synthetic capture; install {key!r} on the grading "
            "machine as above and grade again."
        )
    if not fallback:
        raise FileNotFoundError(
            f"{how}\nTo work on the synthetic capture instead, load it by name: "
            'load_capture("default").'
        )
    rule = "!" * 78
    print(
        f"{rule}\n!! SUBSTITUTE: capture {key!r} was NOT FOUND; loading the SYNTHETIC capture "
        f"instead (fallback=True).\n!! Everything below is about the synthetic object, not "
        f"{key!r}.\n!! {how.replace(chr(10), chr(10) + '!! ')}\n{rule}"
    )
    warnings.warn(
        f"capture {key!r} not found: loaded the synthetic capture instead (fallback=True)",
        SyntheticSubstituteWarning,
        stacklevel=3,
    )


def load_capture(
    name: str | Path = "default",
    width: int | None = None,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    fallback: bool = False,
    verbose: bool = True,
) -> Capture:
    """Find and load a capture.

    name: "default"/"synthetic", a capture name from data/manifest.json (e.g.
        "socketed_axe_arreton"), or a path to a capture folder / transforms.json.
    width: image width to load at (height keeps the aspect ratio). None uses the course
        resolution: 256x170 for the socketed axe (half its 512x341 photos: the object then
        covers ~4,500 pixels per view, enough for SSIM >= 0.9 in minutes on a CPU), 128x96
        for the synthetic capture, the native size for anything else.
    background: the constant colour put outside the object masks (and used by renders).
    fallback: if the named capture is not found, load the synthetic one instead, with a
        banner and a SyntheticSubstituteWarning, rather than raising FileNotFoundError (which
        says how to get the capture). Refused while nbgrader executes a notebook.
    """
    key = str(name)
    if key in SYNTHETIC_NAMES:
        cap = synthetic_capture(width=width or SYNTHETIC_WIDTH, background=background)
    else:
        entry = _manifest_entry(key)
        path = Path(key).expanduser()
        folder = path if path.exists() else find_capture(key)
        if folder is None:
            _refuse_or_announce_substitute(key, entry, fallback)
            cap = synthetic_capture(width=width or SYNTHETIC_WIDTH, background=background)
        else:
            if width is None and entry is not None:
                width = entry.default_width
            cap = load_folder(
                folder,
                width,
                background,
                name=entry.name if entry is not None else None,
                attribution=entry.attribution if entry is not None else "",
            )
    if verbose:
        print(cap.summary())
    return cap
