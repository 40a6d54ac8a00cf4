"""Benchmark: the compiled CPU rasterizer against the PyTorch one, the dense reference (and
gsplat on CUDA), side by side in one run.

    python bench/rasterizer.py            # full run (many minutes on 2 cores)
    python bench/rasterizer.py --quick    # smoke run (about a minute), used by the tests

Scene (``make_scene``): N Gaussians uniformly spread in the camera frustum at depths 2..6,
random orientations, per-axis scales log-uniform in [0.004, 0.04] (world units; at 256x192
with fx = 0.8 * width that is a 3-sigma footprint from about 3 px to about 25 px across,
larger in the bigger images), opacities uniform in [0.1, 0.9], SH degree 3 colours. The
same world scene is rendered at every resolution (the focal length scales with the width).

Each configuration runs in a fresh subprocess limited to 2 threads
(``torch.set_num_threads(2)``; the compiled kernels follow torch's thread count), so its peak
memory (growth of the peak resident set over the set-up) is its own. Time is forward +
backward of ``sum(render) + sum(alpha)``, the median of a few repetitions after a warm-up.
The dense reference runs where N x pixels <= 1e9. "compiled" is the default CPU path
(``backend="compiled"``, splat3d/kernel.py), "torch" the PyTorch rasterizer it replaced
(``backend="torch"``, splat3d/rasterize.py).

On the bench scene (20k Gaussians, 256x192) it also measures:

* ``ms_fwd_bwd_20k_256x192_contended``: the same, while a busy process spins on core 0;
* ``thread_scaling_2_vs_1``: time on 1 thread / time on 2 threads, measured in turns in one
  process, four calls on each thread count at a time, the first after a switch not counted
  (so a machine that slows down for a while slows both; the switch itself, which finds the
  helper threads asleep and which a training loop never makes, is left out: measured call by
  call it is ``thread_scaling_2_vs_1_call_by_call``), next to
  ``machine_thread_scaling_2_vs_1``, the same ratio for a compiled loop with nothing serial
  and no memory traffic (the most a second core gives on this machine);
* ``first_call_ms``: the first forward + backward in a fresh process (kernels loaded from
  numba's disk cache), and ``first_call_cold_ms`` with an empty cache (the one-off compile);
* ``ms_train_step_axe_256``: one full training step on the socketed axe at 256 px (render,
  loss, backward, Adam, densification strategy), median over steps, for both backends,
  their trainers taking turns step by step in one process;
* ``tile_waste_20k_256x192``: (tile, pixel) candidates that 16x16 tiles would test, per
  real pair (``splat3d.kernel.tile_waste``).

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

THREADS = 2
DENSE_MAX_ELEMENTS = 1.0e9


def make_scene(n: int, seed: int = 0, device: str = "cpu"):
    """The bench scene (see the module's docstring): the same numbers in every process."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # (on two threads, torch.exp gave other bits now and then)
    try:
        return _scene(n, seed, device)
    finally:
        torch.set_num_threads(threads)


def _scene(n: int, seed: int, device: str):
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
    t_start = time.perf_counter()
    import torch

    torch.set_num_threads(cfg.get("threads", THREADS))
    if cfg.get("what") == "train_step":
        return train_step_child(cfg)
    if cfg.get("what") == "machine_scaling":
        return machine_scaling_child()
    if cfg.get("what") == "thread_scaling":
        return thread_scaling_child(cfg)
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

        def fn(*a, **k):
            return rasterization(*a, backend=cfg["impl"], **k)

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
    if cfg.get("what") == "first_call":
        cpu0 = time.process_time()
        first_ms = once()[1]
        return {
            "first_call_ms": first_ms,
            "first_call_cpu_ms": (time.process_time() - cpu0) * 1e3,  # a fairer clock when busy
            "process_to_first_result_ms": _since(t_start),
        }
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


def _since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


def train_step_child(cfg: dict) -> dict:
    """Median time of one full training step on the axe at 256 px (after a warm-up), for
    each backend in ``cfg["impls"]``: their trainers take turns, step by step, so a machine
    that slows down for a while slows them all alike."""
    import torch

    from splatcourse.capture import load_capture
    from splatcourse.train import TrainConfig, Trainer
    from splatcourse.train.recipes import AXE_RECIPE

    cap = load_capture("socketed_axe_arreton", width=256, verbose=False)
    trainers = {
        impl: Trainer(cap, TrainConfig(**AXE_RECIPE), backend=impl, progress=False)
        for impl in cfg["impls"]
    }
    times: dict[str, list[float]] = {impl: [] for impl in trainers}
    for i in range(cfg["warmup"] + cfg["steps"]):
        for impl, trainer in trainers.items():
            t0 = time.perf_counter()
            trainer.train_step()
            if i >= cfg["warmup"]:
                times[impl].append(_since(t0))
    first = next(iter(trainers.values()))
    return {
        **{f"ms_train_step_{impl}": statistics.median(t) for impl, t in times.items()},
        "gaussians": first.n_gaussians,
        "size": f"{first.train_cap.width}x{first.train_cap.height}",
        "threads": torch.get_num_threads(),
    }


def thread_scaling_child(cfg: dict) -> dict:
    """Forward + backward of the bench scene on 2 threads and on 1 (the kernels follow
    torch's thread count), taking turns: ``block`` calls on one count, then on the other,
    the first of each block not counted. Medians of each, and their ratio; and the same
    taking turns call by call (every call right after a switch)."""
    import torch

    from splatcourse.splat3d import rasterization

    params = [p.requires_grad_() for p in make_scene(cfg["n"])]
    viewmats, Ks = camera(cfg["w"], cfg["h"])

    def once(threads: int) -> float:
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        r, a, _ = rasterization(*params[:4], params[4], viewmats, Ks, cfg["w"], cfg["h"],
                                sh_degree=3, backend="compiled")  # fmt: skip
        (r.sum() + a.sum()).backward()
        for p in params:
            p.grad = None
        return _since(t0)

    block = 4
    times: dict[int, list[float]] = {2: [], 1: []}
    switching: dict[int, list[float]] = {2: [], 1: []}
    for i in range(1 + cfg["reps"] // (block - 1)):
        for threads in times:
            for k in range(block):
                ms = once(threads)
                if i > 0:  # the first round warms up
                    (switching if k == 0 else times)[threads].append(ms)
    two, one = statistics.median(times[2]), statistics.median(times[1])
    return {"ms_2_threads": two, "ms_1_thread": one, "thread_scaling": one / two,
            "thread_scaling_call_by_call": statistics.median(switching[1])
            / statistics.median(switching[2])}  # fmt: skip


def machine_scaling_child(reps: int = 15) -> dict:
    """What a second thread can give on this machine at best: a compiled loop with no memory
    traffic and nothing serial, run whole on one thread and halved on two (the kernels'
    own thread pool), median of ``reps``. A virtual machine's two cores may share one
    physical core, or the host may run someone else on the second: then even this is below
    2, and no kernel can scale better."""
    import numpy as np
    from numba import njit

    from splatcourse.splat3d.kernel import _in_bands, _take_band

    @njit(nogil=True)
    def spin(n0, n1, out):
        s = 0.0
        for i in range(n0, n1):
            s += math.sqrt(i * 1.0001 + 1.0)
        out[0] += s

    @njit(nogil=True)
    def spin_bands(next_band, edges, out):  # the kernels' loop over bands
        band = _take_band(next_band, edges)
        while band >= 0:
            spin(edges[band], edges[band + 1], out)
            band = _take_band(next_band, edges)

    n, out = 12_000_000, np.zeros(1)
    spin_bands(np.zeros(2, np.int64), np.array([0, 10]), out)  # compile
    ratios = []
    for _ in range(reps):
        t0 = time.perf_counter()
        spin(0, n, out)
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        _in_bands(spin_bands, np.array([0, n // 2, n]), 2, out)
        ratios.append(one / (time.perf_counter() - t0))
    return {"machine_thread_scaling": statistics.median(ratios)}


@contextmanager
def busy_core(core: int = 0):
    """A process spinning on one core for as long as the block runs: a laptop that is doing
    something else, or a grading machine with a neighbour."""
    spin = f"import os\nos.sched_setaffinity(0, {{{core}}})\nwhile True: pass"
    proc = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.2)  # let it start spinning
        yield
    finally:
        proc.kill()
        proc.wait()


def measure(cfg: dict, env: dict | None = None) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(cfg)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
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
    print(f"load average at the start: {os.getloadavg()} (on a shared machine, figures are noisy)")
    print(
        f"{'N':>8} {'image':>9} | {'compiled ms':>11} {'MB':>6} {'pairs':>9} | "
        f"{'torch ms':>9} {'MB':>6} {'ratio':>6} | {'dense ms':>9}"
        + (" | gsplat ms" if gpu else "")
    )
    for n in sizes:
        for w, h in resolutions:
            key = f"{n // 1000}k_{w}x{h}" if n >= 1000 else f"{n}_{w}x{h}"
            results["configs"][key] = row = compare_row(n, w, h, reps, gpu)
            print(format_row(n, w, h, row, gpu), flush=True)

    w, h = (512, 384) if not args.quick else (128, 96)
    big = {"error": "skipped (--no-big)"}
    if not args.no_big:
        big = measure({"n": big_n, "w": w, "h": h, "impl": "compiled", "grad": False, "reps": 1})
        status = "ok" if "error" not in big else f"FAILED ({big['error']})"
        print(
            f"{big_n} Gaussians at {w}x{h}, forward only: "
            f"{big.get('ms_fwd', float('nan')):.0f} ms, "
            f"peak +{big.get('peak_mb', float('nan')):.0f} MB, {status}"
        )
    results["render_only_big"] = {"n": big_n, "w": w, "h": h, **big}

    bench_scene = {"n": 2_000 if args.quick else 20_000, "w": 128 if args.quick else 256}
    bench_scene["h"] = bench_scene["w"] * 3 // 4
    extra = bench_scene_figures(bench_scene, reps, quick=bool(args.quick))
    results["bench_scene"] = extra

    row = {} if args.quick else results["configs"].get("20k_256x192", {})
    summary = {
        "ms_fwd_bwd_20k_256x192": row.get("compiled", {}).get("ms_fwd_bwd"),
        "torch_ms_fwd_bwd_20k_256x192": row.get("torch", {}).get("ms_fwd_bwd"),
        "speedup_vs_torch_20k_256x192": row.get("speedup_vs_torch"),
        "speedup_vs_dense_20k_256x192": row.get("speedup_vs_dense"),
        "peak_mb_20k_256x192": row.get("compiled", {}).get("peak_mb"),
        **extra,
        "big_render_ok": "error" not in big,
        "big_render_ms": big.get("ms_fwd"),
        "big_render_peak_mb": big.get("peak_mb"),
        "gsplat_ms_fwd_bwd_20k_256x192": row.get("gsplat", {}).get("ms_fwd_bwd") if gpu else None,
        "load_average_end": os.getloadavg()[0],
    }
    for k, v in results["configs"].items():
        summary[f"ms_fwd_bwd_{k}"] = v["compiled"].get("ms_fwd_bwd")
        summary[f"torch_ms_fwd_bwd_{k}"] = v["torch"].get("ms_fwd_bwd")
        if "dense" in v:
            summary[f"dense_ms_fwd_bwd_{k}"] = v["dense"].get("ms_fwd_bwd")
        if gpu and "gsplat" in v:
            summary[f"gsplat_ms_fwd_bwd_{k}"] = v["gsplat"].get("ms_fwd_bwd")
    summary = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in summary.items()}
    print(json.dumps(summary))


def compare_row(n: int, w: int, h: int, reps: int, gpu: bool) -> dict:
    """Compiled, PyTorch, dense (where it fits) and gsplat (on CUDA) on one configuration."""
    cfg = {"n": n, "w": w, "h": h, "reps": reps}
    row = {impl: measure({**cfg, "impl": impl}) for impl in ("compiled", "torch")}
    if n * w * h <= DENSE_MAX_ELEMENTS:
        row["dense"] = measure({**cfg, "impl": "dense", "reps": 1})
    if gpu:
        row["gsplat"] = measure({**cfg, "impl": "gsplat", "reps": 10})
    ours = row["compiled"]
    for other in ("torch", "dense"):
        theirs = row.get(other)
        if theirs and "error" not in theirs and "error" not in ours:
            row[f"speedup_vs_{other}"] = theirs["ms_fwd_bwd"] / ours["ms_fwd_bwd"]
    return row


def format_row(n: int, w: int, h: int, row: dict, gpu: bool) -> str:
    def fmt(m, k, spec):
        return format(m[k], spec) if m and "error" not in m and m.get(k) is not None else "-"

    ours, torch_row, dense = row["compiled"], row["torch"], row.get("dense")
    ratio = row.get("speedup_vs_torch")
    line = (
        f"{n:>8} {w:>4}x{h:<4} | {fmt(ours, 'ms_fwd_bwd', '11.1f')} "
        f"{fmt(ours, 'peak_mb', '6.0f')} {fmt(ours, 'pairs', '9d')} | "
        f"{fmt(torch_row, 'ms_fwd_bwd', '9.1f')} {fmt(torch_row, 'peak_mb', '6.0f')} "
        f"{(f'{ratio:5.1f}x' if ratio else '     -')} | {fmt(dense, 'ms_fwd_bwd', '9.1f')}"
    )
    if gpu:
        line += f" | {fmt(row['gsplat'], 'ms_fwd_bwd', '9.2f')}"
    return line


def bench_scene_figures(scene: dict, reps: int, quick: bool) -> dict:
    """Contention, thread scaling, first call, a training step and the tile waste."""
    key = f"{scene['n'] // 1000}k_{scene['w']}x{scene['h']}"
    cfg = {**scene, "reps": reps, "impl": "compiled"}
    quiet = measure(cfg)
    with busy_core(0):
        contended = measure(cfg)
        contended_torch = measure({**cfg, "impl": "torch"})
    scaling = measure({**cfg, "what": "thread_scaling", "reps": 3 * reps})
    machine = measure({"what": "machine_scaling"})
    first = measure({**cfg, "what": "first_call"})
    cold = {"first_call_ms": None}
    if not quick:  # an empty numba cache: the one-off compile a fresh install pays
        with tempfile.TemporaryDirectory() as empty:
            cold = measure({**cfg, "what": "first_call"}, {**os.environ, "NUMBA_CACHE_DIR": empty})
    steps = {"warmup": 3, "steps": 5} if quick else {"warmup": 10, "steps": 40}
    train = measure({"what": "train_step", "impls": ["compiled", "torch"], **steps})
    figures = {
        f"ms_fwd_bwd_{key}_quiet": quiet.get("ms_fwd_bwd"),
        f"ms_fwd_bwd_{key}_contended": contended.get("ms_fwd_bwd"),
        f"torch_ms_fwd_bwd_{key}_contended": contended_torch.get("ms_fwd_bwd"),
        f"ms_fwd_bwd_{key}_1_thread": scaling.get("ms_1_thread"),
        f"ms_fwd_bwd_{key}_2_threads_beside_1": scaling.get("ms_2_threads"),
        "first_call_ms": first.get("first_call_ms"),
        "first_call_cpu_ms": first.get("first_call_cpu_ms"),
        "first_call_process_ms": first.get("process_to_first_result_ms"),
        "first_call_cold_ms": cold.get("first_call_ms"),
        "first_call_cold_cpu_ms": cold.get("first_call_cpu_ms"),
        "ms_train_step_axe_256": train.get("ms_train_step_compiled"),
        "torch_ms_train_step_axe_256": train.get("ms_train_step_torch"),
        "train_step_axe_gaussians": train.get("gaussians"),
        f"tile_waste_{key}": tile_waste_figure(scene),
        "machine_thread_scaling_2_vs_1": machine.get("machine_thread_scaling"),
    }
    if quiet.get("ms_fwd_bwd") and contended.get("ms_fwd_bwd"):
        figures[f"contended_over_quiet_{key}"] = contended["ms_fwd_bwd"] / quiet["ms_fwd_bwd"]
    figures["thread_scaling_2_vs_1"] = scaling.get("thread_scaling")
    figures["thread_scaling_2_vs_1_call_by_call"] = scaling.get("thread_scaling_call_by_call")
    for name, m in (("train_step", train), ("first_call", first), ("cold", cold),
                    ("thread_scaling", scaling), ("machine_scaling", machine)):  # fmt: skip
        if "error" in m:
            print(f"{name}: FAILED ({m['error']})")
    return figures


def tile_waste_figure(scene: dict) -> float:
    """Candidates 16x16 tiles would test per real pair, on the bench scene."""
    from splatcourse.splat3d import project_gaussians
    from splatcourse.splat3d.kernel import tile_waste

    means, quats, scales, opacities, _ = make_scene(scene["n"])
    viewmats, Ks = camera(scene["w"], scene["h"])
    proj = project_gaussians(
        means, None, viewmats, Ks, scene["w"], scene["h"], opacities=opacities, quats=quats,
        scales=scales,
    )  # fmt: skip
    waste = tile_waste(
        proj.means2d[0], proj.conics[0], opacities, proj.radii[0], scene["w"], scene["h"]
    )
    print(
        f"tiles: {waste['tile_entries']} (tile, Gaussian) entries = {waste['tile_candidates']} "
        f"candidates for {waste['pairs']} pairs: {waste['waste']:.1f}x the work"
    )
    return waste["waste"]


if __name__ == "__main__":
    main()
