"""The course's nbgrader configuration names preprocessors that exist, and cheaply.

nbgrader names its preprocessors by import string, so a renamed class fails only when a class is
graded; these tests catch that in a second.
"""

from __future__ import annotations

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


def test_the_sandbox_does_not_import_nbgrader():
    """Workers' kernel manager and the zygote tests import `sandbox`; nbgrader's preprocessors
    (and everything they pull in) load only where a notebook is graded."""
    code = ("import sys, splatcourse.grading.sandbox\n"
            "print(sorted(m for m in sys.modules if m.startswith('nbgrader')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
