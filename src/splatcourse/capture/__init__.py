"""Captures: photos + cameras + sparse points, loaded into one `Capture` for training.

    from splatcourse.capture import load_capture
    cap = load_capture("socketed_axe_arreton")   # or "default" (synthetic, no download)
    cap.images, cap.masks, cap.viewmats, cap.Ks, cap.points, cap.train_idx, cap.test_idx

Formats: PhotoScan/Metashape XML (+ Bundler .out points), COLMAP models, transforms.json
(nerfstudio / instant-ngp). Each format is parsed into `Frame`s, and `assemble` loads any list
of frames the same way (mask names, photos of different sizes: see `capture.frames`).
`splatcourse download NAME` fetches the original files of a capture listed in
data/manifest.json from its source repository, verifies them by git blob SHA-1 and derives the
course copy (`capture.derive`).

Used by: lessons 5-7 and exercise 4 (through load_capture), the capture benches.
"""

from typing import TYPE_CHECKING

from .bundler import BundlerModel, read_bundler
from .colmap import ColmapModel, load_colmap, read_colmap_model, write_colmap_text
from .dataset import TEST_EVERY, Capture, View, points_inside_masks, split_indices
from .frames import Frame, assemble, find_mask
from .load import (
    COURSE_CAPTURE,
    SyntheticSubstituteWarning,
    find_capture,
    load_capture,
    load_folder,
)
from .manifest import CaptureEntry, load_manifest, sha256_file, verify_folder
from .photoscan import PhotoScanDocument, load_photoscan_folder, read_photoscan_xml
from .synthetic import synthetic_capture
from .transforms_json import load_transforms_json, write_transforms_json

if TYPE_CHECKING:  # for type checkers only: at run time __getattr__ imports them on first use
    from .download import CaptureDownloadError, download_capture


def __getattr__(name: str):
    # Imported on first use so that `python -m splatcourse.capture.download` does not import
    # the module twice (runpy warns about that).
    if name in ("download_capture", "CaptureDownloadError"):
        from . import download

        return getattr(download, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "COURSE_CAPTURE",
    "TEST_EVERY",
    "BundlerModel",
    "Capture",
    "CaptureDownloadError",
    "CaptureEntry",
    "ColmapModel",
    "Frame",
    "PhotoScanDocument",
    "SyntheticSubstituteWarning",
    "View",
    "assemble",
    "download_capture",
    "find_capture",
    "find_mask",
    "load_capture",
    "load_colmap",
    "load_folder",
    "load_manifest",
    "load_photoscan_folder",
    "load_transforms_json",
    "points_inside_masks",
    "read_bundler",
    "read_colmap_model",
    "read_photoscan_xml",
    "sha256_file",
    "split_indices",
    "synthetic_capture",
    "verify_folder",
    "write_colmap_text",
    "write_transforms_json",
]
