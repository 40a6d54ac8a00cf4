"""The .ply export: standard 3DGS layout, exact round trip, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from splatcourse.train import load_ply, save_ply
from splatcourse.train.export import ply_property_names


def _params(n=7, k=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "means": torch.randn(n, 3, generator=g),
        "scales": torch.randn(n, 3, generator=g),
        "quats": torch.randn(n, 4, generator=g),
        "opacities": torch.randn(n, generator=g),
        "sh0": torch.randn(n, 1, 3, generator=g),
        "shN": torch.randn(n, k - 1, 3, generator=g),
    }


def test_layout_is_the_standard_one(tmp_path):
    p = _params()
    path = save_ply(p, tmp_path / "s.ply")
    v = PlyData.read(str(path))["vertex"]
    names = [prop.name for prop in v.properties]
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[9:54] == [f"f_rest_{i}" for i in range(45)]
    assert names[54:] == [
        "opacity",
        "scale_0",
        "scale_1",
        "scale_2",
        "rot_0",
        "rot_1",
        "rot_2",
        "rot_3",
    ]
    assert names == ply_property_names(15)
    assert len(v.data) == 7
    # f_rest is channel-major: f_rest_0..14 are red, 15..29 green
    assert v.data["f_rest_1"][2] == pytest.approx(float(p["shN"][2, 1, 0]))
    assert v.data["f_rest_16"][2] == pytest.approx(float(p["shN"][2, 1, 1]))


@pytest.mark.parametrize("k", [1, 4, 16])
def test_round_trip(tmp_path, k):
    p = _params(k=k)
    q = load_ply(save_ply(p, tmp_path / "s.ply"))
    for key in p:
        assert q[key].shape == p[key].shape
        torch.testing.assert_close(q[key], p[key])


def test_bad_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.ply"):
        load_ply(tmp_path / "nope.ply")
    junk = tmp_path / "junk.ply"
    junk.write_text("hello")
    with pytest.raises(ValueError, match=r"junk\.ply"):
        load_ply(junk)
    pts = tmp_path / "points.ply"
    arr = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(pts))
    with pytest.raises(ValueError, match="not a 3DGS splat file"):
        load_ply(pts)
    with pytest.raises(ValueError, match="shN"):
        save_ply({k: v for k, v in _params().items() if k != "shN"}, tmp_path / "x.ply")
