from splatcourse.grading.harness import Mutant

_RENDER = 'return torch.einsum("nhw,nc->hwc", g, colours)'

MUTANTS = [
    # summed the colours across channels: a grey image
    Mutant(
        "grey-sum",
        "render_rgb",
        _RENDER,
        'return torch.einsum("nhw,n->hw", g, colours.sum(1))[..., None].expand(-1, -1, 3)',
        fails={"test_render_rgb_visible", "test_render_rgb_hidden", "test_reconstruction"},
    ),
    # channels in the wrong order (BGR)
    Mutant(
        "bgr",
        "render_rgb",
        _RENDER,
        'return torch.einsum("nhw,nc->hwc", g, colours[:, [2, 1, 0]])',
        fails={"test_render_rgb_visible", "test_render_rgb_hidden", "test_reconstruction"},
    ),
    # forgot the 1/2 in the exponent
    Mutant(
        "no-half",
        "render_rgb",
        "torch.exp(-0.5 * d2",
        "torch.exp(-d2",
        fails={"test_render_rgb_hidden", "test_reconstruction"},
    ),
    # submitted the starting point instead of a fit
    Mutant(
        "unfitted",
        "reconstruction",
        "params64 = fit_rgb(target, 64)",
        'params64 = {"means": init_splats(64, channels=3)["means"], '
        '"log_scales": init_splats(64, channels=3)["log_scales"], '
        '"colours": init_splats(64, channels=3)["weights"]}',
        fails={"test_reconstruction"},
    ),
    # the colours are never optimised (forgot to make them require gradients)
    Mutant(
        "frozen-colours",
        "fit_rgb",
        "    for p in params.values():\n        p.requires_grad_(True)",
        '    params["means"].requires_grad_(True)\n    params["log_scales"].requires_grad_(True)',
        fails={"test_fit_rgb_hidden", "test_reconstruction"},
    ),
    # honest: tqdm.auto's progress bar in the fit loop (stderr in the grading kernel)
    Mutant(
        "honest-tqdm-auto",
        "fit_rgb",
        "    for _ in range(steps):\n",
        "    from tqdm.auto import tqdm\n\n    for _ in tqdm(range(steps)):\n",
        fails=set(),
    ),
]
