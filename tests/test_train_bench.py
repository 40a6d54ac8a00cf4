"""bench/capture_fit.py --quick runs and ends with the promised JSON line."""

from __future__ import annotations

import json
import subprocess
import sys


def test_capture_fit_quick(root, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(root / "bench" / "capture_fit.py"),
            "--quick",
            "--threads",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert {
        "ssim_object",
        "psnr_object",
        "alpha_iou",
        "ssim_empty_render",
        "ssim_full_frame",
        "psnr_full_frame",
        "fit_seconds",
        "gaussians",
    } <= set(result)
    assert result["region"] == "object" and result["gaussians"] > 0
    assert 0.0 < result["ssim_empty_render"] < result["ssim_object"] <= 1.0
    assert 0.0 < result["ssim_full_frame"] <= 1.0 and 0.0 < result["alpha_iou"] <= 1.0
    assert result["steps"] == 40 and len(result["ssim_object_curve"]) == 2
    assert (tmp_path / "ssim_vs_time.png").is_file() and (tmp_path / "splats.ply").is_file()
    assert len(list(tmp_path.glob("*_photo_vs_render.png"))) == result.get("n_views", 7)
