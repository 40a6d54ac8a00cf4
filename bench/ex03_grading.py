"""Where exercise 3's thresholds come from, and what grading one submission costs.

    python bench/ex03_grading.py            # every answer in-process, then one real grading
    python bench/ex03_grading.py --no-grade # skip the nbgrader run (about a minute)

Every answer in ``tests/mutants/ex03_gaussians_3d.py`` (the honest ones, written differently,
and the wrong ones) runs the solution notebook with its hidden tests, in this process, with the
checks *recording* instead of failing: for the end-to-end cells that means the largest
difference to the course rasterizer (image and alpha, float64 random scenes), the largest
relative gradient difference and the PSNR of the real axe scene. The bars in the notebook sit
between the honest answers' worst and the wrong answers' best. Then one completed submission is
graded through nbgrader, as an instructor would (``harness.grade_one_seconds``). The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import time
from collections import defaultdict
from typing import Any

import matplotlib
import nbformat
import torch

from splatcourse import checks
from splatcourse.grading.harness import Mutant, grade_one_seconds, mutants_for
from splatcourse.paths import repo_root

ASSIGNMENT = "ex03_gaussians_3d"
_SOLUTION_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)
#: the cells whose bars come from measured spreads, and what each records
MEASURED = {
    "test_render_hidden": "largest |difference| of image and alpha",
    "test_gradients_hidden": "largest relative gradient difference",
    "test_real_scene": "PSNR against the course rasterizer (dB)",
}


class _Recorder:
    """Stands in for the checks while one cell runs: remembers the errors, never raises."""

    def __init__(self) -> None:
        self.cell = ""
        self.worst: dict[str, float] = defaultdict(float)
        self.psnr: dict[str, float] = {}

    def check_close(self, name, got, expected, atol=1e-5, rtol=1e-4, hint=""):
        got_t = torch.as_tensor(got, dtype=torch.float64)
        want = torch.as_tensor(expected, dtype=torch.float64)
        if got_t.shape != want.shape or not torch.isfinite(got_t).all():
            err = math.inf
        else:
            err = float((got_t - want).abs().max()) if want.numel() else 0.0
        if "depth" not in name:  # depths are compared relatively (a separate, looser check)
            self.worst[self.cell] = max(self.worst[self.cell], err)

    def check_number(self, name, value, lo=-math.inf, hi=math.inf, hint=""):
        self.psnr[self.cell] = float(value)
        return float(value)

    @contextlib.contextmanager
    def patched(self):
        saved = checks.check_close, checks.check_number
        checks.check_close, checks.check_number = self.check_close, self.check_number
        try:
            yield
        finally:
            checks.check_close, checks.check_number = saved


def run_answer(mutant: Mutant | None) -> dict[str, Any]:
    """Run the solution (with ``mutant`` applied) and its hidden tests, recording."""
    nb = nbformat.read(repo_root() / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", 4)
    rec = _Recorder()
    raised: dict[str, str] = {}
    ns: dict[str, Any] = {}
    c0 = time.process_time()
    with rec.patched():
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type != "code":
                continue
            src = cell.source
            if meta.get("solution"):
                src = _SOLUTION_MARKER.sub("", src)  # the answer as a student writes it
                if mutant is not None and mutant.cell == meta["grade_id"]:
                    src = src.replace(mutant.old, mutant.new)
            rec.cell = meta["grade_id"]
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(src, rec.cell, "exec"), ns)
            except Exception as err:  # a wrong answer may crash a test: that is a result too
                raised[rec.cell] = type(err).__name__
    out: dict[str, Any] = {"cpu_s": round(time.process_time() - c0, 1)}
    for cell in MEASURED:
        if cell in raised:
            out[cell] = f"raised {raised[cell]}"
        elif cell == "test_real_scene":
            out[cell] = round(rec.psnr.get(cell, math.nan), 1)
        else:
            out[cell] = float(f"{rec.worst.get(cell, 0.0):.2g}")
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-grade", action="store_true", help="skip grading through nbgrader")
    args = ap.parse_args(argv)
    matplotlib.use("Agg")
    os.environ["NBGRADER_EXECUTION"] = "autograde"  # the notebook skips its demos, as graded
    torch.set_num_threads(1)
    rows = {"solution": run_answer(None)}
    for m in mutants_for(ASSIGNMENT):
        rows[m.name] = run_answer(m)
    fails = {m.name: m.fails for m in mutants_for(ASSIGNMENT)}
    for name, row in rows.items():
        print(f"{name:26s} " + "  ".join(f"{k.removeprefix('test_')}={v}" for k, v in row.items()))
    honest = [n for n in rows if n == "solution" or not fails[n]]
    result: dict[str, Any] = {"answers": len(rows), "honest": honest}
    for cell in MEASURED:
        good = [rows[n][cell] for n in honest]
        bad = [rows[n][cell] for n in rows if n not in honest and cell in fails[n]]
        bad_numbers = [v for v in bad if isinstance(v, float)]
        if cell == "test_real_scene":
            result[cell] = {
                "honest_min_db": min(good),
                "wrong_max_db": max(bad_numbers),
                "wrong_that_crash": len(bad) - len(bad_numbers),
            }
        else:
            result[cell] = {
                "honest_max": max(good),
                "wrong_min": min(bad_numbers),
                "wrong_that_crash": len(bad) - len(bad_numbers),
            }
    result["solution_notebook_cpu_s"] = rows["solution"]["cpu_s"]
    if not args.no_grade:
        result["grade_one_wall_s"] = round(grade_one_seconds(ASSIGNMENT), 1)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
