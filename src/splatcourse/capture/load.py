"""`load_capture`: one call that finds a capture by name or path and loads it.

Search order for a name: an explicit path; the course data folder `data/captures/NAME`
(where `python -m splatcourse.capture.download NAME` installs it); the shared data folder
(`$SPLATCOURSE_SHARED_DATA/NAME`, default `<repo>/../shared/data/NAME`). The name "default"
(or "synthetic") is the course's own synthetic capture, and with `fallback=True` a named
capture that is not found anywhere is replaced by it, with a printed note, so notebooks run
with no download.
"""

from __future__ import annotations

from pathlib import Path

from ..paths import captures_dir, shared_data_dir
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


def load_capture(
    name: str | Path = "default",
    width: int | None = None,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    fallback: bool = True,
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
    fallback: if the named capture is not found, load the synthetic one instead (printing
        how to get the real one) rather than raising FileNotFoundError.
    """
    key = str(name)
    if key in SYNTHETIC_NAMES:
        cap = synthetic_capture(width=width or SYNTHETIC_WIDTH, background=background)
    else:
        entry = _manifest_entry(key)
        path = Path(key).expanduser()
        folder = path if path.exists() else find_capture(key)
        if folder is None:
            where = f"{captures_dir() / key} or {shared_data_dir() / key}"
            hint = (
                f"download it with `python -m splatcourse.capture.download {key}`"
                if entry is not None
                else "pass a path to a capture folder"
            )
            if not fallback:
                raise FileNotFoundError(f"capture {key!r} not found in {where}; {hint}")
            print(
                f"Note: capture {key!r} not found in {where} ({hint}); "
                f"using the synthetic capture instead."
            )
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
