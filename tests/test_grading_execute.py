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


def test_stderr_of_a_test_cell_is_shown_but_never_a_verdict():
    """nbgrader scores a test cell 0 if it wrote to stderr; after `stderr_as_information` only
    an error (the cell raised) or a returned number decides it, and the text is still shown."""
    from nbformat.v4 import new_code_cell, new_output
    from nbgrader.utils import determine_grade

    from splatcourse.grading.execute import STDERR_LABEL, stderr_as_information

    meta = {"nbgrader": {"grade": True, "solution": False, "grade_id": "t", "points": 2}}
    bar = [new_output("stream", name="stderr", text=f"fit: {p}%\r") for p in (0, 50, 100)]
    honest = new_code_cell("fit()", metadata=meta)
    honest.outputs = [new_output("stream", name="stdout", text="ok\n"), *bar]
    assert determine_grade(honest) == (0, 2), "nbgrader's own rule, which this fixes"
    honest.outputs = stderr_as_information(honest.outputs)
    assert determine_grade(honest) == (2, 2)
    assert [o.name for o in honest.outputs] == ["stdout", "stdout"]
    assert honest.outputs[1].text == STDERR_LABEL + "fit: 0%\rfit: 50%\rfit: 100%\r"
    failing = new_code_cell("assert False", metadata=meta)
    failing.outputs = stderr_as_information(
        [*bar, new_output("error", ename="AssertionError", evalue="too far", traceback=[])]
    )
    assert determine_grade(failing) == (0, 2)


def test_feedback_says_why_a_cell_lost_points():
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from splatcourse.grading.nbgrader_ext import ExplainLostPoints

    def cell(source, score, outputs):
        meta = {"grade": True, "solution": False, "grade_id": "t", "points": 2, "score": score}
        c = new_code_cell(source, metadata={"nbgrader": meta})
        c.outputs = outputs
        return c

    bare = new_output("error", ename="AssertionError", evalue="", traceback=["AssertionError: "])
    said = new_output("error", ename="AssertionError", evalue="MSE 0.5 > 0.1", traceback=[])
    nb = new_notebook(
        cells=[
            cell("# (hidden tests run here; their code is not shown)\n", 0.0, [bare]),
            cell("assert mse < 0.1, f'MSE {mse} > 0.1'", 0.0, [said]),
            cell("0.5", 1.0, [new_output("execute_result", data={"text/plain": "1.0"})]),
            cell("check()", 2.0, []),
        ]
    )
    nb, _ = ExplainLostPoints().preprocess(nb, {})
    notes = [[o.text for o in c.outputs if o.output_type == "stream"] for c in nb.cells]
    assert notes[0] == [
        "[grader] this cell scored 0 of 2: the cell raised AssertionError, with no message (it "
        "may come from a hidden check, whose code is not shown)\n"
    ]
    assert notes[1] == [], "its own message already says why"
    assert "partial score" in notes[2][0]
    assert notes[3] == [], "full marks need no explanation"
