"""The course's nbgrader configuration reaches `SandboxedExecute` whole, and cheaply.

nbgrader names its preprocessors by import string, so a renamed class fails only when a class is
graded; these tests catch that, and a config option nbgrader would ignore (with a warning in
every worker's log), in a second.
"""

from __future__ import annotations

import logging
import subprocess
import sys

from traitlets.config.loader import PyFileConfigLoader
from traitlets.utils.importstring import import_item

from splatcourse.paths import repo_root


def _course_config():
    return PyFileConfigLoader("nbgrader_config.py", str(repo_root() / "autograde")).load_config()


def test_every_preprocessor_the_config_names_imports():
    config = _course_config()
    names = [*config.Autograde.autograde_preprocessors, *config.GenerateFeedback.preprocessors]
    assert "splatcourse.grading.execute.SandboxedExecute" in names
    for name in names:
        assert isinstance(import_item(name), type), name


def test_sandboxed_execute_takes_every_option_the_config_sets(caplog):
    from splatcourse.grading.execute import SandboxedExecute
    from splatcourse.grading.sandbox import SandboxKernelManager

    config = _course_config()
    with caplog.at_level(logging.WARNING):
        execute = SandboxedExecute(config=config)
    ignored = [r.getMessage() for r in caplog.records if "not recognized" in r.getMessage()]
    assert not ignored, ignored
    assert execute.timeout == config.Execute.timeout
    assert execute.allow_errors, "a failing cell must not stop grading"
    assert execute.kernel_manager_class is SandboxKernelManager


def test_the_sandbox_does_not_import_nbgrader():
    """Workers' kernel manager and the zygote tests import `sandbox`; nbgrader's preprocessors
    (and everything they pull in) load only where a notebook is graded."""
    code = (
        "import sys, splatcourse.grading.sandbox\n"
        "print(sorted(m for m in sys.modules if m.startswith('nbgrader')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
