"""Exercise 3's trained axe model: built reproducibly by the course's trainer, cached, small."""

from __future__ import annotations

import pytest
import torch

from splatcourse.capture import COURSE_CAPTURE
from splatcourse.paths import shared_data_dir
from splatcourse.train import renderer_model

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (shared_data_dir() / COURSE_CAPTURE).is_dir(), reason="the axe capture is absent"
    ),
]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "models" / "axe.pt"
    monkeypatch.setattr(renderer_model, "renderer_model_path", lambda: path)
    return path


def test_missing_model_names_the_command_that_builds_it(cache):
    with pytest.raises(FileNotFoundError, match="splatcourse renderer-model"):
        renderer_model.load_renderer_model()


def test_built_once_reproducibly_small_with_its_held_out_cameras(cache):
    renderer_model.build_renderer_model()
    first = renderer_model.load_renderer_model()
    stamp = cache.stat().st_mtime_ns
    renderer_model.build_renderer_model()  # cached: nothing is trained again
    assert cache.stat().st_mtime_ns == stamp
    assert cache.stat().st_size < 2 * 1024**2  # small enough to move around, never committed
    V = first["viewmats"].shape[0]
    assert V >= 2 and first["Ks"].shape == (V, 3, 3)
    assert (first["width"], first["height"]) == (renderer_model.RENDERER_MODEL_WIDTH, 85)
    assert 1000 < first["params"]["means"].shape[0] < 8000
    assert first["summary"]["psnr_heldout"] > 25  # a recognisable axe on held-out views
    renderer_model.build_renderer_model(force=True)
    again = renderer_model.load_renderer_model()
    for name, value in first["params"].items():
        assert torch.equal(value, again["params"][name]), f"{name} differs between two builds"
