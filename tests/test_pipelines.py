"""The 3D-brief decision table: validation, the table's rules, and the rubric that grades ex05."""

import pytest

from splatcourse import pipelines as P


def test_parse_brief_accepts_synonyms():
    b = P.parse_brief({"input": "Single Image", "output": "3DGS", "use": "Virtual Reality"})
    assert b == P.Brief("one image", "splat", "vr")
    assert P.parse_brief(b) == b


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"input": "sculpture", "output": "mesh", "use": "game"}, "input"),
        ({"input": "text", "output": "voxels", "use": "game"}, "output"),
        ({"input": "text", "output": "mesh", "use": "print"}, "use"),
        ({"input": "text", "output": "mesh"}, "use"),
        ({"input": "text", "output": "mesh", "use": "game", "colour": "red"}, "colour"),
        ({"input": 3, "output": "mesh", "use": "game"}, "input"),
    ],
)
def test_invalid_briefs_name_the_field(bad, field):
    with pytest.raises(ValueError, match=field):
        P.recommend_pipeline(bad)


def test_not_a_dict():
    with pytest.raises(ValueError, match="dict"):
        P.recommend_pipeline("text to mesh")


def test_table_rules():
    game = P.recommend_pipeline({"input": "text", "output": "mesh", "use": "game"})
    assert game["pipeline"] == "direct mesh model"
    assert set(P.PBR_CHANNELS) <= set(game["materials"])
    assert any("remesh" in t for t in game["topology"])
    scene = P.recommend_pipeline({"input": "many photos", "output": "splat", "use": "vr"})
    assert scene["pipeline"] == "photo reconstruction"
    assert "3DGS" in scene["base_model"]
    sparse = P.recommend_pipeline({"input": "few images", "output": "nerf", "use": "render"})
    assert sparse["pipeline"] == "multi-view diffusion + fit"


def test_reference_passes_its_own_rubric_everywhere():
    rows = P.decision_table()
    assert len(rows) == len(P.INPUTS) * len(P.OUTPUTS) * len(P.USES) == 36
    for row in rows:
        brief = {k: row[k] for k in ("input", "output", "use")}
        assert P.grade_recommendation(brief, P.recommend_pipeline(brief)) == [], brief


def test_rubric_accepts_synonyms_and_catches_wrong_decisions():
    brief = {"input": "text", "output": "mesh", "use": "game"}
    reworded = {
        "pipeline": "Direct text-to-mesh generator",
        "base_model": "Meshy 4",
        "budget": {"minutes": 2},
        "topology": "retopologise, fill holes",
        "materials": ["base color", "Roughness", "metalness", "normal map"],
    }
    assert P.grade_recommendation(brief, reworded) == []
    no_pbr = dict(reworded, materials=["albedo"])
    assert any("PBR" in p for p in P.grade_recommendation(brief, no_pbr))
    no_cleanup = dict(reworded, topology=[])
    assert any("clean-up" in p for p in P.grade_recommendation(brief, no_cleanup))
    no_number = dict(reworded, budget="quick")
    assert any("budget" in p for p in P.grade_recommendation(brief, no_number))
    photos = {"input": "many photos", "output": "splat", "use": "render"}
    wrong = dict(P.recommend_pipeline(photos), pipeline="multi-view diffusion then fit")
    assert any("pipeline" in p for p in P.grade_recommendation(photos, wrong))
    pbr_splat = dict(P.recommend_pipeline(photos), materials=list(P.PBR_CHANNELS))
    assert P.grade_recommendation(photos, pbr_splat)
    assert P.grade_recommendation(photos, "splat") != []
    assert "missing" in P.grade_recommendation(photos, {"pipeline": "x"})[0]


def test_normalise_pipeline():
    assert P.normalise_pipeline("Photogrammetry / 3DGS reconstruction") == "photo reconstruction"
    assert (
        P.normalise_pipeline("MVDream multi-view diffusion + reconstruction")
        == "multi-view diffusion + fit"
    )
    assert P.normalise_pipeline("feed-forward image-to-mesh") == "direct mesh model"
    assert P.normalise_pipeline("magic") is None
    assert P.normalise_pipeline(None) is None


def test_systems_tables_are_complete_and_sourced():
    names = {s["name"] for s in P.SYSTEMS}
    assert names == {
        "DreamFusion",
        "Magic3D",
        "Shap-E",
        "ProlificDreamer",
        "LRM",
        "InstantMesh",
        "SV3D",
        "CAT3D",
        "TripoSR",
        "Meshy 4",
        "Rodin Gen-1.5",
        "Hunyuan3D 2.0",
    }
    assert {m["name"] for m in P.MULTIVIEW_MODELS} == {"Zero123", "MVDream", "SV3D", "CAT3D"}
    for row in P.SYSTEMS + P.MULTIVIEW_MODELS:
        assert any(y in row["source"] for y in ("2022", "2023", "2024", "2025")), row
    for row in P.SYSTEMS:
        assert row["input"] and row["output"] and row["typical time"], row
    assert len(P.REPRESENTATIONS) == 7
    md = P.decision_table_markdown()
    assert md.count("\n") == 1 + len(P.INPUTS) * len(P.OUTPUTS)


def test_inconsistent_views_change_only_training_views():
    from splatcourse.capture import load_capture

    cap = load_capture("default", verbose=False).resize(32, 24)
    assert P.inconsistent_views(cap, 0.0) is cap
    bent = P.inconsistent_views(cap, 1.0, seed=1)
    test, train = cap.test_idx, cap.train_idx
    assert (bent.images[test] == cap.images[test]).all()
    assert (bent.images[train] - cap.images[train]).abs().mean() > 0.005
    weak = P.inconsistent_views(cap, 0.2, seed=1)
    assert (weak.images[train] - cap.images[train]).abs().mean() < (
        bent.images[train] - cap.images[train]
    ).abs().mean()
    assert bent.masks.shape == cap.masks.shape and bent.masks.dtype == torch_bool()
    with pytest.raises(ValueError, match="strength"):
        P.inconsistent_views(cap, 1.5)


def torch_bool():
    import torch

    return torch.bool
