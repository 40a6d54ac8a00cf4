"""The offline default capture: deterministic, geometrically consistent, independent renderer."""

import numpy as np
import pytest
import torch

from splatcourse.capture import load_capture, synthetic_capture
from splatcourse.capture import synthetic as syn


def test_synthetic_capture_shape_and_split():
    cap = synthetic_capture()
    assert len(cap) == 50 and (cap.width, cap.height) == (128, 96)
    assert cap.images.dtype == torch.float32 and cap.images.min() >= 0 and cap.images.max() <= 1
    assert cap.masks.dtype == torch.bool
    assert cap.test_idx == [0, 8, 16, 24, 32, 40, 48]
    assert cap.points.shape == (2000, 3) and cap.point_colors.shape == (2000, 3)
    assert cap.attribution


def test_synthetic_capture_is_deterministic():
    a = synthetic_capture()
    syn._render_all.cache_clear()
    b = synthetic_capture()
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert torch.equal(a.points, b.points) and torch.equal(a.viewmats, b.viewmats)
    assert not torch.equal(a.points, synthetic_capture(seed=1).points)


def test_object_centre_projects_to_image_centre_in_every_view():
    cap = synthetic_capture()
    uv, depth = cap.project(torch.zeros(1, 3))
    assert torch.allclose(uv[:, 0], torch.tensor([64.0, 48.0]), atol=1e-3)
    assert torch.allclose(depth[:, 0], torch.full((50,), 4.0), atol=1e-4)
    # the views really go around the object: directions to the cameras span all azimuths
    c = cap.camera_centers()
    az = torch.atan2(c[:, 1], c[:, 0])
    assert az.min() < -2.5 and az.max() > 2.5


def test_masks_match_the_geometry_and_the_background():
    cap = synthetic_capture()
    # surface points visible or not, all land inside the object's silhouette
    uv, _ = cap.project(cap.points)
    u = uv[..., 0].floor().long().clamp(0, cap.width - 1)
    v = uv[..., 1].floor().long().clamp(0, cap.height - 1)
    n = torch.arange(len(cap))[:, None].expand_as(u)
    inside = cap.masks[n, v, u]
    assert inside.float().mean() > 0.97
    # outside the mask the image is the constant background (black by default)
    bg = ~cap.masks
    far_bg = bg & ~torch.nn.functional.max_pool2d(cap.masks[:, None].float(), 3, 1, 1)[:, 0].bool()
    assert cap.images[far_bg].abs().max() == 0
    assert cap.images[cap.masks].mean() > 0.2
    cover = cap.masks.float().mean()
    assert 0.2 < cover < 0.6


def test_surface_points_lie_on_the_surface_inside_the_bbox():
    cap = synthetic_capture()
    assert syn.sdf(cap.points).abs().max() < 1e-3
    assert (cap.points >= syn.BBOX[0]).all() and (cap.points <= syn.BBOX[1]).all()
    # the bbox contains the whole object: its faces are outside the surface
    grid = torch.stack(torch.meshgrid(*[torch.linspace(0, 1, 21)] * 3, indexing="ij"), -1).reshape(
        -1, 3
    )
    box_pts = syn.BBOX[0] + grid * (syn.BBOX[1] - syn.BBOX[0])
    on_faces = ((grid == 0) | (grid == 1)).any(-1)
    assert (syn.sdf(box_pts[on_faces]) > 0).all()


def test_background_option_and_default_name():
    cap = synthetic_capture(width=64, background=(1.0, 1.0, 1.0))
    assert (cap.width, cap.height) == (64, 48)
    assert cap.images[0, 0, 0].tolist() == [1.0, 1.0, 1.0]  # a corner is background
    assert load_capture("default", verbose=False).name == "synthetic"


def test_background_is_kept_as_three_floats_and_must_have_three():
    cap = synthetic_capture(width=16, background=np.array([1, 0, 0]))
    assert cap.background == (1.0, 0.0, 0.0) and type(cap.background[0]) is float
    with pytest.raises(ValueError, match=r"background: expected 3 numbers \(r, g, b\), got"):
        synthetic_capture(width=16, background=(1.0, 1.0))


def test_renderer_is_independent_of_the_splat_rasterizer():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(syn.__file__).read_text())
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert modules <= {
        "__future__",
        "math",
        "contextlib",
        "functools",
        "torch",
        "dataset",
        "threads",
    }, modules
