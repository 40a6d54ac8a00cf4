"""Fit the course capture on the CPU and track held-out SSIM against wall time.

    python bench/capture_fit.py                 # the axe at 256x170, the course recipe, <= 10 min
    python bench/capture_fit.py --quick         # smoke run: synthetic capture, a few steps
    python bench/capture_fit.py --width 512 --steps 10000   # the full photos, about 9 minutes
    python bench/capture_fit.py --threads 1 --clock cpu --budget 300 --plain-background

The recipe is ``splatcourse.train.recipes.AXE_RECIPE`` (what lesson 5 and exercise 4 run).
``grade_seconds_per_submission`` is the wall time to autograde one exercise-4 submission (the
grader's own short fit of the axe included), measured after the fit on the same machine.

The headline figures are the object scores (``splatcourse.train.metrics``): SSIM and PSNR on
each held-out view's object box with render and photo over black and over white, and the soft
IoU of the render's alpha with the mask, so floaters cost points. ``ssim_empty_render`` is what
the same metric gives an empty render on the same views: the floor to read them against.
The full-frame scores (background outside the mask painted into both images; issue 5's target
of SSIM >= 0.90 within 10 minutes on 2 CPU cores was set on them) are kept as
``ssim_full_frame``/``psnr_full_frame``. Evaluation time is not counted as fit time. The last
line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch

from splatcourse.capture import load_capture
from splatcourse.grading.harness import grade_one_seconds
from splatcourse.paths import outputs_dir
from splatcourse.train import (
    TrainConfig,
    Trainer,
    empty_render_scores,
    evaluate,
    plot_ssim_vs_time,
    render_views,
    save_side_by_side,
    summary_table,
)
from splatcourse.train.recipes import AXE_RECIPE, QUICK_RECIPE


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="synthetic capture, 40 steps")
    ap.add_argument("--capture", default=None, help="capture name or path (default: the axe)")
    ap.add_argument("--width", type=int, default=None, help="image width (default: course's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=float, default=600.0, help="training seconds")
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="what the budget and the curve measure: wall time, or this process's "
        "CPU time (fair on a machine busy with other jobs; with --threads 1 it "
        "is what a dedicated core would take)",
    )
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--eval-every", type=int, default=None)
    ap.add_argument("--out", default=None, help="folder for the plot and side-by-side PNGs")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (gsplat backend on cuda)")
    ap.add_argument(
        "--plain-background",
        action="store_true",
        help="train over the capture's own background, not a random colour each "
        "step (the recipe's TrainConfig.random_background), to compare",
    )
    ap.add_argument(
        "--no-grading",
        action="store_true",
        help="skip timing the autograding of one exercise-4 submission",
    )
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    name = args.capture or ("default" if args.quick else "socketed_axe_arreton")
    try:
        cap = load_capture(name, width=args.width or (48 if args.quick else None), verbose=False)
    except FileNotFoundError as err:
        sys.exit(f"capture_fit: {err}")
    recipe = dict(QUICK_RECIPE if args.quick else AXE_RECIPE)
    if args.steps:
        recipe["steps"] = args.steps
    recipe["eval_every"] = args.eval_every or (20 if args.quick else 100)
    if args.plain_background:
        recipe["random_background"] = False
    cfg = TrainConfig(**recipe)
    out = args.out or str(outputs_dir() / ("bench_fit_quick" if args.quick else "bench_fit"))

    print(
        f"capture: {cap.name} {cap.width}x{cap.height}, {len(cap.train_idx)} train / "
        f"{len(cap.test_idx)} held-out views, {len(cap.points)} SfM points"
    )
    print(f"attribution: {cap.attribution.splitlines()[0] if cap.attribution else '-'}")
    print(
        f"threads: {torch.get_num_threads()}, load average: {os.getloadavg()}, "
        f"cpu: {platform.processor() or platform.machine()}, device: {args.device}"
    )
    print(f"recipe: {cfg.to_dict()}")
    cap = cap.to(args.device)
    trainer = Trainer(cap, cfg, progress=False)
    print(
        f"initial Gaussians: {trainer.n_gaussians}; training crop "
        f"{trainer.train_cap.width}x{trainer.train_cap.height}"
    )
    t_wall = time.perf_counter()

    def log(tr: Trainer, rec: dict) -> None:
        if "ssim_object" in rec:
            print(
                f"step {rec['step']:5d}  fit {rec['seconds']:7.1f}s (cpu "
                f"{rec['cpu_seconds']:7.1f}s)  Gaussians {rec['gaussians']:6d}  loss "
                f"{rec['loss']:.4f}  held-out object SSIM {rec['ssim_object']:.4f}  PSNR "
                f"{rec['psnr_object']:.2f}  alpha IoU {_fmt(rec['alpha_iou'])}  (full frame "
                f"SSIM {rec['ssim_heldout']:.4f})",
                flush=True,
            )

    trainer.run(callback=log, time_budget=args.budget, budget_clock=args.clock)
    final = evaluate(trainer.params, cap)
    clock = "cpu_seconds" if args.clock == "cpu" else "seconds"
    rows = [h for h in trainer.history if "ssim_object" in h]
    print(
        summary_table(
            rows,
            (
                "step",
                "seconds",
                "cpu_seconds",
                "gaussians",
                "ssim_object",
                "psnr_object",
                "alpha_iou",
                "ssim_heldout",
                "psnr_heldout",
            ),
        )
    )
    first_090 = next((h[clock] for h in rows if h["ssim_heldout"] >= 0.90), None)
    os.makedirs(out, exist_ok=True)
    ax = plot_ssim_vs_time(
        trainer.history, label=f"{cap.name}, {args.threads} threads", clock=clock, key="ssim_object"
    )
    ax.figure.savefig(os.path.join(out, "ssim_vs_time.png"), dpi=120, bbox_inches="tight")
    names = [cap.image_names[i] for i in final.view_ids]
    # the renders as they are, floaters included (final.renders has the background painted in)
    renders = render_views(trainer.params, cap, final.view_ids)
    save_side_by_side(cap.images[final.view_ids], renders, out, names)
    trainer.result(evaluate_heldout=False).save_ply(os.path.join(out, "splats.ply"))
    print(f"figures in {out}; wall time incl. evaluation {time.perf_counter() - t_wall:.0f}s")
    result = {
        "capture": cap.name,
        "width": cap.width,
        "height": cap.height,
        "n_views": len(final.view_ids),
        "region": final.region,
        "ssim_object": round(final.ssim_object, 4),
        "psnr_object": round(final.psnr_object, 2),
        "alpha_iou": _round(final.alpha_iou, 4),
        "ssim_empty_render": round(empty_render_scores(cap, final.view_ids).ssim, 4),
        "fit_seconds": round(trainer.cpu_elapsed if args.clock == "cpu" else trainer.elapsed, 1),
        "ssim_object_curve": [(round(h[clock], 1), round(h["ssim_object"], 4)) for h in rows],
        "ssim_curve_clock": clock,
        # issue 13's target: object SSIM >= 0.95 at 256x170 within 10 minutes on 2 cores
        "target_met_ssim_object_0.95": bool(final.ssim_object >= 0.95 and trainer.elapsed <= 600),
        "ssim_full_frame": round(final.ssim, 4),
        "psnr_full_frame": round(final.psnr, 2),
        "ssim_full_frame_curve": [(round(h[clock], 1), round(h["ssim_heldout"], 4)) for h in rows],
        "seconds_to_ssim_full_frame_0.90": _round(first_090, 1),
        "target_met_full_frame": bool(first_090 is not None and first_090 <= 600),
        "random_background": cfg.random_background,
        "threads": args.threads,
        "device": args.device,
        "steps": trainer.step,
        "clock": args.clock,
        "wall_seconds": round(trainer.elapsed, 1),
        "cpu_seconds": round(trainer.cpu_elapsed, 1),
        "gaussians": trainer.n_gaussians,
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }
    if not (args.quick or args.no_grading):
        result["grade_seconds_per_submission"] = round(grade_one_seconds("ex04_capture_fit"), 1)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
