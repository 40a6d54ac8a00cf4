from splatcourse.grading.harness import Mutant

# The quality cell (test_axe_fit) scores the grader's own short fit of the axe with the
# student's two functions; its bar (recipes.GRADING_BAR) and where it comes from are in
# bench/ex04_grading.py. A wrong rule that still reconstructs the axe keeps those points and
# loses only its own cells: no double penalty.
MUTANTS = [
    # swapped the weights: 0.2 on L1 and 0.8 on the SSIM term (its fit still scores 0.860)
    Mutant(
        "swapped-weights",
        "loss",
        "return (1 - ssim_lambda) * l1 + ssim_lambda * (1 - ssim(render, target))",
        "return ssim_lambda * l1 + (1 - ssim_lambda) * (1 - ssim(render, target))",
        fails={"test_loss_visible", "test_loss_hidden"},
    ),
    # used SSIM itself instead of 1 - SSIM: rewards dissimilar images (its fit scores 0.212)
    Mutant(
        "ssim-not-dssim",
        "loss",
        "ssim_lambda * (1 - ssim(render, target))",
        "ssim_lambda * ssim(render, target)",
        fails={"test_loss_visible", "test_loss_hidden", "test_axe_fit"},
    ),
    # handed the work to the course's own loss: right numbers, but not the student's code
    Mutant(
        "calls-the-course-loss",
        "loss",
        "    l1 = (render - target).abs().mean()\n"
        "    return (1 - ssim_lambda) * l1 + ssim_lambda * (1 - ssim(render, target))",
        "    from splatcourse.train.loss import l1_ssim_loss\n"
        "    return l1_ssim_loss(render, target, ssim_lambda)",
        fails={"test_loss_hidden", "test_axe_fit"},
    ),
    # clone and split swapped (its fit still scores 0.864)
    Mutant(
        "clone-split-swapped",
        "densify",
        "return high & small, high & ~small",
        "return high & ~small, high & small",
        fails={"test_densify_visible", "test_densify_hidden"},
    ),
    # never densifies (its fit scores 0.848, above the bar)
    Mutant(
        "never-densifies",
        "densify",
        "return high & small, high & ~small",
        "return torch.zeros_like(high), torch.zeros_like(high)",
        fails={"test_densify_visible", "test_densify_hidden"},
    ),
    # honest answers written differently keep every point
    Mutant(
        "honest-functional-l1",
        "loss",
        "    l1 = (render - target).abs().mean()",
        "    l1 = torch.nn.functional.l1_loss(render, target)  # the same mean |error|",
        fails=set(),
    ),
    Mutant(
        "honest-densify-where",
        "densify",
        "    high = grad2d / count.clamp_min(1) > grow_grad2d\n"
        "    small = torch.exp(log_scales).max(dim=-1).values <= grow_scale3d * scene_scale\n"
        "    return high & small, high & ~small",
        "    average = grad2d / torch.where(count > 0, count, torch.ones_like(count))\n"
        "    grow = average > grow_grad2d\n"
        "    large = torch.amax(log_scales.exp(), dim=1) > grow_scale3d * scene_scale\n"
        "    return torch.logical_and(grow, ~large), torch.logical_and(grow, large)",
        fails=set(),
    ),
]
