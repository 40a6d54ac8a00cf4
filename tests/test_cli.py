import subprocess
import sys

from splatcourse import cli
from splatcourse.grading import instructor


def test_grades_without_gradebook_is_a_clear_error(tmp_path, capsys, monkeypatch):
    course = instructor.Course(tmp_path)
    (tmp_path / "autograde").mkdir()
    monkeypatch.setattr(instructor, "default_course", lambda: course)
    assert cli.main(["grades"]) == 2
    assert "no gradebook" in capsys.readouterr().err


def test_unknown_assignment_is_named(capsys):
    assert cli.main(["release", "ex99_nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown assignment 'ex99_nope'" in err and "ex01_toy_splats" in err


def test_autograde_missing_folder(tmp_path, capsys):
    assert cli.main(["autograde", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_autograde_malformed_shard_is_named(tmp_path, capsys):
    for shard in ("1/2/3", "x/4", "3"):
        assert cli.main(["autograde", str(tmp_path), "--shard", shard]) == 2
        assert (
            f"--shard: expected I/N (two whole numbers), got '{shard}'" in capsys.readouterr().err
        )


def test_console_script_help_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "splatcourse.cli", "--help"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout
    for cmd in (
        "download",
        "release",
        "autograde",
        "feedback",
        "grades",
        "renderer-model",
        "merge-gradebooks",
    ):
        assert cmd in out


def test_merge_gradebooks_names_a_missing_shard(tmp_path, capsys):
    assert cli.main(["merge-gradebooks", str(tmp_path / "out.db"), str(tmp_path / "nope.db")]) == 2
    assert f"shard gradebook {tmp_path / 'nope.db'} does not exist" in capsys.readouterr().err
