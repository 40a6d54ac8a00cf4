"""load_capture's search order and fallback."""

import pytest

from splatcourse.capture import find_capture, load_capture, synthetic_capture, write_transforms_json


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


def test_missing_capture_falls_back_or_raises_with_a_hint(dirs, capsys):
    cap = load_capture("socketed_axe_arreton", verbose=False)
    assert cap.name == "synthetic"
    out = capsys.readouterr().out
    assert "python -m splatcourse.capture.download socketed_axe_arreton" in out
    with pytest.raises(FileNotFoundError, match="capture.download socketed_axe_arreton"):
        load_capture("socketed_axe_arreton", fallback=False, verbose=False)
    with pytest.raises(FileNotFoundError, match="no_such"):
        load_capture("no_such", fallback=False, verbose=False)


def test_summary_shows_attribution_and_notes(capsys):
    load_capture("default", width=32)
    out = capsys.readouterr().out
    assert "attribution:" in out and "50 views at 32x24" in out and "43 train / 7 test" in out
