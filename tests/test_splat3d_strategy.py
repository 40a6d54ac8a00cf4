"""gsplat's DefaultStrategy running on the CPU with our rasterizer's info."""

import torch
from gsplat.strategy import DefaultStrategy

from splatcourse.splat3d import intrinsics, make_strategy, rasterization
from splatcourse.splat3d.strategy import _reset_condition_is_buggy

W, H = 32, 24


def make_params(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = 2.0 + 2.0 * torch.rand(n, generator=g)
    means = torch.stack(
        [(torch.rand(n, generator=g) - 0.5) * z, (torch.rand(n, generator=g) - 0.5) * 0.75 * z, z],
        -1,
    )
    params = torch.nn.ParameterDict(
        {
            "means": means,
            "scales": torch.log(torch.rand(n, 3, generator=g) * 0.1 + 0.02),
            "quats": torch.randn(n, 4, generator=g),
            "opacities": torch.logit(torch.rand(n, generator=g) * 0.9 + 0.05),
            "colors": torch.rand(n, 3, generator=g),
        }
    )
    optimizers = {k: torch.optim.Adam([p], lr=1e-3) for k, p in params.items()}
    return params, optimizers


def train_step(params, optimizers, strategy, state, step, target):
    viewmats = torch.eye(4)[None]
    Ks = intrinsics(W, W, W / 2, H / 2)[None]
    renders, _alphas, info = rasterization(
        params["means"],
        params["quats"],
        torch.exp(params["scales"]),
        torch.sigmoid(params["opacities"]),
        params["colors"],
        viewmats,
        Ks,
        W,
        H,
    )
    strategy.step_pre_backward(params, optimizers, state, step, info)
    loss = (renders - target).abs().mean()
    loss.backward()
    for opt in optimizers.values():
        opt.step()
        opt.zero_grad(set_to_none=True)
    strategy.step_post_backward(params, optimizers, state, step, info)
    return info


def test_densify_and_prune_change_the_gaussian_count():
    params, optimizers = make_params()
    strategy = make_strategy(
        refine_start_iter=0, refine_every=2, grow_grad2d=1e-7, prune_opa=0.3, reset_every=10_000
    )
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=1.0)
    target = torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(1))
    n0 = len(params["means"])
    n_low = int((torch.sigmoid(params["opacities"]) < 0.3).sum())
    assert n_low > 10
    info = train_step(params, optimizers, strategy, state, 1, target)  # accumulate only
    assert len(params["means"]) == n0
    assert state["count"].sum() > 0 and state["grad2d"].sum() > 0
    train_step(params, optimizers, strategy, state, 2, target)  # refine: grow and prune
    n1 = len(params["means"])
    assert n1 != n0
    # every tensor and optimizer state followed the new count, and training goes on
    assert all(len(p) == n1 for p in params.values())
    assert all(
        len(opt.state[opt.param_groups[0]["params"][0]]["exp_avg"]) == n1
        for opt in optimizers.values()
    )
    info = train_step(params, optimizers, strategy, state, 3, target)
    assert info["means2d"].shape == (1, n1, 2)


def test_opacity_reset_really_happens():
    assert _reset_condition_is_buggy()  # gsplat 1.5.3's guard never fires...
    params, optimizers = make_params(seed=2)
    target = torch.rand(1, H, W, 3)
    opac_before = torch.sigmoid(params["opacities"]).detach().clone()
    assert (opac_before > 0.5).sum() > 50

    plain = DefaultStrategy(refine_start_iter=10**9, reset_every=4, prune_opa=0.005)
    state = plain.initialize_state()
    train_step(params, optimizers, plain, state, 4, target)
    assert (torch.sigmoid(params["opacities"]) > 0.5).sum() > 50  # ...so nothing was reset

    fixed = make_strategy(refine_start_iter=10**9, reset_every=4, prune_opa=0.005)
    state = fixed.initialize_state()
    train_step(params, optimizers, fixed, state, 3, target)  # not a reset step
    assert (torch.sigmoid(params["opacities"]) > 0.5).sum() > 50
    train_step(params, optimizers, fixed, state, 4, target)
    opac = torch.sigmoid(params["opacities"]).detach()
    assert opac.max() <= 0.01 + 1e-6  # clamped to 2 * prune_opa
    assert (opac < opac_before).float().mean() > 0.9
    exp_avg = optimizers["opacities"].state[optimizers["opacities"].param_groups[0]["params"][0]]
    assert (exp_avg["exp_avg"] == 0).all()  # optimizer state for opacities restarted


def _with_one_huge_gaussian(seed=3):
    params, optimizers = make_params(seed=seed)
    with torch.no_grad():
        params["scales"][0] = torch.log(torch.tensor([2.0, 0.05, 0.05]))  # 2 x the scene scale
        params["opacities"][0] = 5.0  # opaque: only its size can get it pruned
    return params, optimizers


def test_huge_gaussians_are_pruned_with_the_opacity_reset_off():
    """gsplat prunes huge Gaussians only after the first reset; with resets off (the course's
    CPU recipes) they must still go, from `prune_huge_after` on."""
    target = torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(4))
    kw = {
        "refine_start_iter": 0,
        "refine_every": 2,
        "grow_grad2d": 1e9,
        "prune_opa": 0.0,
        "prune_scale3d": 0.5,
        "reset_every": 10**12,
    }

    params, optimizers = _with_one_huge_gaussian()
    gsplat_rule = make_strategy(**kw)
    state = gsplat_rule.initialize_state(scene_scale=1.0)
    n0 = len(params["means"])
    train_step(params, optimizers, gsplat_rule, state, 2, target)
    assert len(params["means"]) == n0, "gsplat's rule keeps it: no reset has happened"

    params, optimizers = _with_one_huge_gaussian()
    fixed = make_strategy(**kw, prune_huge_after=1)
    state = fixed.initialize_state(scene_scale=1.0)
    train_step(params, optimizers, fixed, state, 2, target)
    scales = torch.exp(params["scales"]).max(dim=-1).values
    assert len(params["means"]) < n0 and (scales <= 0.5).all(), "the huge Gaussian survived"
    assert fixed.reset_every == 10**12, "the reset schedule itself is unchanged"


def test_train_config_prunes_huge_gaussians_on_every_schedule():
    from splatcourse.train import TrainConfig

    assert TrainConfig(steps=1000, reset_every=0).prune_huge_after_step == 50
    assert TrainConfig(steps=1000).prune_huge_after_step is None  # after the first reset
