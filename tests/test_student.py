"""The student's side: start an exercise on a private copy, hand it in, open the course.

The copy in `work/` is what keeps a student's answers safe from course updates, so the central
test here pulls a real course update (two real git repositories) over work in progress.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from splatcourse import cli, student
from splatcourse.grading import submissions
from splatcourse.paths import repo_root

ROOT = repo_root()
EXERCISE = "ex01_toy_splats"
NOTEBOOK = f"{EXERCISE}.ipynb"


def make_course(dest: Path) -> Path:
    """A student's checkout in miniature: lessons, released exercises, the config marker and
    the course's .gitignore."""
    for name in ("lessons", "exercises"):
        shutil.copytree(ROOT / name, dest / name)
    (dest / "autograde").mkdir()
    shutil.copy2(ROOT / "autograde" / "nbgrader_config.py", dest / "autograde")
    shutil.copy2(ROOT / ".gitignore", dest / ".gitignore")
    return dest


@pytest.fixture
def course(tmp_path) -> Path:
    return make_course(tmp_path / "course")


def answer(path: Path, text: str) -> None:
    """Type `text` into the first answer cell, as a student would."""
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution"))
    cell.source = text
    nbformat.write(nb, path)


def first_answer(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution"))


def test_start_copies_the_released_exercise_into_work(course):
    started = student.start(EXERCISE, course)
    assert started.created
    assert started.folder == course / "work" / EXERCISE
    assert (started.folder / NOTEBOOK).read_bytes() == (
        course / "exercises" / EXERCISE / NOTEBOOK
    ).read_bytes()
    assert "started ex01_toy_splats" in started.message()


def test_starting_again_keeps_the_students_work(course):
    copy = student.start(EXERCISE, course).folder / NOTEBOOK
    answer(copy, "my answer")
    again = student.start(EXERCISE, course)
    assert not again.created
    assert first_answer(copy) == "my answer"
    assert "already started" in again.message() and "kept" in again.message()


def test_start_names_an_unknown_exercise(course):
    with pytest.raises(ValueError, match=r"unknown exercise 'ex99'.*ex01_toy_splats"):
        student.start("ex99", course)


def test_submit_zips_the_layout_autograde_reads(course, tmp_path):
    copy = student.start(EXERCISE, course).folder / NOTEBOOK
    answer(copy, "my answer")
    archive = student.submit(EXERCISE, student="jdoe", root=course)
    assert archive == course / "work" / "submissions" / f"jdoe_{EXERCISE}.zip"
    with zipfile.ZipFile(archive) as zipped:
        assert zipped.namelist() == [f"jdoe/{EXERCISE}/{NOTEBOOK}"]
        inbox = tmp_path / "inbox"
        zipped.extractall(inbox)
    seen = submissions.inspect(inbox, "jdoe", EXERCISE, course / "exercises" / EXERCISE)
    assert list(seen.files) == [NOTEBOOK] and not seen.notes, seen.notes
    assert seen.files[NOTEBOOK] == copy.read_bytes()


def test_submit_before_start_says_what_to_do(course):
    with pytest.raises(FileNotFoundError, match=r"splatcourse start ex01_toy_splats"):
        student.submit(EXERCISE, student="jdoe", root=course)


def test_submit_refuses_a_student_id_autograde_would_refuse(course):
    student.start(EXERCISE, course)
    with pytest.raises(ValueError, match=r"student id '\.\./x'.*--student"):
        student.submit(EXERCISE, student="../x", root=course)


def test_cli_start_and_submit(course, monkeypatch, capsys):
    monkeypatch.setenv("SPLATCOURSE_ROOT", str(course))
    assert cli.main(["start", EXERCISE]) == 0
    assert cli.main(["start", EXERCISE]) == 0
    assert cli.main(["submit", EXERCISE, "--student", "jdoe"]) == 0
    out = capsys.readouterr().out
    assert "started ex01_toy_splats" in out and "already started" in out
    assert f"jdoe_{EXERCISE}.zip" in out
    assert cli.main(["submit", EXERCISE, "--student", "a b"]) == 2
    assert "not usable as a submission folder name" in capsys.readouterr().err


def test_only_lab_hands_unknown_options_on():
    with pytest.raises(SystemExit):
        cli.main(["start", EXERCISE, "--no-browser"])


def test_lab_opens_the_course_root_with_lesson_1_in_front(course):
    command = student.lab_command(course, port=9999, extra=["--no-browser"])
    assert f"--ServerApp.root_dir={course}" in command
    assert "--LabApp.default_url=/lab/tree/lessons/01_splats_in_2d.ipynb" in command
    assert command[-2:] == ["--ServerApp.port=9999", "--no-browser"]
    assert (ROOT / student.FIRST_LESSON).exists() and (ROOT / student.HOME_PAGE).exists()


def test_make_lab_goes_through_splatcourse_lab():
    """The browser walk-through starts JupyterLab with `splatcourse lab`: the Makefile must too,
    or the test would pass on arguments students never get."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^lab:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe, "Makefile has no lab target"
    assert recipe.group(1).strip().startswith("$(BIN)/splatcourse lab"), recipe.group(1)


def test_openmp_idle_threads_sleep_in_the_lab_and_where_splatcourse_loads_first(monkeypatch):
    """OMP_WAIT_POLICY=PASSIVE (see `splatcourse.quiet_openmp`): set for every kernel the lab
    starts, and by the package when imported before torch; a user's own choice is kept, and
    once torch has loaded, setting it would be a lie (OpenMP read it already)."""

    def policy(code: str, **env: str) -> str:
        base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        out = subprocess.run(
            [sys.executable, "-c", code + "; import os; print(os.environ.get('OMP_WAIT_POLICY'))"],
            env={**base, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    assert policy("import splatcourse") == "PASSIVE"
    assert policy("import splatcourse", OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
    assert policy("import torch, splatcourse") == "None"

    class Launched(Exception):
        pass

    def execv(path, args):
        raise Launched(os.environ.get("OMP_WAIT_POLICY"))

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.chdir(ROOT)  # `lab` changes directory to the course root
    monkeypatch.setattr(os, "execv", execv)
    with pytest.raises(Launched) as launched:
        cli.main(["lab", "--no-browser"])
    assert launched.value.args == ("PASSIVE",)


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=course", "-c", "user.email=course@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_git_pull_of_a_course_update_keeps_work_in_progress(tmp_path):
    upstream = make_course(tmp_path / "upstream")
    _git(upstream, "init", "-q", "-b", "main")
    _git(upstream, "add", "-A")
    _git(upstream, "commit", "-q", "-m", "course release")
    _git(tmp_path, "clone", "-q", str(upstream), "mine")
    mine = tmp_path / "mine"

    copy = student.start(EXERCISE, mine).folder / NOTEBOOK
    answer(copy, "half of my answer")
    student.submit(EXERCISE, student="jdoe", root=mine)
    work_before = {p: p.read_bytes() for p in (mine / "work").rglob("*") if p.is_file()}

    # the course fixes both the exercise and lesson 1 upstream
    answer(upstream / "exercises" / EXERCISE / NOTEBOOK, "# YOUR CODE HERE (clearer hint)")
    lesson = upstream / student.FIRST_LESSON
    lesson.write_text(lesson.read_text().replace("Splatting in two", "Splatting in 2"))
    _git(upstream, "commit", "-q", "-am", "fix exercise 1 and lesson 1")

    _git(mine, "pull", "-q")
    assert _git(mine, "status", "--porcelain") == "", "the pull left the checkout unclean"
    assert {p: p.read_bytes() for p in (mine / "work").rglob("*") if p.is_file()} == work_before
    assert first_answer(copy) == "half of my answer"
    assert first_answer(mine / "exercises" / EXERCISE / NOTEBOOK).endswith("(clearer hint)")
    assert "Splatting in 2" in (mine / student.FIRST_LESSON).read_text()
    # starting again after the update still keeps the work, it does not take the new release
    assert not student.start(EXERCISE, mine).created
    assert first_answer(copy) == "half of my answer"


def _home_links() -> list[str]:
    nb = nbformat.read(ROOT / student.HOME_PAGE, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return re.findall(r"\]\(([^)\s]+\.ipynb)\)", text)


def test_home_page_links_every_lesson_and_exercise_in_course_order():
    """The links resolve (a released exercise's work copy once started) and follow the
    README's course map, so neither page can rot without this failing."""
    home = ROOT / student.HOME_PAGE
    links = _home_links()
    targets = [(home.parent / link).resolve().relative_to(ROOT).as_posix() for link in links]
    course = [t for t in targets if not t.startswith("work/")]
    for target in course:
        assert (ROOT / target).is_file(), f"{student.HOME_PAGE} links {target}, which is missing"
    readme_map = re.findall(r"^\| [^|]+ \| `((?:lessons|exercises)/[^`]+)`", _readme(), re.M)
    expected = [
        m if m.endswith(".ipynb") else f"{m.rstrip('/')}/{Path(m).name}.ipynb" for m in readme_map
    ]
    assert course == expected, "the home page and the README's course map disagree"
    lessons = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "lessons").glob("*.ipynb"))
    assert set(course) == (set(lessons) - {student.HOME_PAGE}) | {
        f"exercises/{e}/{e}.ipynb" for e in student.released_exercises()
    }
    work = [t for t in targets if t.startswith("work/")]
    assert work == [f"work/{e}/{e}.ipynb" for e in student.released_exercises()]


def _readme() -> str:
    return (ROOT / "README.md").read_text()


def test_home_page_start_button_starts_the_exercise(course):
    from splatcourse.ui.home import ExerciseStarter

    starter = ExerciseStarter(course)
    row = next(r for r in starter.widget.children if EXERCISE in r.children[0].description)
    row.children[0].click()
    assert (course / "work" / EXERCISE / NOTEBOOK).exists()
    assert f"work/{EXERCISE}/{NOTEBOOK}" in starter.status[EXERCISE].value
    answer(course / "work" / EXERCISE / NOTEBOOK, "mine")
    row.children[0].click()
    assert "your work is kept" in starter.status[EXERCISE].value
    assert first_answer(course / "work" / EXERCISE / NOTEBOOK) == "mine"


def test_readme_student_steps_are_the_browser_walk_through():
    """The README's "Your first hour" list and the browser test walk the same steps, in the
    same order, so the README cannot promise a path nobody tested."""
    source = (ROOT / "tests" / "browser" / "test_browser_first_hour.py").read_text()
    steps = next(
        ast.literal_eval(node.value)
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "STEPS"
    )
    steps_list = _readme().split("Your first hour", 1)[1].split("\n\n", 2)[1]
    readme_steps = re.findall(r"^\d+\. \*\*(.+?)\*\*", steps_list, re.MULTILINE)
    assert readme_steps == steps
    for number, title in enumerate(steps, 1):
        assert f"# {number}. {title}" in source, f"the walk-through has no step {number}. {title}"
