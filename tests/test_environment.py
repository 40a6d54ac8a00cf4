"""Dependencies are declared once (pyproject.toml); environment.yml must install the same set."""

import tomllib
from pathlib import Path

from splatcourse.paths import repo_root


def _pyproject() -> dict:
    return tomllib.loads((repo_root() / "pyproject.toml").read_text())


def _environment_pip() -> list[str]:
    lines = (repo_root() / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    out = []
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not stripped.startswith("- "):
            break
        out.append(stripped[2:].strip())
    return out


def test_environment_yml_installs_exactly_the_pyproject_dependencies():
    project = _pyproject()["project"]
    declared = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared |= set(extra)
    pip = _environment_pip()
    assert "-e ." in pip, "environment.yml must install the course package itself"
    listed = set(pip) - {"-e ."}
    assert listed == declared, (
        f"only in pyproject: {sorted(declared - listed)}; "
        f"only in environment.yml: {sorted(listed - declared)}"
    )


def test_torch_is_pinned_everywhere():
    """An unpinned torch pulls a multi-GB CUDA build on CPU machines."""
    deps = _pyproject()["project"]["dependencies"]
    assert "torch==2.13.0" in deps
    assert '"torch==2.13.0"' in (repo_root() / "Makefile").read_text()


def test_ci_runs_the_readme_test_command():
    readme = (repo_root() / "README.md").read_text()
    ci = (repo_root() / ".ci" / "run").read_text()
    assert "make test" in readme and "make lab" in readme
    assert "make test" in ci and "rm -rf .venv" in ci


def test_course_layout(root: Path):
    for name in (
        "lessons",
        "exercises",
        "solutions",
        "autograde",
        "data",
        "environment.yml",
        "README.md",
    ):
        assert (root / name).exists(), f"missing top-level {name}"
