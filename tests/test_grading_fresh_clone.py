"""An instructor on a fresh clone: `splatcourse autograde` and `bench/autograde.py` work before
anything was released (a clone has no gradebook), and the bench measures the sandbox modes this
machine has, saying which it skipped."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from splatcourse.grading import instructor, sandbox
from splatcourse.grading.harness import completed, write_submission
from splatcourse.paths import repo_root

A = "ex05_pipeline_brief"  # the cheapest exercise to grade


def _bench_module():
    spec = importlib.util.spec_from_file_location(
        "bench_autograde", repo_root() / "bench" / "autograde.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_skips_the_modes_this_machine_lacks(monkeypatch):
    bench = _bench_module()
    monkeypatch.setattr(sandbox, "bwrap_works", lambda: False)
    settings, skipped = bench.settings_here("warm")
    assert settings == [(1, "warm"), (2, "warm"), (2, "none")]
    assert skipped and "bwrap" in skipped[0] and "missing" in skipped[0]
    monkeypatch.setattr(sandbox, "bwrap_works", lambda: True)
    assert (2, "bwrap") in bench.settings_here("warm")[0]


def _run(clone: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SPLATCOURSE_ROOT=str(clone), PYTHONPATH=str(clone / "src"))
    env.pop("SPLATCOURSE_SANDBOX", None)
    proc = subprocess.run(
        [sys.executable, *cmd], cwd=clone, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_a_fresh_clone_grades_and_benches(tmp_path):
    """The committed HEAD, cloned: no gradebook, nothing released, nothing built."""
    head = subprocess.run(
        ["git", "-C", str(repo_root()), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", "--no-checkout", str(repo_root()), str(clone)], check=True
    )
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", head], check=True)
    assert not (clone / "autograde" / "gradebook.db").exists()

    subs = tmp_path / "subs"
    write_submission(subs, "ada", A, completed(instructor.Course(clone), A))
    out = _run(
        clone, "-m", "splatcourse.cli", "autograde", str(subs), "--assignment", A, "--workers", "1"
    ).stdout
    assert f"released {A} first" in out and "graded 1 of 1" in out, out
    (row,) = instructor.grade_table(instructor.Course(clone))
    assert row["score"] == row["max_score"] == 10.0, row

    out = _run(clone, "bench/autograde.py", "-n", "1", "--exercise", A).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["failed"] == 0 and result["exercises"] == [A], out
    assert result["submissions_per_min"] > 0
