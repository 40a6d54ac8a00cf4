"""Pure-Python toy splat fit vs the course's vectorised one, on the same 64-Gaussian fit.

Both start from the same `init_splats`, fit the same target with Adam at the same learning rate
for the same number of steps, so the only difference is how the arithmetic is executed. The
pure-Python fit is far too slow to run for the full budget, so both run `--steps` steps (the
speed-up is a ratio of per-step times) and the final MSEs are printed to show they agree.

Also times the autograding of one exercise-1 submission (the solution) through nbgrader.

    python bench/toy_fit.py            # full run
    python bench/toy_fit.py --quick    # smoke run (smaller image, fewer steps, no grading)
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from splatcourse import toy2d
from splatcourse.grading.harness import grade_one_seconds


def python_fit(
    target: list[list[float]], start: dict[str, torch.Tensor], steps: int, lr: float
) -> float:
    """The seed algorithm: loops over pixels and Gaussians, hand-written gradients, Adam."""
    size = len(target)
    params = [
        start["means"][:, 0].tolist(),
        start["means"][:, 1].tolist(),
        start["log_scales"].tolist(),
        start["weights"][:, 0].tolist(),
    ]
    n = len(params[0])
    m1 = [[0.0] * n for _ in params]
    m2 = [[0.0] * n for _ in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    coords = [(i + 0.5) / size for i in range(size)]
    loss = 0.0
    for step in range(1, steps + 1):
        mx, my, ls, w = params
        var = [math.exp(2 * s) for s in ls]
        grads = [[0.0] * n for _ in params]
        loss = 0.0
        scale = 2.0 / (size * size)
        for row, y in enumerate(coords):
            for col, x in enumerate(coords):
                gs = [
                    math.exp(-0.5 * ((x - mx[k]) ** 2 + (y - my[k]) ** 2) / var[k])
                    for k in range(n)
                ]
                err = sum(w[k] * gs[k] for k in range(n)) - target[row][col]
                loss += err * err
                for k in range(n):
                    dk = scale * err * w[k] * gs[k]
                    grads[0][k] += dk * (x - mx[k]) / var[k]
                    grads[1][k] += dk * (y - my[k]) / var[k]
                    grads[2][k] += dk * ((x - mx[k]) ** 2 + (y - my[k]) ** 2) / var[k]
                    grads[3][k] += scale * err * gs[k]
        loss /= size * size
        for p, g, a, b in zip(params, grads, m1, m2):
            for k in range(n):
                a[k] = b1 * a[k] + (1 - b1) * g[k]
                b[k] = b2 * b[k] + (1 - b2) * g[k] * g[k]
                p[k] -= lr * (a[k] / (1 - b1**step)) / (math.sqrt(b[k] / (1 - b2**step)) + eps)
    return loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small, fast smoke run")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--gaussians", type=int, default=64)
    args = parser.parse_args()
    if args.quick:
        args.size, args.steps, args.gaussians = 16, 2, 16
    torch.set_num_threads(2)

    target = toy2d.gradient_target(args.size)
    start = toy2d.init_splats(args.gaussians, seed=0)
    lr = toy2d.REFERENCE_LR

    t0 = time.perf_counter()
    py_loss = python_fit(target.tolist(), start, args.steps, lr)
    py_step = (time.perf_counter() - t0) / args.steps

    toy2d.fit_splats(target, args.gaussians, steps=3, progress=False)  # warm-up
    repeats = max(args.steps, 50)
    t0 = time.perf_counter()
    result = toy2d.fit_splats(target, args.gaussians, steps=repeats, progress=False)
    vec_step = (time.perf_counter() - t0) / repeats
    same = toy2d.fit_splats(target, args.gaussians, steps=args.steps, progress=False)

    print(f"{args.gaussians} Gaussians, {args.size}x{args.size} target, Adam lr={lr}, 2 threads")
    print(
        f"pure Python : {py_step * 1e3:10.2f} ms/step  (loss at step {args.steps}: {py_loss:.6g})"
    )
    print(
        f"vectorised  : {vec_step * 1e3:10.4f} ms/step  (loss at step {args.steps}: "
        f"{same.losses[args.steps - 1]:.6g})"
    )
    speedup = py_step / vec_step
    print(f"speed-up    : {speedup:,.0f}x")
    figures = {
        "speedup": round(speedup, 1),
        "python_ms_per_step": round(py_step * 1e3, 3),
        "vectorised_ms_per_step": round(vec_step * 1e3, 4),
        "full_fit_seconds_300_steps": round(vec_step * toy2d.REFERENCE_STEPS, 3),
        "losses_agree": math.isclose(py_loss, same.losses[args.steps - 1], rel_tol=1e-3),
        f"final_mse_after_{repeats}_steps": round(result.mse, 8),
    }
    if not args.quick:
        grade_s = grade_one_seconds("ex01_toy_splats")
        print(f"autograding one exercise-1 submission: {grade_s:.1f} s")
        figures["autograde_one_submission_s"] = round(grade_s, 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
