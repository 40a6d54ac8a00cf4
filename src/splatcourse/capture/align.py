"""How far recovered cameras are from known ones, once the arbitrary frame is taken out.

Structure from motion recovers a scene only up to a similarity: its own origin, orientation
and scale. To compare recovered cameras with true ones (the synthetic capture's, or
PhotoScan's), the best similarity from one set of camera centres to the other is fitted in
the least-squares sense (Umeyama 1991, "Least-squares estimation of transformation parameters
between two point patterns") and the errors are measured after it.

Used by: the structure-from-motion tests and bench/sfm_axe.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .dataset import Capture


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R [3, 3], t [3]) minimising sum |s R src_i + t - dst_i|^2 for src, dst [N, 3]."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d  # [N, 3]
    U, S, Vt = np.linalg.svd(b.T @ a / len(src))  # cross-covariance [3, 3]
    D = np.eye(3)
    D[2, 2] = np.sign(np.linalg.det(U @ Vt)) or 1.0  # a rotation, never a reflection
    R = U @ D @ Vt
    s = float((S * np.diag(D)).sum() / a.var(0).sum())
    return s, R, mu_d - s * R @ mu_s


@dataclass
class PoseError:
    """Recovered cameras against reference ones after the best similarity alignment."""

    n_common: int  # views matched by name (and measured: see pose_error's inlier_fraction)
    scene_radius: float  # the reference cameras' largest distance from their centroid
    rms_centre_error: float  # in reference units
    max_rotation_error_deg: float
    #: [P] every shared camera's centre error after the alignment, in reference units (the
    #: measured ones and the rest): how many cameras lie within a distance, for instance
    centre_errors: np.ndarray = field(repr=False)

    @property
    def rms_centre_error_relative(self) -> float:
        """RMS camera-centre error as a fraction of the scene radius."""
        return self.rms_centre_error / self.scene_radius


def _shared_views(recovered: Capture, reference: Capture) -> tuple[list[int], list[int]]:
    """(indices in recovered, indices in reference) of the photos both hold, by name without
    extension; ValueError when fewer than 3 (no similarity can be fitted)."""
    ref_index = {Path(n).stem: i for i, n in enumerate(reference.image_names)}
    pairs = [
        (i, ref_index[Path(n).stem])
        for i, n in enumerate(recovered.image_names)
        if Path(n).stem in ref_index
    ]
    if len(pairs) < 3:
        raise ValueError(
            f"{recovered.name} and {reference.name} share {len(pairs)} photo names; "
            "at least 3 are needed to align them"
        )
    rec_idx, ref_idx = zip(*pairs)
    return list(rec_idx), list(ref_idx)


def similarity(
    recovered: Capture, reference: Capture, inlier_fraction: float = 1.0
) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R [3, 3], t [3]) taking the recovered frame to the reference one, fitted on the
    camera centres of the photos both hold. With inlier_fraction < 1 it is fitted again, three
    times, on the cameras it fits best, so a few misplaced cameras do not pull the rest."""
    rec_idx, ref_idx = _shared_views(recovered, reference)
    src = recovered.camera_centers().double().numpy()[rec_idx]  # [P, 3]
    dst = reference.camera_centers().double().numpy()[ref_idx]  # [P, 3]
    s, R, t = umeyama(src, dst)
    for _ in range(3 if inlier_fraction < 1 else 0):
        err = np.linalg.norm(src @ (s * R).T + t - dst, axis=1)  # [P]
        best = err <= np.quantile(err, inlier_fraction)
        s, R, t = umeyama(src[best], dst[best])
    return s, R, t


def pose_error(recovered: Capture, reference: Capture, inlier_fraction: float = 1.0) -> PoseError:
    """Compare the views the two captures share (matched by photo name without extension).
    inlier_fraction < 1 measures only the cameras the similarity fits best (see `similarity`):
    how good the cameras SfM placed right are, whatever a few misplaced ones do."""
    rec_idx, ref_idx = _shared_views(recovered, reference)
    s, R, t = similarity(recovered, reference, inlier_fraction)
    src = recovered.camera_centers().double().numpy()[rec_idx]  # [P, 3]
    dst = reference.camera_centers().double().numpy()[ref_idx]  # [P, 3]
    err = np.linalg.norm(src @ (s * R).T + t - dst, axis=1)  # [P]
    best = err <= np.quantile(err, inlier_fraction)
    radius = float(np.linalg.norm(dst - dst.mean(0), axis=1).max())
    # camera-to-world rotations: reference ~ R @ recovered once aligned
    R_rec = recovered.viewmats[rec_idx, :3, :3].double().numpy().transpose(0, 2, 1)
    R_ref = reference.viewmats[ref_idx, :3, :3].double().numpy().transpose(0, 2, 1)
    diff = R_ref.transpose(0, 2, 1) @ (R @ R_rec)  # [P, 3, 3] identity when they agree
    cos = np.clip((np.trace(diff, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
    return PoseError(
        n_common=int(best.sum()),
        scene_radius=radius,
        rms_centre_error=float(np.sqrt((err[best] ** 2).mean())),
        max_rotation_error_deg=float(np.degrees(np.arccos(cos[best])).max()),
        centre_errors=err,
    )
