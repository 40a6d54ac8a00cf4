from splatcourse.grading.harness import Mutant

MUTANTS = [
    # forgot the 1/2 in the exponent: the render is too narrow everywhere
    Mutant(
        "no-half",
        "render",
        "torch.exp(-0.5 * d2 / var)",
        "torch.exp(-d2 / var)",
        fails={"test_render_visible", "test_render_hidden"},
    ),
    # used the width instead of the variance in the denominator
    Mutant(
        "sigma-not-var",
        "render",
        "var = torch.exp(2 * log_scales)",
        "var = torch.exp(log_scales)",
        # the widths start far too wide, so its own fits stop improving with more Gaussians
        fails={"test_render_visible", "test_render_hidden", "test_results"},
    ),
    # the optimiser never steps: the error stays at its starting value
    Mutant(
        "no-step",
        "fit",
        "        optimiser.step()\n",
        "",
        fails={"test_fit_visible", "test_fit_hidden", "test_results"},
    ),
    # hard-coded numbers copied from somewhere else
    Mutant(
        "hard-coded",
        "results",
        "results = {n: mse for n, (_, mse) in fits.items()}",
        "results = {4: 2.0e-3, 16: 2.0e-5, 64: 4.0e-6}",
        fails={"test_results"},
    ),
    # reported the loss of the last step, read before that step: the MSE is one step stale
    # (1.2e-3 off with 4 Gaussians in test_fit_hidden; 3e-4 to 3e-2 at the default budget,
    # depending on the CPU, which test_results, checking the results against a re-run at 10%,
    # lets pass)
    Mutant(
        "loss-before-last-step",
        "fit",
        "    with torch.no_grad():\n"
        "        final_mse = ((render(**params, grid=grid) - target) ** 2).mean().item()\n",
        "    final_mse = loss.item()\n",
        fails={"test_fit_hidden"},
    ),
    # honest variants: equivalent code must keep every point (they agree to 6e-8 relative)
    Mutant(
        "honest-mse-loss",
        "fit",
        "final_mse = ((render(**params, grid=grid) - target) ** 2).mean().item()",
        "final_mse = torch.nn.functional.mse_loss(render(**params, grid=grid), target).item()",
    ),
    Mutant(
        "honest-float64-mse",
        "fit",
        "final_mse = ((render(**params, grid=grid) - target) ** 2).mean().item()",
        "final_mse = float(((render(**params, grid=grid).double() - target.double()) ** 2).mean())",
    ),
    # honest: a tqdm progress bar in the fit loop (the course's own fit_splats shows one); what a
    # test cell writes to stderr is shown in the feedback and never costs points
    Mutant(
        "honest-tqdm-progress-bar",
        "fit",
        "    for _ in range(steps):\n",
        '    from tqdm import tqdm\n\n    for _ in tqdm(range(steps), desc=f"fit {n_gaussians}"):\n',
        fails=set(),
    ),
]
