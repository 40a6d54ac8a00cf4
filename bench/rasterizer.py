"""Benchmark: our PyTorch CPU rasterizer vs the naive dense reference (and gsplat on CUDA).

    python bench/rasterizer.py            # full run (several minutes on 2 cores)
    python bench/rasterizer.py --quick    # smoke run (seconds), used by the tests

Scene (``make_scene``): N Gaussians uniformly spread in the camera frustum at depths 2..6,
random orientations, per-axis scales log-uniform in [0.004, 0.04] (world units; at 256x192
with fx = 0.8 * width that is a 3-sigma footprint from about 3 px to about 25 px across,
larger in the bigger images), opacities uniform in [0.1, 0.9], SH degree 3 colours. The
same world scene is rendered at every resolution (the focal length scales with the width).

Each configuration runs in a fresh subprocess limited to 2 threads
(``torch.set_num_threads(2)``), so its peak memory (growth of the peak resident set over the
set-up) is its own. Time is forward + backward of ``sum(render) + sum(alpha)``, the median
of a few repetitions after a warm-up. The dense reference runs where N x pixels <= 1e9.
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time

THREADS = 2
DENSE_MAX_ELEMENTS = 1.0e9


def make_scene(n: int, seed: int = 0, device: str = "cpu"):
    import torch

    g = torch.Generator().manual_seed(seed)
    z = 2.0 + 4.0 * torch.rand(n, generator=g)
    x = (torch.rand(n, generator=g) * 2 - 1) * 0.6 * z
    y = (torch.rand(n, generator=g) * 2 - 1) * 0.45 * z
    means = torch.stack([x, y, z], -1)
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.empty(n, 3).uniform_(math.log(0.004), math.log(0.04), generator=g))
    opacities = torch.rand(n, generator=g) * 0.8 + 0.1
    sh = torch.randn(n, 16, 3, generator=g) * 0.2
    return [t.to(device) for t in (means, quats, scales, opacities, sh)]


def camera(width: int, height: int, device: str = "cpu"):
    import torch

    f = 0.8 * width
    K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    return torch.eye(4, device=device)[None], K.to(device)[None]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_child(cfg: dict) -> dict:
    """One measurement, in this (fresh) process."""
    import torch

    torch.set_num_threads(THREADS)
    from splatcourse.splat3d import dense_rasterization, rasterization

    device = "cuda" if cfg["impl"] == "gsplat" else "cpu"
    n, w, h = cfg["n"], cfg["w"], cfg["h"]
    params = make_scene(n, device=device)
    grad = cfg.get("grad", True)
    if grad:
        params = [p.requires_grad_() for p in params]
    viewmats, Ks = camera(w, h, device)
    if cfg["impl"] == "dense":
        fn = dense_rasterization
    else:
        backend = "gsplat" if cfg["impl"] == "gsplat" else "torch"

        def fn(*a, **k):
            return rasterization(*a, backend=backend, **k)

    def once():
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.set_grad_enabled(grad):
            r, a, info = fn(*params[:4], params[4], viewmats, Ks, w, h, sh_degree=3)
            t1 = time.perf_counter()
            if grad:
                (r.sum() + a.sum()).backward()
        if device == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        for p in params:
            p.grad = None
        return (t1 - t0) * 1e3, (t2 - t0) * 1e3, info, r

    base = _peak_rss_mb()
    reps = cfg.get("reps", 3)
    fwd, tot = [], []
    info = r = None
    for i in range(reps + (1 if reps > 1 else 0)):
        f_ms, t_ms, info, r = once()
        if reps > 1 and i == 0:
            continue  # warm-up
        fwd.append(f_ms)
        tot.append(t_ms)
    out = {
        "ms_fwd": statistics.median(fwd),
        "ms_fwd_bwd": statistics.median(tot),
        "peak_mb": _peak_rss_mb() - base,
        "mean_alpha": None,
        "pairs": info.get("n_pairs") if isinstance(info, dict) else None,
    }
    if device == "cuda":
        out["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if cfg.get("save_render"):
        torch.save(r.detach().cpu(), cfg["save_render"])
    return out


def measure(cfg: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(cfg)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"error": tail[0][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cuda_available() -> bool:
    try:
        from splatcourse.splat3d import gsplat_available

        return gsplat_available()[0]
    except (ImportError, RuntimeError):
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    ap.add_argument("--sizes", help="comma-separated Gaussian counts (default 5000,20000,50000)")
    ap.add_argument("--res", help="comma-separated WxH (default 128x96,256x192,512x384)")
    ap.add_argument("--no-big", action="store_true", help="skip the 1M-Gaussian render")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return

    if args.quick:
        sizes, resolutions, big_n, reps = [2000], [(128, 96)], 50_000, 2
    else:
        sizes = [5_000, 20_000, 50_000]
        resolutions = [(128, 96), (256, 192), (512, 384)]
        big_n, reps = 1_000_000, 5
    if args.sizes:
        sizes = [int(x) for x in args.sizes.split(",")]
    if args.res:
        resolutions = [tuple(int(v) for v in r.split("x")) for r in args.res.split(",")]
    gpu = cuda_available()
    results: dict = {"threads": THREADS, "quick": bool(args.quick), "configs": {}}
    print(f"rasterizer benchmark, {THREADS} threads, forward+backward (median), peak memory")
    print(
        f"{'N':>8} {'image':>9} | {'ours ms':>9} {'MB':>7} {'pairs':>9} | "
        f"{'dense ms':>9} {'MB':>7} | {'speedup':>7}" + (" | gsplat ms" if gpu else "")
    )
    for n in sizes:
        for w, h in resolutions:
            key = f"{n // 1000}k_{w}x{h}" if n >= 1000 else f"{n}_{w}x{h}"
            cfg = {"n": n, "w": w, "h": h, "reps": reps}
            ours = measure({**cfg, "impl": "ours"})
            row = {"ours": ours}
            dense = None
            if n * w * h <= DENSE_MAX_ELEMENTS:
                dense = measure({**cfg, "impl": "dense", "reps": 1})
                row["dense"] = dense
            if gpu:
                row["gsplat"] = measure({**cfg, "impl": "gsplat", "reps": 10})
            speed = None
            if dense and "error" not in dense and "error" not in ours:
                speed = dense["ms_fwd_bwd"] / ours["ms_fwd_bwd"]
                row["speedup_vs_dense"] = speed
            results["configs"][key] = row

            def fmt(m, k, spec):
                return (
                    format(m[k], spec) if m and "error" not in m and m.get(k) is not None else "-"
                )

            line = (
                f"{n:>8} {w:>4}x{h:<4} | {fmt(ours, 'ms_fwd_bwd', '9.1f')} "
                f"{fmt(ours, 'peak_mb', '7.0f')} {fmt(ours, 'pairs', '9d')} | "
                f"{fmt(dense, 'ms_fwd_bwd', '9.1f')} {fmt(dense, 'peak_mb', '7.0f')} | "
                f"{(f'{speed:6.1f}x' if speed else '      -')}"
            )
            if gpu:
                line += f" | {fmt(row['gsplat'], 'ms_fwd_bwd', '9.2f')}"
            print(line, flush=True)

    w, h = (512, 384) if not args.quick else (128, 96)
    big = {"error": "skipped (--no-big)"}
    if not args.no_big:
        big = measure({"n": big_n, "w": w, "h": h, "impl": "ours", "grad": False, "reps": 1})
        status = "ok" if "error" not in big else f"FAILED ({big['error']})"
        print(
            f"{big_n} Gaussians at {w}x{h}, forward only: "
            f"{big.get('ms_fwd', float('nan')):.0f} ms, "
            f"peak +{big.get('peak_mb', float('nan')):.0f} MB, {status}"
        )
    results["render_only_big"] = {"n": big_n, "w": w, "h": h, **big}

    row = {} if args.quick else results["configs"].get("20k_256x192", {})
    summary = {
        "ms_fwd_bwd_20k_256x192": row.get("ours", {}).get("ms_fwd_bwd"),
        "speedup_vs_dense_20k_256x192": row.get("speedup_vs_dense"),
        "peak_mb_20k_256x192": row.get("ours", {}).get("peak_mb"),
        "big_render_ok": "error" not in big,
        "big_render_ms": big.get("ms_fwd"),
        "big_render_peak_mb": big.get("peak_mb"),
        "gsplat_ms_fwd_bwd_20k_256x192": row.get("gsplat", {}).get("ms_fwd_bwd") if gpu else None,
    }
    for k, v in results["configs"].items():
        summary[f"ms_fwd_bwd_{k}"] = v["ours"].get("ms_fwd_bwd")
        if "dense" in v:
            summary[f"dense_ms_fwd_bwd_{k}"] = v["dense"].get("ms_fwd_bwd")
        if gpu and "gsplat" in v:
            summary[f"gsplat_ms_fwd_bwd_{k}"] = v["gsplat"].get("ms_fwd_bwd")
    summary = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in summary.items()}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
