"""`Frame`, what every capture format is parsed into, and `assemble`, which loads frames into a
`Capture`.

Each format module (photoscan, colmap, transforms_json) only reads its own files: it produces a
list of `Frame`s (photo, mask, pose, intrinsics) plus sparse points. Reading, resizing, masking
and stacking the photos happens here, once, so every format follows the same two rules.

**Mask files.** A photo's object mask (white = object) is, first found:
  1. the file the format names for that photo (transforms.json `mask_path`);
  2. the photo's mask in the `masks/` folder beside the photos (for transforms.json: beside
     the file), found by `find_mask`. When that folder exists, every photo must have a mask in
     it: a missing one is an error that names the photo and the file names tried;
  3. the photo's own alpha channel (RGBA PNGs, as in the NeRF-synthetic scenes).
For a photo `IMG_1.JPG`, `find_mask` accepts, in this order of preference: `IMG_1_mask.png`,
`IMG_1_mask.jpg`, `IMG_1_mask.JPG`, `IMG_1.png`, `IMG_1.JPG.png` (the union of the names
the PhotoScan and COLMAP loaders used to accept; the first is the MicroPasts layout, the last
COLMAP's own). A capture is masked either everywhere or nowhere: if some frames have a mask and
others none, `assemble` refuses and names one without.

**Photos of different sizes** load. All photos are resampled to one size: the most common
photo size among the frames (the first frame's on a tie), scaled to `width`. Each frame's K
is scaled from the image size it was calibrated at (`Frame.K_size`) to that size, separately
in x and y, which is exact for a pinhole camera, so a resized copy, a second phone, or a
portrait shot among landscapes all project correctly (a `notes` line lists the photos that
were resampled from another size). Why: a student's own phone photos are often mixed like this,
and refusing them would only send the student off to resize photos by hand for no geometric
reason. The one thing refused is a photo whose *shape* differs from its calibration's (rotated
or cropped after calibration: scaling cannot fix its K); the error names the file and both
sizes.

Used by: every capture format's loader, so lessons 5-7 and exercise 4.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .dataset import Capture, rgb_floats
from .images import composite, image_size, read_mask, read_rgba, stack_images, target_size

#: Mask file names `find_mask` tries, best first ({stem}: the photo's name without extension).
MASK_NAMES = ("{stem}_mask.png", "{stem}_mask.jpg", "{stem}_mask.JPG", "{stem}.png", "{name}.png")


@dataclass(frozen=True, eq=False)
class Frame:
    """One photo and its camera, as a format file describes it (no pixels read yet)."""

    name: str  # the photo's name in `Capture.image_names`
    image_path: Path
    viewmat: np.ndarray  # [4, 4] world-to-camera, OpenCV convention (x right, y down, z ahead)
    K: np.ndarray  # [3, 3] pinhole intrinsics in pixels of an image of size K_size
    K_size: tuple[int, int] | None = None  # (w, h) K was calibrated at; None: the photo's own
    mask_path: Path | None = None  # the object mask; None: the photo's alpha channel, if any


def find_mask(masks_dir: Path | None, image_name: str) -> Path | None:
    """The mask file of photo `image_name` (a path relative to the photos' folder) in
    `masks_dir`, trying `MASK_NAMES` in order; None when there is no masks folder."""
    if masks_dir is None:
        return None
    photo = Path(image_name)
    tried = [
        masks_dir / photo.parent / pattern.format(stem=photo.stem, name=photo.name)
        for pattern in MASK_NAMES
    ]
    found = next((p for p in tried if p.is_file()), None)
    if found is None:
        raise FileNotFoundError(
            f"{masks_dir}: no mask for photo {image_name} "
            f"(looked for {', '.join(p.name for p in tried)})"
        )
    return found


def masks_folder_in(folder: Path) -> Path | None:
    """`folder/masks` (beside the photos' folder, or beside transforms.json), if it exists."""
    masks_dir = folder / "masks"
    return masks_dir if masks_dir.is_dir() else None


def assemble(
    frames: Sequence[Frame],
    *,
    name: str,
    source: str,
    width: int | None = None,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    points: np.ndarray | None = None,
    point_colors: np.ndarray | None = None,
    bbox: np.ndarray | None = None,
    attribution: str = "",
    notes: Sequence[str] = (),
) -> Capture:
    """Read, resize, mask and stack the frames' photos into a `Capture` (rules: module docstring).

    points [M, 3] and point_colors [M, 3] in [0, 1] are the sparse points (none if omitted);
    bbox [2, 3] the object's (min, max) corners if known; notes what the parser skipped.
    """
    if not frames:
        raise ValueError(f"{source}: no frames to load")
    native = [image_size(f.image_path) for f in frames]
    for frame, size in zip(frames, native):
        _check_calibration_shape(frame, size)
    common = Counter(native).most_common(1)[0][0]  # the first seen wins a tie
    size = target_size(*common, width)
    photos, masks = zip(*(_read_photo(f, size, background) for f in frames))
    if points is None:
        points, point_colors = np.zeros((0, 3)), np.zeros((0, 3))
    return Capture(
        name=name,
        images=stack_images(list(photos)),  # [N, H, W, 3]
        masks=_stack_masks(frames, masks, source),  # [N, H, W] or None
        viewmats=torch.tensor(np.stack([f.viewmat for f in frames]), dtype=torch.float32),
        Ks=torch.tensor(
            np.stack([_K_at(f, own, size) for f, own in zip(frames, native)]), dtype=torch.float32
        ),
        image_names=[f.name for f in frames],
        points=torch.tensor(points, dtype=torch.float32),  # [M, 3]
        point_colors=torch.tensor(point_colors, dtype=torch.float32),  # [M, 3]
        attribution=attribution,
        background=rgb_floats(background),
        bbox=None if bbox is None else torch.tensor(bbox, dtype=torch.float32),
        source=source,
        notes=[*notes, *_resampled_note(frames, native, common, size)],
    )


def _check_calibration_shape(frame: Frame, size: tuple[int, int]) -> None:
    """Refuse a photo whose aspect ratio is not its calibration's (beyond integer rounding)."""
    if frame.K_size is None:
        return
    (w, h), (kw, kh) = size, frame.K_size
    if abs(h - kh * w / kw) > max(1.0, 0.01 * h):
        raise ValueError(
            f"{frame.image_path}: the photo is {w}x{h} but its camera was calibrated at "
            f"{kw}x{kh}, a different shape (rotated or cropped?), so its intrinsics do not fit"
        )


def _K_at(frame: Frame, native: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """[3, 3] the frame's K for its photo resampled to size = (w, h)."""
    kw, kh = frame.K_size or native
    K = np.array(frame.K, dtype=np.float64)
    K[0] *= size[0] / kw  # fx, skew, cx
    K[1] *= size[1] / kh  # fy, cy
    return K


def _read_photo(
    frame: Frame, size: tuple[int, int], background: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray | None]:
    """(rgb [H, W, 3] composited over background where masked, mask [H, W] bool or None)."""
    rgb, alpha = read_rgba(frame.image_path, size)
    cover = alpha if frame.mask_path is None else read_mask(frame.mask_path, size)
    if cover is None:
        return rgb, None
    return composite(rgb, cover, background), cover >= 0.5


def _stack_masks(
    frames: Sequence[Frame], masks: Sequence[np.ndarray | None], source: str
) -> torch.Tensor | None:
    unmasked = [f.name for f, m in zip(frames, masks) if m is None]
    if len(unmasked) == len(frames):
        return None
    if unmasked:
        raise ValueError(
            f"{source}: {len(frames) - len(unmasked)} of {len(frames)} photos have a mask "
            f"(a mask file or an alpha channel) but {len(unmasked)} have none, e.g. "
            f"{unmasked[0]}; give every photo a mask, or none"
        )
    return torch.from_numpy(np.stack([m for m in masks if m is not None]))  # [N, H, W], all N


def _resampled_note(
    frames: Sequence[Frame],
    native: Sequence[tuple[int, int]],
    common: tuple[int, int],
    size: tuple[int, int],
) -> list[str]:
    odd = [f"{f.name} ({w}x{h})" for f, (w, h) in zip(frames, native) if (w, h) != common]
    if not odd:
        return []
    note = (
        f"photos not {common[0]}x{common[1]} like most, resampled to {size[0]}x{size[1]} "
        f"with their intrinsics scaled: {', '.join(odd)}"
    )
    return [note]
