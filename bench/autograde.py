"""How many submissions per minute the class grader gets through, with 1 and 2 workers.

Grades N copies of the solution of exercises 1 and 2 (different student ids) in a throw-away copy
of the course, through the real pipeline (nbgrader, sandboxed kernel), once per worker count,
then with 2 workers in bubblewrap mode (every kernel starts cold; only when the default is the
pre-warmed ``warm`` mode and bubblewrap works here) and with the sandbox off, to show what warming
saves and isolation costs; it prints which settings this machine cannot measure. The gradebook
is filled by a release first (outside the timings), so it runs on a fresh clone. Every rate
includes the start-up of the workers (and their zygotes), as a real run does.
Prints the machine's load, since other work on the machine slows every figure. Last line: one
JSON object.

    python bench/autograde.py            # 8 submissions per exercise and setting
    python bench/autograde.py --quick    # 2 per exercise: a smoke run
    python bench/autograde.py -n 1 --exercise ex05_pipeline_brief   # the cheapest run
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


def released_course(tmp: Path, exercises: list[str]) -> Path:
    """A course copy whose gradebook knows the exercises (a fresh clone has no gradebook):
    releasing is set-up, not grading, so it stays out of every timing."""
    course = copy_course(tmp / "released", ROOT)
    instructor.release(course, exercises)
    return course.root


def grade_batch(
    tmp: Path, released: Path, exercises: list[str], n: int, workers: int, mode: str
) -> tuple[float, float, int]:
    """Wall and CPU seconds to grade n submissions of each exercise, and how many failed."""
    os.environ["SPLATCOURSE_SANDBOX"] = mode
    course = copy_course(tmp / f"course-{workers}-{mode}", released, with_gradebook=True)
    subs = tmp / f"subs-{workers}-{mode}"
    for a in exercises:
        answers = completed(course, a)
        for i in range(n):
            write_submission(subs, f"student{i:03d}", a, answers)
    start, cpu = time.perf_counter(), _cpu_seconds()
    report = instructor.autograde(
        subs, course, exercises, workers=workers, force=True, progress=False
    )
    return time.perf_counter() - start, _cpu_seconds() - cpu, len(report.failures)


def settings_here(mode: str) -> tuple[list[tuple[int, str]], list[str]]:
    """(workers, sandbox mode) pairs to measure on this machine, and why others are skipped:
    the default mode with 1 and 2 workers, then cold bubblewrap (what warming saves) and no
    sandbox (what isolation costs) with 2 workers, where they exist."""
    settings, skipped = [(1, mode), (2, mode)], []
    if mode == "warm":
        if sandbox.bwrap_works():
            settings.append((2, "bwrap"))
        else:
            skipped.append("bwrap (bubblewrap is missing or cannot create namespaces here)")
    settings.append((2, "none"))
    return settings, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 submissions per exercise")
    parser.add_argument("-n", type=int, default=None, help="submissions per exercise")
    parser.add_argument(
        "--exercise",
        action="append",
        help=f"grade this exercise's solution (repeatable; default: {', '.join(EXERCISES)})",
    )
    args = parser.parse_args(argv)
    n = args.n or (2 if args.quick else 8)
    exercises = args.exercise or EXERCISES
    mode = sandbox.prepare_shared()
    settings, skipped = settings_here(mode)
    print(
        f"cores {instructor.default_workers()}, load average {os.getloadavg()[0]:.1f}, "
        f"sandbox {mode}, {n} submissions of each of {', '.join(exercises)}"
    )
    for why in skipped:
        print(f"skipped: {why}")
    rates: dict[str, float] = {}
    cpu_per_sub: dict[str, float] = {}
    failed = 0
    count = n * len(exercises)
    with tempfile.TemporaryDirectory() as tmp:
        released = released_course(Path(tmp), exercises)
        for workers, m in settings:
            seconds, cpu, bad = grade_batch(Path(tmp), released, exercises, n, workers, m)
            failed += bad
            key = f"workers{workers}_{m}"
            rates[key] = 60 * count / seconds
            cpu_per_sub[key] = cpu / count
            print(
                f"{workers} worker(s), sandbox {m:6s}: {count} submissions in "
                f"{seconds:6.1f} s = {rates[key]:5.1f} per minute, {cpu_per_sub[key]:5.1f} CPU s "
                f"each ({bad} failed)"
            )
    os.environ.pop("SPLATCOURSE_SANDBOX", None)
    two, one = rates[f"workers2_{mode}"], rates[f"workers1_{mode}"]
    warm_vs_bwrap = two / rates["workers2_bwrap"] if "workers2_bwrap" in rates else None
    print(
        f"2 workers / 1 worker: {two / one:.2f}x;  sandbox {mode} / none: "
        f"{two / rates['workers2_none']:.2f}x of the unsandboxed rate"
        + (f";  warm / bwrap: {warm_vs_bwrap:.2f}x" if warm_vs_bwrap else "")
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
                "warm_vs_bwrap": round(warm_vs_bwrap, 2) if warm_vs_bwrap else None,
                "skipped": skipped,
                "exercises": exercises,
                "submissions_per_exercise": n,
                "load_average": os.getloadavg()[0],
            }
        )
    )
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
