"""How many submissions per minute the class grader gets through, with 1 and 2 workers.

Grades N copies of the solution of exercises 1 and 2 (different student ids) in a throw-away copy
of the course, through the real pipeline (nbgrader, sandboxed kernel), once per worker count,
then with 2 workers in bubblewrap mode (every kernel starts cold; only when the default is the
pre-warmed ``warm`` mode) and with the sandbox off, to show what warming saves and isolation
costs. Every rate includes the start-up of the workers (and their zygotes), as a real run does.
Prints the machine's load, since other work on the machine slows every figure. Last line: one
JSON object.

    python bench/autograde.py            # 8 submissions per exercise and setting
    python bench/autograde.py --quick    # 2 per exercise: a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

from splatcourse.grading import instructor, sandbox
from splatcourse.grading.harness import completed, copy_course, write_submission

ROOT = Path(__file__).resolve().parents[1]

EXERCISES = ["ex01_toy_splats", "ex02_rgb_splats"]


def _cpu_seconds() -> float:
    """CPU time of this process and every finished child (workers, nbgrader, kernels)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def grade_batch(tmp: Path, n: int, workers: int, mode: str) -> tuple[float, float, int]:
    """Wall and CPU seconds to grade n submissions of each exercise, and how many failed."""
    os.environ["SPLATCOURSE_SANDBOX"] = mode
    course = copy_course(tmp / f"course-{workers}-{mode}", ROOT, with_gradebook=True)
    subs = tmp / f"subs-{workers}-{mode}"
    for a in EXERCISES:
        answers = completed(course, a)
        for i in range(n):
            write_submission(subs, f"student{i:03d}", a, answers)
    start, cpu = time.perf_counter(), _cpu_seconds()
    report = instructor.autograde(
        subs, course, EXERCISES, workers=workers, force=True, progress=False
    )
    return time.perf_counter() - start, _cpu_seconds() - cpu, len(report.failures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 submissions per exercise")
    parser.add_argument("-n", type=int, default=None, help="submissions per exercise")
    args = parser.parse_args(argv)
    n = args.n or (2 if args.quick else 8)
    mode = sandbox.prepare_shared()
    print(
        f"cores {instructor.default_workers()}, load average {os.getloadavg()[0]:.1f}, "
        f"sandbox {mode}, {n} submissions of each of {', '.join(EXERCISES)}"
    )
    rates: dict[str, float] = {}
    cpu_per_sub: dict[str, float] = {}
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        settings = [(1, mode), (2, mode)]
        if mode == "warm":
            settings.append((2, "bwrap"))
        settings.append((2, "none"))
        for workers, m in settings:
            seconds, cpu, bad = grade_batch(Path(tmp), n, workers, m)
            failed += bad
            key = f"workers{workers}_{m}"
            rates[key] = 60 * n * len(EXERCISES) / seconds
            cpu_per_sub[key] = cpu / (n * len(EXERCISES))
            print(
                f"{workers} worker(s), sandbox {m:6s}: {n * len(EXERCISES)} submissions in "
                f"{seconds:6.1f} s = {rates[key]:5.1f} per minute, {cpu_per_sub[key]:5.1f} CPU s "
                f"each ({bad} failed)"
            )
    os.environ.pop("SPLATCOURSE_SANDBOX", None)
    two, one = rates[f"workers2_{mode}"], rates[f"workers1_{mode}"]
    print(
        f"2 workers / 1 worker: {two / one:.2f}x;  sandbox {mode} / none: "
        f"{two / rates['workers2_none']:.2f}x of the unsandboxed rate"
        + (f";  warm / bwrap: {two / rates['workers2_bwrap']:.2f}x" if mode == "warm" else "")
    )
    # reaped children only: kernels behind bwrap's PID namespace may not be counted
    print(
        f"CPU per submission (this process and reaped children) "
        f"{cpu_per_sub[f'workers2_{mode}']:.1f} s; load average {os.getloadavg()[0]:.1f}: "
        "on a busy machine the rates above are far below what idle cores give"
    )
    print(
        json.dumps(
            {
                "submissions_per_min": round(two, 2),
                "workers": 2,
                "sandbox": mode,
                "reaped_cpu_s_per_submission": round(cpu_per_sub[f"workers2_{mode}"], 2),
                "per_setting": {k: round(v, 2) for k, v in rates.items()},
                "speedup_2_vs_1": round(two / one, 2),
                "failed": failed,
                "warm_vs_bwrap": (
                    round(two / rates["workers2_bwrap"], 2) if mode == "warm" else None
                ),
                "submissions_per_exercise": n,
                "load_average": os.getloadavg()[0],
            }
        )
    )
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
