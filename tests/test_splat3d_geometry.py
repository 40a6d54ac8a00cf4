"""Geometry of single Gaussians: rotations, covariances, projection, SH, cameras."""

import math

import pytest
import torch

from splatcourse.splat3d import (
    covariance_from_quat_scale,
    eval_sh,
    intrinsics,
    look_at,
    params_per_gaussian,
    perspective_jacobian,
    project_gaussians,
    quat_to_rotmat,
    world_to_camera,
)
from splatcourse.splat3d.gaussians import covariance_entries

torch_impl = pytest.importorskip("gsplat.cuda._torch_impl")


def random_scene(n=64, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=dtype) * torch.tensor([1.0, 0.8, 1.5], dtype=dtype)
    means[:, 2] += 4.0
    quats = torch.randn(n, 4, generator=g, dtype=dtype) * 3  # deliberately unnormalised
    scales = torch.rand(n, 3, generator=g, dtype=dtype) * 0.3 + 0.01
    return means, quats, scales


def test_rotation_is_orthonormal_and_ignores_quaternion_length():
    _, quats, _ = random_scene()
    R = quat_to_rotmat(quats)
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(len(R), dtype=R.dtype))
    torch.testing.assert_close(quat_to_rotmat(quats * 7.5), R)
    torch.testing.assert_close(quat_to_rotmat(-quats), R)


def test_rotation_about_z_by_90_degrees():
    c = math.cos(math.pi / 4)
    R = quat_to_rotmat(torch.tensor([c, 0.0, 0.0, c], dtype=torch.float64))
    expected = torch.tensor(
        [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64
    )
    torch.testing.assert_close(R, expected, atol=1e-12, rtol=0)


def test_covariance_matches_gsplat_and_is_spd():
    _, quats, scales = random_scene()
    cov = covariance_from_quat_scale(quats, scales)
    ref, _ = torch_impl._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    torch.testing.assert_close(cov, ref)
    torch.testing.assert_close(cov, cov.transpose(-1, -2))
    eig = torch.linalg.eigvalsh(cov)
    torch.testing.assert_close(eig, (scales**2).sort(dim=-1).values)


def test_covariance_entries_are_the_upper_triangle():
    _, quats, scales = random_scene()
    cov = covariance_from_quat_scale(quats, scales)
    upper = [cov[:, i, j] for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))]
    for entry, want in zip(covariance_entries(quats, scales), upper, strict=True):
        torch.testing.assert_close(entry, want, atol=1e-14, rtol=1e-12)


def test_tiny_scales_stay_finite():
    cov = covariance_from_quat_scale(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.full((1, 3), 1e-8))
    assert torch.isfinite(cov).all() and cov.abs().max() < 1e-14


def test_parameter_count_is_59_at_degree_3():
    assert params_per_gaussian(3) == 59
    assert params_per_gaussian(0) == 14


def test_look_at_opencv_convention():
    view = look_at((0.0, -5.0, 0.0), (0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0))
    p = view @ torch.tensor([0.0, 0.0, 0.0, 1.0])
    torch.testing.assert_close(p[:3], torch.tensor([0.0, 0.0, 5.0]))  # target straight ahead
    up_cam = view[:3, :3] @ torch.tensor([0.0, 0.0, 1.0])
    torch.testing.assert_close(up_cam, torch.tensor([0.0, -1.0, 0.0]))  # world up = image up
    right_cam = view[:3, :3] @ torch.tensor([1.0, 0.0, 0.0])
    torch.testing.assert_close(right_cam, torch.tensor([1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="parallel"):
        look_at((0.0, 0.0, 5.0), (0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0))


def cameras(dtype=torch.float64):
    views = torch.stack(
        [
            look_at((0.0, 0.0, 0.0), (0.0, 0.0, 4.0), up=(0.0, -1.0, 0.0)),
            look_at((2.0, -1.0, 0.5), (0.0, 0.0, 4.0), up=(0.0, -1.0, 0.0)),
        ]
    ).to(dtype)
    Ks = torch.stack([intrinsics(80.0, 80.0, 32.0, 24.0), intrinsics(60.0, 70.0, 30.0, 20.0)])
    return views, Ks.to(dtype)


def test_projection_matches_gsplat_torch_impl():
    means, quats, scales = random_scene(n=200)
    covars = covariance_from_quat_scale(quats, scales)
    views, Ks = cameras()
    W, H = 64, 48
    ours = project_gaussians(means, covars, views, Ks, W, H)
    radii, means2d, depths, conics, _ = torch_impl._fully_fused_projection(
        means, covars, views, Ks, W, H
    )
    vis = (radii > 0).all(-1)
    assert 20 < vis.sum() < vis.numel()  # some visible, some culled: both paths exercised
    torch.testing.assert_close(ours.radii, radii)
    torch.testing.assert_close(ours.means2d[vis], means2d[vis])
    torch.testing.assert_close(ours.conics[vis], conics[vis])
    torch.testing.assert_close(ours.depths, depths)


def test_projection_is_j_w_sigma_wt_jt_from_the_public_helpers():
    # project_gaussians writes the product out per entry; it must be the textbook formula
    # built from world_to_camera and perspective_jacobian, the clamp included: half of these
    # means lie far outside the field of view, where the clamp is active.
    means, quats, scales = random_scene(n=100, seed=3)
    means[::2, :2] *= 6.0
    covars = covariance_from_quat_scale(quats, scales)
    views, Ks = cameras()
    proj = project_gaussians(means, covars, views, Ks, 64, 48, eps2d=0.3)
    means_c, covars_c = world_to_camera(means, covars, views)
    J = perspective_jacobian(means_c, Ks, 64, 48)
    in_front = means_c[..., 2] > 0.01
    want = J @ covars_c @ J.transpose(-1, -2) + 0.3 * torch.eye(2, dtype=J.dtype)
    torch.testing.assert_close(proj.covars2d[in_front], want[in_front], rtol=1e-10, atol=1e-12)
    u = means_c[..., 0] / means_c[..., 2]
    assert (u[in_front].abs() > 1.3 * 32 / 80).any()  # the clamp did matter somewhere
    torch.testing.assert_close(proj.depths, means_c[..., 2], rtol=1e-12, atol=1e-12)


def test_opacity_aware_radius_is_tighter_and_culls_faint():
    means, quats, scales = random_scene(n=50)
    covars = covariance_from_quat_scale(quats, scales)
    views, Ks = cameras()
    opac = torch.linspace(0.001, 1.0, 50, dtype=torch.float64)
    plain = project_gaussians(means, covars, views, Ks, 64, 48)
    tight = project_gaussians(means, covars, views, Ks, 64, 48, opacities=opac)
    assert (tight.radii <= plain.radii).all()
    assert (tight.radii[:, opac < 1 / 255] == 0).all()
    assert (tight.radii < plain.radii).any()


def test_behind_camera_and_offscreen_are_culled():
    means = torch.tensor([[0.0, 0.0, -2.0], [0.0, 0.0, 0.005], [100.0, 0.0, 3.0], [0.0, 0.0, 3.0]])
    covars = torch.eye(3).expand(4, 3, 3) * 0.01
    proj = project_gaussians(
        means, covars, torch.eye(4), intrinsics(50.0, 50.0, 32.0, 24.0), 64, 48
    )
    assert proj.visible.tolist() == [[False, False, False, True]]
    assert torch.isfinite(proj.means2d).all() and torch.isfinite(proj.conics).all()


def test_projection_jacobian_matches_finite_differences_of_the_pinhole():
    # For a tiny Gaussian, EWA's linearisation is exact: the 2D covariance must equal the
    # spread of projected samples.
    views, Ks = cameras()
    mean = torch.tensor([[0.3, -0.2, 3.0]], dtype=torch.float64)
    cov = covariance_from_quat_scale(
        torch.tensor([[0.9, 0.2, -0.3, 0.1]], dtype=torch.float64),
        torch.tensor([[3e-3, 1e-3, 2e-3]], dtype=torch.float64),
    )
    proj = project_gaussians(mean, cov, views[:1], Ks[:1], 64, 48, eps2d=0.0)
    g = torch.Generator().manual_seed(1)
    L = torch.linalg.cholesky(cov[0])
    pts = mean + torch.randn(200_000, 3, generator=g, dtype=torch.float64) @ L.T
    uv = (Ks[0] @ pts.T).T
    uv = uv[:, :2] / uv[:, 2:]
    emp = torch.cov(uv.T)
    torch.testing.assert_close(proj.covars2d[0, 0], emp, rtol=0.02, atol=1e-4)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_matches_gsplat_torch_impl(degree):
    g = torch.Generator().manual_seed(degree)
    coeffs = torch.randn(500, 16, 3, generator=g, dtype=torch.float64)
    dirs = torch.randn(500, 3, generator=g, dtype=torch.float64) * 4  # not unit length
    ours = eval_sh(degree, coeffs, dirs)
    ref = torch_impl._spherical_harmonics(degree, dirs, coeffs)
    torch.testing.assert_close(ours, ref)


def test_sh_basis_is_orthonormal_on_the_sphere():
    from splatcourse.splat3d import sh_basis

    g = torch.Generator().manual_seed(0)
    d = torch.randn(400_000, 3, generator=g, dtype=torch.float64)
    d = d / d.norm(dim=-1, keepdim=True)
    Y = sh_basis(3, d)
    gram = 4 * math.pi * Y.T @ Y / len(d)
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), atol=0.02, rtol=0)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="quats"):
        quat_to_rotmat(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="coefficients"):
        eval_sh(3, torch.zeros(2, 4, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="means"):
        project_gaussians(torch.zeros(4, 2), torch.zeros(4, 3, 3), torch.eye(4), torch.eye(3), 8, 8)
