"""How fast the lesson widgets answer their sliders in a real browser, at lesson sizes.

The measuring is done by the browser test `tests/browser/test_browser_latency.py` (JupyterLab in
headless Chromium, the mouse on the slider, the page's own clock): from a small slider move to
the widget's new picture (`step_ms_*`), and from letting go after a drag to the last picture
(`after_release_ms`), for a `floor` slider that only swaps a fixed picture (the round trip alone)
and for the 2D explorer (target ≤ 50 ms), the 3D Gaussian explorer and the scene orbiter
(≤ 150 ms). This script runs that test and prints its JSON line, so `make bench` reports it too.
Needs Chromium and Playwright, as the browser tests do; without them it says why and exits 1.

    python bench/widget_latency.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/browser/test_browser_latency.py"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="splatcourse-latency-") as artifacts:
        env = {
            **os.environ,
            "SPLATCOURSE_ARTIFACTS": artifacts,
            "SPLATCOURSE_REQUIRE_BROWSER": "1",  # a skipped measurement is no measurement
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        }
        command = [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider"]
        proc = subprocess.run(
            [*command, "-q", "-m", "browser", TEST], cwd=ROOT, env=env, check=False
        )
        figures = Path(artifacts) / "widget_latency.json"
        if proc.returncode != 0 or not figures.exists():
            print(f"{TEST} failed (exit {proc.returncode}): no figures", file=sys.stderr)
            return 1
        line = figures.read_text().strip()
    for name, row in json.loads(line)["widgets"].items():
        target = f"target {row['target_ms']:.0f} ms" if row["target_ms"] else "no target"
        print(
            f"{name:>22}: step median {row['step_ms_median']:.0f} ms "
            f"(max {row['step_ms_max']:.0f}), after release {row['after_release_ms']:.0f} ms; "
            f"{target}"
        )
    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
