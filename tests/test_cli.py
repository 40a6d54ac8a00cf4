import re
import select
import signal
import subprocess
import sys
import time
import urllib.request

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
        "view",
    ):
        assert cmd in out


def test_merge_gradebooks_names_a_missing_shard(tmp_path, capsys):
    assert cli.main(["merge-gradebooks", str(tmp_path / "out.db"), str(tmp_path / "nope.db")]) == 2
    assert f"shard gradebook {tmp_path / 'nope.db'} does not exist" in capsys.readouterr().err


def first_line(proc: subprocess.Popen, timeout: float) -> str:
    """The first line `proc` prints, or a failure naming what it printed after `timeout`."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        raise AssertionError(f"printed nothing in {timeout} s:\n{proc.communicate()}")
    return proc.stdout.readline()


def test_view_serves_a_course_ply_over_loopback_until_ctrl_c(tmp_path):
    from splatcourse.splat3d import scenes
    from splatcourse.train.export import save_ply
    from splatcourse.ui.splat_view import course_params

    scene = scenes.sh_cloud(n=40)
    path = save_ply({**course_params(scene), "shN": scene.sh[:, 1:]}, tmp_path / "s.ply")
    proc = subprocess.Popen(
        [sys.executable, "-m", "splatcourse.cli", "view", str(path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = first_line(proc, timeout=60)
        url = re.search(r"http://localhost:\d+/", line)
        assert url, f"no URL in {line!r}"
        with urllib.request.urlopen(
            url.group(0).replace("localhost", "127.0.0.1"), timeout=10
        ) as r:
            page = r.read().decode()
        assert r.status == 200 and "<html" in page.lower()
    finally:
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert time.monotonic() - start < 15


def test_view_names_a_missing_file(tmp_path, capsys):
    assert cli.main(["view", str(tmp_path / "nope.ply")]) == 2
    assert f"no file at {tmp_path / 'nope.ply'}" in capsys.readouterr().err
