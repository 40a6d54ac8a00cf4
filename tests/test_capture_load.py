"""load_capture's search order, and no silent substitute for a missing named capture."""

import pytest

from splatcourse.capture import find_capture, load_capture, synthetic_capture, write_transforms_json
from splatcourse.capture.load import SyntheticSubstituteWarning


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    captures, shared = tmp_path / "captures", tmp_path / "shared"
    monkeypatch.setenv("SPLATCOURSE_CAPTURES_DIR", str(captures))
    monkeypatch.setenv("SPLATCOURSE_SHARED_DATA", str(shared))
    return captures, shared


def test_course_data_dir_comes_before_shared_data(dirs):
    captures, shared = dirs
    cap = synthetic_capture(width=32).subset([0, 1, 2])
    write_transforms_json(cap, shared / "toy")
    assert find_capture("toy") == shared / "toy"
    assert len(load_capture("toy", verbose=False)) == 3
    write_transforms_json(cap.subset([0, 1]), captures / "toy")
    assert find_capture("toy") == captures / "toy"
    loaded = load_capture("toy", verbose=False)
    assert len(loaded) == 2 and loaded.name == "toy"


def test_a_missing_named_capture_raises_and_says_how_to_get_it(dirs, monkeypatch, capsys):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    with pytest.raises(FileNotFoundError) as err:
        load_capture("socketed_axe_arreton", verbose=False)  # no silent substitute by default
    msg = str(err.value)
    captures, shared = dirs
    assert "splatcourse download socketed_axe_arreton" in msg
    assert str(shared) in msg and "SPLATCOURSE_SHARED_DATA" in msg
    assert str(captures / "socketed_axe_arreton") in msg
    assert 'load_capture("default")' in msg
    with pytest.raises(FileNotFoundError, match=r"no_such.*not in data/manifest\.json"):
        load_capture("no_such", verbose=False)
    assert capsys.readouterr().out == ""


def test_an_explicit_fallback_substitutes_the_synthetic_capture_loudly(dirs, monkeypatch, capsys):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    with pytest.warns(SyntheticSubstituteWarning, match="socketed_axe_arreton"):
        cap = load_capture("socketed_axe_arreton", width=32, fallback=True, verbose=False)
    assert cap.name == "synthetic"
    out = capsys.readouterr().out
    assert "SUBSTITUTE" in out and "SYNTHETIC" in out and "!" * 70 in out
    assert "splatcourse download socketed_axe_arreton" in out


def test_fallback_is_refused_while_nbgrader_grades(dirs, monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    with pytest.raises(FileNotFoundError, match="For the instructor: this notebook is being gr"):
        load_capture("socketed_axe_arreton", fallback=True, verbose=False)
    assert load_capture("default", width=32, verbose=False).name == "synthetic"  # by name: fine


def test_summary_shows_attribution_and_notes(capsys):
    load_capture("default", width=32)
    out = capsys.readouterr().out
    assert "attribution:" in out and "50 views at 32x24" in out and "43 train / 7 test" in out
