"""`Capture`: the one thing training code consumes.

Every loader (the synthetic default, PhotoScan, COLMAP, transforms.json) ends in a `Capture`,
so training, evaluation and the notebooks never care where the photos came from.

Conventions (the same as gsplat, so tensors can be passed straight to its rasterizer):
- `viewmats` are world-to-camera 4x4 matrices in the OpenCV camera convention:
  x right, y down, z forward (the camera looks along +z).
- `Ks` are 3x3 pinhole intrinsics in pixels *of the loaded images*; the centre of pixel
  (row i, column j) is at (j + 0.5, i + 0.5).
- `images` are float32 RGB in [0, 1], shape [N, H, W, 3]. Where a capture has masks, the
  pixels outside the object already hold `background` (soft at the mask edge), so a render
  over the same constant background can be compared with the photo directly.

Held-out split (as in the 3D Gaussian Splatting paper, Kerbl et al. 2023, following
Mip-NeRF 360): views are ordered by image name and every 8th view, i.e. index % 8 == 0,
is a test view; all others are training views. The rule is fixed so numbers are comparable.

Used by: lessons 5-7 and exercise 4 (every capture is one), the trainer and the NeRF.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

#: Every TEST_EVERY-th view (index % TEST_EVERY == 0) is held out for evaluation.
TEST_EVERY = 8


def split_indices(n_views: int, test_every: int = TEST_EVERY) -> tuple[list[int], list[int]]:
    """(train, test) view indices: index % test_every == 0 is a test view."""
    if n_views < 1:
        raise ValueError(f"n_views must be positive, got {n_views}")
    if test_every < 2:
        raise ValueError(f"test_every must be at least 2, got {test_every}")
    test = [i for i in range(n_views) if i % test_every == 0]
    train = [i for i in range(n_views) if i % test_every != 0]
    return train, test


@dataclass(frozen=True)
class View:
    """One photo and its camera, for code that walks views one at a time."""

    name: str
    image: torch.Tensor  # [H, W, 3]
    mask: torch.Tensor | None  # [H, W] bool
    viewmat: torch.Tensor  # [4, 4]
    K: torch.Tensor  # [3, 3]


@dataclass
class Capture:
    """Photos, cameras and SfM points of one scene (see the module docstring for conventions)."""

    name: str
    images: torch.Tensor  # [N, H, W, 3] float32 in [0, 1]
    masks: torch.Tensor | None  # [N, H, W] bool, True on the object
    viewmats: torch.Tensor  # [N, 4, 4] world-to-camera, OpenCV convention
    Ks: torch.Tensor  # [N, 3, 3] pixels of the loaded resolution
    image_names: list[str]
    points: torch.Tensor  # [M, 3] SfM points for initialisation (M may be 0)
    point_colors: torch.Tensor  # [M, 3] float32 in [0, 1]
    attribution: str = ""
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    bbox: torch.Tensor | None = None  # [2, 3] (min, max) corners of the object, if known
    test_every: int = TEST_EVERY
    source: str = ""  # where it was loaded from (a path or "synthetic")
    notes: list[str] = field(default_factory=list)  # what the loader skipped or assumed

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(
                f"{self.name}: images must be [N,H,W,3], got {tuple(self.images.shape)}"
            )
        if self.viewmats.shape != (n, 4, 4):
            raise ValueError(
                f"{self.name}: viewmats must be [{n},4,4], got {tuple(self.viewmats.shape)}"
            )
        if self.Ks.shape != (n, 3, 3):
            raise ValueError(f"{self.name}: Ks must be [{n},3,3], got {tuple(self.Ks.shape)}")
        if len(self.image_names) != n:
            raise ValueError(f"{self.name}: {len(self.image_names)} image names for {n} images")
        if self.masks is not None and self.masks.shape != self.images.shape[:3]:
            raise ValueError(f"{self.name}: masks must be [N,H,W], got {tuple(self.masks.shape)}")
        if self.points.ndim != 2 or self.points.shape[-1] != 3:
            raise ValueError(f"{self.name}: points must be [M,3], got {tuple(self.points.shape)}")
        if self.point_colors.shape != self.points.shape:
            raise ValueError(
                f"{self.name}: point_colors must match points {tuple(self.points.shape)}"
            )

    # ---- sizes -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def height(self) -> int:
        return self.images.shape[1]

    @property
    def width(self) -> int:
        return self.images.shape[2]

    # ---- held-out split ----------------------------------------------------------------------
    @property
    def train_idx(self) -> list[int]:
        return split_indices(len(self), self.test_every)[0]

    @property
    def test_idx(self) -> list[int]:
        return split_indices(len(self), self.test_every)[1]

    def subset(self, idx: list[int] | torch.Tensor, suffix: str = "") -> Capture:
        """The same capture restricted to some views (points and attribution kept)."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        return replace(
            self,
            name=self.name + suffix,
            images=self.images[idx],
            masks=None if self.masks is None else self.masks[idx],
            viewmats=self.viewmats[idx],
            Ks=self.Ks[idx],
            image_names=[self.image_names[i] for i in idx.tolist()],
            notes=list(self.notes),
        )

    def train(self) -> Capture:
        """Training views only. The split is defined on the full capture, not on the subset."""
        return self.subset(self.train_idx, "[train]")

    def test(self) -> Capture:
        """Held-out views only (index % test_every == 0 of the full capture)."""
        return self.subset(self.test_idx, "[test]")

    def view(self, i: int) -> View:
        return View(
            name=self.image_names[i],
            image=self.images[i],
            mask=None if self.masks is None else self.masks[i],
            viewmat=self.viewmats[i],
            K=self.Ks[i],
        )

    # ---- geometry ----------------------------------------------------------------------------
    def camera_centers(self) -> torch.Tensor:
        """[N, 3] camera positions in world coordinates."""
        R = self.viewmats[:, :3, :3]
        t = self.viewmats[:, :3, 3:]
        return -(R.transpose(1, 2) @ t)[..., 0]

    def scene_center(self) -> torch.Tensor:
        """Centre of the object: bbox centre, else point centroid, else camera centroid."""
        if self.bbox is not None:
            return self.bbox.mean(0)
        if len(self.points):
            return self.points.median(0).values
        return self.camera_centers().mean(0)

    def scene_scale(self) -> float:
        """The 3DGS "cameras extent": 1.1 x the largest distance of a camera from their mean.

        Learning rates for positions and the densification thresholds are multiplied by it, so
        the same recipe works for a 16 cm axe and a 100 m street.
        """
        c = self.camera_centers()
        return float(1.1 * (c - c.mean(0)).norm(dim=-1).max())

    def object_bbox(self) -> torch.Tensor:
        """[2, 3] box around the object: the known bbox, else 1st-99th point percentiles,
        else a cube of half-size scene_scale/4 around the scene centre (for random init)."""
        if self.bbox is not None:
            return self.bbox
        if len(self.points) >= 10:
            q = torch.tensor([0.01, 0.99], dtype=self.points.dtype)
            return torch.quantile(self.points, q, dim=0)
        c, h = self.scene_center(), self.scene_scale() / 4
        return torch.stack([c - h, c + h])

    def project(self, xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pinhole projection of world points into every view: (uv [N,P,2], depth [N,P])."""
        cam = xyz @ self.viewmats[:, :3, :3].transpose(1, 2) + self.viewmats[:, None, :3, 3]
        pix = cam @ self.Ks.transpose(1, 2)
        depth = pix[..., 2]
        return pix[..., :2] / depth.clamp_min(1e-9)[..., None], depth

    # ---- resolution --------------------------------------------------------------------------
    def downscale(self, factor: float) -> Capture:
        """Images shrunk by `factor` (area averaging), intrinsics scaled to match."""
        if factor <= 0:
            raise ValueError(f"downscale factor must be positive, got {factor}")
        h, w = int(self.height / factor), int(self.width / factor)
        return self.resize(w, h)

    def resize(self, width: int, height: int) -> Capture:
        """Images resampled to width x height with area averaging; Ks follow exactly."""
        if width < 1 or height < 1:
            raise ValueError(f"cannot resize to {width}x{height}")
        sx, sy = width / self.width, height / self.height
        imgs = _area_resize(self.images.permute(0, 3, 1, 2), height, width).permute(0, 2, 3, 1)
        masks = None
        if self.masks is not None:
            cover = _area_resize(self.masks[:, None].float(), height, width)[:, 0]
            masks = cover >= 0.5
        S = torch.tensor([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], dtype=self.Ks.dtype)
        return replace(
            self,
            images=imgs.clamp(0, 1).contiguous(),
            masks=masks,
            Ks=S @ self.Ks,
            notes=list(self.notes),
        )

    def crop(self, x0: int, y0: int, x1: int, y1: int) -> Capture:
        """Pixels [y0:y1, x0:x1] of every view; the principal points shift with the crop.
        Cropping away background that never holds the object saves rasterization time."""
        if not (0 <= x0 < x1 <= self.width and 0 <= y0 < y1 <= self.height):
            raise ValueError(f"crop ({x0}, {y0}, {x1}, {y1}) is outside {self.width}x{self.height}")
        Ks = self.Ks.clone()
        Ks[:, 0, 2] -= x0
        Ks[:, 1, 2] -= y0
        masks = None if self.masks is None else self.masks[:, y0:y1, x0:x1].contiguous()
        return replace(
            self,
            images=self.images[:, y0:y1, x0:x1].contiguous(),
            masks=masks,
            Ks=Ks,
            notes=[*self.notes, f"cropped to x {x0}:{x1}, y {y0}:{y1}"],
        )

    def mask_bbox(self, margin: float = 0.05) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) around the object in all views (union of the masks), grown by
        `margin` of the image size on each side; the whole image without masks."""
        if self.masks is None:
            return 0, 0, self.width, self.height
        ys = torch.nonzero(self.masks.any(dim=(0, 2)))[:, 0]
        xs = torch.nonzero(self.masks.any(dim=(0, 1)))[:, 0]
        if len(xs) == 0:
            return 0, 0, self.width, self.height
        mx, my = round(margin * self.width), round(margin * self.height)
        return (
            max(0, int(xs.min()) - mx),
            max(0, int(ys.min()) - my),
            min(self.width, int(xs.max()) + 1 + mx),
            min(self.height, int(ys.max()) + 1 + my),
        )

    def to(self, device: str | torch.device) -> Capture:
        def mv(t):
            return None if t is None else t.to(device)

        return replace(
            self,
            images=mv(self.images),
            masks=mv(self.masks),
            viewmats=mv(self.viewmats),
            Ks=mv(self.Ks),
            points=mv(self.points),
            point_colors=mv(self.point_colors),
            bbox=mv(self.bbox),
            notes=list(self.notes),
        )

    def background_tensor(self) -> torch.Tensor:
        return torch.tensor(self.background, dtype=self.images.dtype, device=self.images.device)

    # ---- display -----------------------------------------------------------------------------
    def summary(self) -> str:
        lines = [
            (
                f"Capture {self.name!r}: {len(self)} views at {self.width}x{self.height}, "
                f"{len(self.train_idx)} train / {len(self.test_idx)} test "
                f"(every {self.test_every}th view held out), {len(self.points)} SfM points, "
                f"masks: {self.masks is not None}"
            ),
            f"  source: {self.source}",
        ]
        lines += [f"  note: {n}" for n in self.notes]
        if self.attribution:
            lines.append("  attribution: " + self.attribution.strip().replace("\n", "\n  "))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


def rgb_floats(background: Sequence[float]) -> tuple[float, float, float]:
    """The background colour as a `Capture` keeps it: three plain floats (callers pass ints,
    lists or numpy scalars)."""
    if len(background) != 3:
        raise ValueError(f"background: expected 3 numbers (r, g, b), got {background!r}")
    r, g, b = background
    return float(r), float(g), float(b)


def _area_resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize [N,C,H,W]: area averaging when shrinking, bilinear when enlarging."""
    if height <= x.shape[-2] and width <= x.shape[-1]:
        return F.interpolate(x, size=(height, width), mode="area")
    return F.interpolate(
        x, size=(height, width), mode="bilinear", align_corners=False, antialias=True
    )


def points_inside_masks(capture: Capture, min_fraction: float = 0.5) -> torch.Tensor:
    """[M] bool: points that land inside the object mask in at least `min_fraction` of the
    views whose frame they fall in (points seen in no view are kept)."""
    if capture.masks is None:
        return torch.ones(len(capture.points), dtype=torch.bool)
    uv, depth = capture.project(capture.points)
    u, v = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    in_frame = (depth > 0) & (u >= 0) & (u < capture.width) & (v >= 0) & (v < capture.height)
    n = torch.arange(len(capture))[:, None].expand_as(u)
    inside = torch.zeros_like(in_frame)
    inside[in_frame] = capture.masks[n[in_frame], v[in_frame], u[in_frame]]
    seen = in_frame.sum(0)
    frac = inside.sum(0) / seen.clamp_min(1)
    return (seen == 0) | (frac >= min_fraction)
