"""The visual hull: the object's shape from its masks and known cameras, by space carving.

Why: a capture with poses and masks but no sparse points (a PhotoScan export without its
tie points, a turntable rig) would otherwise start training from random "fog" in a box, which
trains slowly and badly. Every point of the object projects inside the object mask in every
photo that sees it, so carving away each voxel that lands on background in some photo leaves
a shell around the object: rough (concavities stay filled) but the right size and place,
which is all an initialisation needs. Its surface voxels become coloured points.

Two passes: a coarse grid in the volume all cameras look at finds the object's box, then a
grid of `voxels` cells on the box's longest side is carved again. Plain numpy, one view at a
time, so memory stays at a few grids whatever the number of photos.

Used by: capture.sfm (known poses + masks) and the trainer's initialisation (train.model).
"""

from __future__ import annotations

import numpy as np
import torch

from .dataset import Capture

#: Cells on the longest side of the first, coarse grid (it only has to find the object's box).
COARSE_VOXELS = 40
#: A voxel must fall inside the frame of at least this fraction of the photos to be kept, so
#: the corners of the grid that hardly any photo sees do not survive for lack of evidence.
MIN_SEEN_FRACTION = 0.5


def visual_hull(capture: Capture, voxels: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """(points [M, 3], colours [M, 3] in [0, 1]): the carved hull's surface voxel centres,
    each coloured from the photo that faces it best. Needs masks."""
    if capture.masks is None:
        raise ValueError(f"{capture.name}: the visual hull needs object masks; this has none")
    views = _Views(capture)
    lo, hi = _viewing_volume(views)
    occupied, centres = _carve(views, lo, hi, COARSE_VOXELS)
    if not occupied.any():
        raise ValueError(
            f"{capture.name}: carving left nothing: no point lies inside the object mask in "
            "every photo that sees it (are the masks white on the object, and the poses right?)"
        )
    cell = (hi - lo) / (COARSE_VOXELS - 1)
    kept = centres[occupied.ravel()]
    occupied, centres = _carve(views, kept.min(0) - cell, kept.max(0) + cell, voxels)
    surface = _surface(occupied)
    points = centres[surface.ravel()]  # [M, 3]
    normals = _outward_normals(occupied)[surface]  # [M, 3]
    colours = _facing_colours(views, points, normals)  # [M, 3]
    return torch.from_numpy(points).float(), torch.from_numpy(colours).float()


class _Views:
    """The capture's cameras and masks as numpy arrays (what carving reads)."""

    def __init__(self, capture: Capture) -> None:
        assert capture.masks is not None
        self.masks = capture.masks.numpy()  # [N, H, W] bool
        self.images = capture.images.numpy()  # [N, H, W, 3]
        self.viewmats = capture.viewmats.double().numpy()  # [N, 4, 4]
        self.Ks = capture.Ks.double().numpy()  # [N, 3, 3]
        self.centres = capture.camera_centers().double().numpy()  # [N, 3]
        self.height, self.width = self.masks.shape[1:]

    def pixels(self, i: int, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row [P], column [P], in_frame [P] bool) of world points xyz [P, 3] in view i."""
        cam = xyz @ self.viewmats[i, :3, :3].T + self.viewmats[i, :3, 3]  # [P, 3]
        pix = cam @ self.Ks[i].T  # [P, 3]
        depth = pix[:, 2]
        safe = np.where(depth > 1e-9, depth, 1.0)
        u = np.floor(pix[:, 0] / safe).astype(np.int64)
        v = np.floor(pix[:, 1] / safe).astype(np.int64)
        in_frame = (depth > 1e-9) & (u >= 0) & (u < self.width) & (v >= 0) & (v < self.height)
        return np.clip(v, 0, self.height - 1), np.clip(u, 0, self.width - 1), in_frame


def _viewing_volume(views: _Views) -> tuple[np.ndarray, np.ndarray]:
    """(lo [3], hi [3]) of a cube around the point the cameras look at: the least-squares
    nearest point to every optical axis, half as wide as what the photos span at its depth."""
    axes = views.viewmats[:, 2, :3]  # [N, 3] each camera's viewing direction in the world
    proj = np.eye(3) - axes[:, :, None] * axes[:, None, :]  # [N, 3, 3] off-axis components
    target = np.linalg.solve(proj.sum(0), (proj @ views.centres[..., None]).sum(0))[:, 0]  # [3]
    depth = np.median(np.linalg.norm(views.centres - target, axis=1))
    focal = np.median(views.Ks[:, [0, 1], [0, 1]].min(1))
    half = depth * max(views.width, views.height) / (2 * focal)
    return target - half, target + half


def _carve(
    views: _Views, lo: np.ndarray, hi: np.ndarray, voxels: int
) -> tuple[np.ndarray, np.ndarray]:
    """(occupied [X, Y, Z] bool, voxel centres [X*Y*Z, 3]) of a grid over [lo, hi] with
    `voxels` cells on the longest side."""
    step = float((hi - lo).max()) / (voxels - 1)
    axes = [lo[k] + step * np.arange(int(np.ceil((hi[k] - lo[k]) / step)) + 1) for k in range(3)]
    shape = tuple(len(a) for a in axes)
    centres = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)  # [P, 3]
    outside = np.zeros(len(centres), dtype=bool)
    seen = np.zeros(len(centres), dtype=np.int32)
    for i in range(len(views.masks)):
        row, col, in_frame = views.pixels(i, centres)
        outside |= in_frame & ~views.masks[i][row, col]
        seen += in_frame
    occupied = ~outside & (seen >= MIN_SEEN_FRACTION * len(views.masks))
    return occupied.reshape(shape), centres


def _surface(occupied: np.ndarray) -> np.ndarray:
    """[X, Y, Z] bool: occupied voxels with an empty face neighbour (or on the grid's edge)."""
    padded = np.pad(occupied, 1)
    inner = np.ones_like(occupied)
    for axis in range(3):
        for shift in (-1, 1):
            inner &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
    return occupied & ~inner


def _outward_normals(occupied: np.ndarray) -> np.ndarray:
    """[X, Y, Z, 3] unit vectors down the occupancy's gradient (pointing out of the object)."""
    padded = np.pad(occupied.astype(np.float64), 1)
    grad = np.stack([np.gradient(padded, axis=k) for k in range(3)], -1)[1:-1, 1:-1, 1:-1]
    out = -grad  # [X, Y, Z, 3]
    return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-9)


def _facing_colours(views: _Views, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """[M, 3] each point's colour in the photo whose camera faces its normal most directly
    (among the photos where it lands on the object), which avoids photos where it is hidden."""
    best = np.full(len(points), -np.inf)
    colours = np.full((len(points), 3), 0.5)
    for i in range(len(views.masks)):
        row, col, in_frame = views.pixels(i, points)
        to_cam = views.centres[i] - points  # [M, 3]
        facing = (normals * to_cam).sum(1) / np.linalg.norm(to_cam, axis=1)  # [M]
        better = in_frame & views.masks[i][row, col] & (facing > best)
        best[better] = facing[better]
        colours[better] = views.images[i][row[better], col[better]]
    return colours
