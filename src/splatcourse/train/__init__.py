"""Training 3D Gaussians on a capture (the 3DGS recipe on the course rasterizer).

    from splatcourse.capture import load_capture
    from splatcourse.train import fit, TrainConfig
    result = fit(load_capture("default"), steps=500)
    result.summary()      # {'fit_seconds': ..., 'gaussians': ..., 'ssim_object': ..., ...}
    result.save_ply(path) # standard 3DGS .ply, opens in common splat viewers

Used by: lesson 5 and exercise 4; lessons 6 and 7 call its fit.
"""

from .config import TrainConfig
from .densify import DecisionStrategy, densify_masks
from .evaluate import EvalResult, empty_render_scores, evaluate, render_rgba_views, render_views
from .export import load_ply, save_ply
from .loss import l1_ssim_loss, psnr, ssim
from .metrics import (
    OBJECT_BACKGROUNDS,
    ObjectScores,
    alpha_iou,
    composite_over,
    full_frame_pair,
    masked_full_frame_scores,
    object_box,
    object_scores,
)
from .model import (
    PARAM_NAMES,
    Backend,
    Gaussians,
    init_gaussians,
    knn_scale,
    make_optimizers,
    rasterization_from,
    render,
)
from .report import plot_ssim_vs_time, save_side_by_side, summary_table
from .trainer import CHECKPOINT_NAME, FitResult, Trainer, fit, train_view_capture

__all__ = [
    "CHECKPOINT_NAME",
    "OBJECT_BACKGROUNDS",
    "PARAM_NAMES",
    "Backend",
    "DecisionStrategy",
    "EvalResult",
    "FitResult",
    "Gaussians",
    "ObjectScores",
    "TrainConfig",
    "Trainer",
    "alpha_iou",
    "composite_over",
    "densify_masks",
    "empty_render_scores",
    "evaluate",
    "fit",
    "full_frame_pair",
    "init_gaussians",
    "knn_scale",
    "l1_ssim_loss",
    "load_ply",
    "make_optimizers",
    "masked_full_frame_scores",
    "object_box",
    "object_scores",
    "plot_ssim_vs_time",
    "psnr",
    "rasterization_from",
    "render",
    "render_rgba_views",
    "render_views",
    "save_ply",
    "save_side_by_side",
    "ssim",
    "summary_table",
    "train_view_capture",
]
