"""Reader for Bundler v0.3 `.out` files (cameras + sparse points with colours).

Bundler cameras look down -z with y up (the OpenGL convention); the pose maps world to camera:
x_cam = R @ x_world + t. Flipping the y and z axes gives the OpenCV convention used here.
Focal lengths are in pixels of the image the reconstruction was made from; the principal
point is assumed to be the image centre.

Used by: the PhotoScan loader (the axe's sparse points), so lesson 5 and exercise 4.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Bundler camera (y up, z back) -> OpenCV camera (y down, z forward).
GL_TO_CV = np.diag([1.0, -1.0, -1.0])


@dataclass
class BundlerCamera:
    focal: float
    k1: float
    k2: float
    R: np.ndarray  # [3, 3] world-to-camera rotation, Bundler convention
    t: np.ndarray  # [3]

    @property
    def is_posed(self) -> bool:
        """Bundler writes an all-zero camera for images it could not register."""
        return self.focal != 0.0 and bool(np.any(self.R))

    def viewmat_opencv(self) -> np.ndarray:
        """4x4 world-to-camera matrix in the OpenCV convention."""
        V = np.eye(4)
        V[:3, :3] = GL_TO_CV @ self.R
        V[:3, 3] = GL_TO_CV @ self.t
        return V


@dataclass
class BundlerModel:
    cameras: list[BundlerCamera]
    points: np.ndarray  # [M, 3]
    colors: np.ndarray  # [M, 3] uint8
    tracks: list[np.ndarray]  # per point: indices of the cameras that observe it


def read_bundler(path: str | Path) -> BundlerModel:
    """Parse a Bundler v0.3 file. Errors name the file and the line that is wrong."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"Bundler file not found: {path}") from None
    # Skip the "# Bundle file v0.3" header and any other comment lines at the top.
    i = 0
    while i < len(lines) and (lines[i].startswith("#") or not lines[i].strip()):
        i += 1

    def floats(k: int, n: int) -> list[float]:
        try:
            vals = [float(x) for x in lines[k].split()]
        except (IndexError, ValueError):
            raise ValueError(f"{path}: line {k + 1} is not {n} numbers") from None
        if len(vals) != n:
            raise ValueError(f"{path}: line {k + 1} has {len(vals)} numbers, expected {n}")
        return vals

    n_cams, n_points = (int(v) for v in floats(i, 2))
    i += 1
    cameras = []
    for _ in range(n_cams):
        f, k1, k2 = floats(i, 3)
        R = np.array([floats(i + 1, 3), floats(i + 2, 3), floats(i + 3, 3)])
        t = np.array(floats(i + 4, 3))
        cameras.append(BundlerCamera(f, k1, k2, R, t))
        i += 5
    if len(lines) < i + 3 * n_points:
        raise ValueError(f"{path}: header promises {n_points} points, file ends early (truncated?)")
    # Points: position, colour, then "count cam key x y ..." per point.
    pts = np.array([lines[i + 3 * k].split() for k in range(n_points)], dtype=np.float64)
    cols = np.array([lines[i + 3 * k + 1].split() for k in range(n_points)], dtype=np.float64)
    if pts.shape != (n_points, 3) or cols.shape != (n_points, 3):
        raise ValueError(f"{path}: malformed point block (expected x y z / r g b per point)")
    tracks = []
    for k in range(n_points):
        v = lines[i + 3 * k + 2].split()
        count = int(v[0])
        tracks.append(np.array(v[1 : 1 + 4 * count : 4], dtype=np.int64))
    return BundlerModel(cameras, pts, cols.clip(0, 255).astype(np.uint8), tracks)
