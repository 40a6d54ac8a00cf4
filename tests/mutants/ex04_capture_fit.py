from splatcourse.grading.harness import Mutant

MUTANTS = [
    # swapped the weights: 0.2 on L1 and 0.8 on the SSIM term
    Mutant("swapped-weights", "loss", "return (1 - ssim_lambda) * l1 + ssim_lambda * (1 - ssim(render, target))",
           "return ssim_lambda * l1 + (1 - ssim_lambda) * (1 - ssim(render, target))",
           # its fit also misses the SSIM bar (measured): the grader cannot swap in the reference
           fails={"test_loss_visible", "test_loss_hidden", "test_splats"}),
    # used SSIM itself instead of 1 - SSIM (rewards dissimilar images)
    Mutant("ssim-not-dssim", "loss", "ssim_lambda * (1 - ssim(render, target))",
           "ssim_lambda * ssim(render, target)",
           fails={"test_loss_visible", "test_loss_hidden", "test_splats"}),
    # clone and split swapped
    Mutant("clone-split-swapped", "densify", "return high & small, high & ~small",
           "return high & ~small, high & small",
           fails={"test_densify_visible", "test_densify_hidden", "test_splats"}),
    # saved the untrained initial Gaussians
    Mutant("unfitted", "fit", "save_ply(result.params, SPLATS_PATH)",
           "from splatcourse.train import init_gaussians\n"
           "save_ply(init_gaussians(cap, CFG), SPLATS_PATH)",
           fails={"test_splats"}),
]
