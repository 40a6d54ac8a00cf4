"""The README's "Running a real class" recipe is what the hub test runs, and it still parses.

tests/browser/test_browser_hub.py runs the recipe's shell blocks line for line on a real
JupyterHub; that test is slow and needs a browser, so this one, without either, fails as soon as
the recipe names a command or an option that `splatcourse` or `nbgrader` does not have, or when
the prose around it mentions a command the recipe does not run.
"""

from __future__ import annotations

import re
import shlex

import pytest
from hub_driver import README_SECTION, RECIPE_STEPS, readme_recipe, readme_student_config

from splatcourse.cli import build_parser
from splatcourse.paths import repo_root

DUE = "2026-12-11 17:00:00 UTC"


def _lines() -> list[list[str]]:
    recipe = readme_recipe()
    return [
        shlex.split(line.replace('"$DUE"', shlex.quote(DUE)))
        for step in RECIPE_STEPS
        for line in recipe[step]
    ]


def _nbgrader_app(words: list[str]):
    """The nbgrader application class that `nbgrader WORDS...` starts, and the words left."""
    from nbgrader.apps.nbgraderapp import NbGraderApp

    app, rest = NbGraderApp(), list(words)
    while rest and rest[0] in app.subcommands:
        target = app.subcommands[rest.pop(0)][0]
        if isinstance(target, str):
            module, name = target.rsplit(".", 1)
            target = getattr(__import__(module, fromlist=[name]), name)
        app = target()
    return app, rest


def test_every_recipe_line_is_a_splatcourse_or_nbgrader_command_that_parses():
    lines = _lines()
    assert lines, "the recipe is empty"
    for words in lines:
        tool, args = words[0], words[1:]
        if tool == "splatcourse":
            build_parser().parse_args(args)  # exits (fails the test) on a bad command
        elif tool == "nbgrader":
            app, rest = _nbgrader_app(args)
            options = [w.split("=", 1)[0].lstrip("-") for w in rest if w.startswith("--")]
            unknown = [o for o in options if o not in app.aliases and o not in app.flags]
            assert not unknown, (
                f"`{shlex.join(words)}`: {type(app).__name__} has no option {unknown}"
            )
            positional = [w for w in rest if not w.startswith("--")]
            assert positional == ["ex01_toy_splats"], f"`{shlex.join(words)}`: {positional}"
        else:
            pytest.fail(f"recipe line {shlex.join(words)!r} is neither splatcourse nor nbgrader")


def test_the_prose_names_only_commands_the_recipe_runs():
    text = (repo_root() / "README.md").read_text()
    start = text.index(README_SECTION)
    section = text[start : text.index("**When one machine is not enough.**", start)]
    prose = re.sub(r"```.*?```", "", section, flags=re.DOTALL)
    named = set(re.findall(r"`((?:splatcourse|nbgrader) [a-z_]+)", prose))
    run = {" ".join(words[:2]) for words in _lines()}
    assert named, "the prose names no command"
    assert named <= run, f"named in the README but not in its recipe: {sorted(named - run)}"


def test_the_hub_test_runs_each_recipe_block_and_the_readme_config():
    source = (repo_root() / "tests" / "browser" / "test_browser_hub.py").read_text()
    for step in RECIPE_STEPS:
        assert f'run_recipe(course, "{step}"' in source, f"the hub test skips {step!r}"
    assert "readme_student_config()" in source
    assert 'c.Exchange.root = "/srv/nbgrader/exchange"' in readme_student_config()
