"""nbgrader plug-ins the course needs that nbgrader does not ship.

Feedback goes back to students, so it must not reveal the hidden tests. nbgrader's own
`ClearHiddenTests` removes their source but leaves the outputs, and a failing hidden assert's
traceback quotes the very line that failed. `RedactHiddenTests` removes both.

Used by: every exercise's feedback pages (named in autograde/nbgrader_config.py).
"""

from __future__ import annotations

import re

from nbconvert.preprocessors import Preprocessor
from nbformat.v4 import new_output
from traitlets import Bool

BEGIN = "### BEGIN HIDDEN TESTS"
END = "### END HIDDEN TESTS"
_HIDDEN = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.DOTALL)
NOTE = "# (hidden tests run here; their code is not shown)\n"


def has_hidden_tests(source: str) -> bool:
    return BEGIN in source


def strip_hidden_tests(source: str) -> str:
    """Replace every hidden-test block by a one-line note."""
    return _HIDDEN.sub(NOTE, source)


class RedactHiddenTests(Preprocessor):
    """Drop hidden-test code and reduce their error outputs to the assertion message."""

    # nbconvert runs a preprocessor only when it is enabled, and its default is off
    enabled = Bool(True).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not has_hidden_tests(cell.source):
            return cell, resources
        cell.source = strip_hidden_tests(cell.source)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                # keep the message the test author wrote for the student, nothing else
                output["traceback"] = [
                    f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
                ]
        return cell, resources


def _lost_points_reason(cell) -> str | None:
    """Why a test cell scored less than its points, as the student should read it (None when
    its outputs already say: an error with a message)."""
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if any(str(o.get("evalue", "")).strip() for o in errors):
        return None
    if errors:
        name = errors[0].get("ename", "Error")
        hidden = has_hidden_tests(cell.source) or NOTE.strip() in cell.source
        where = (
            "it may come from a hidden check, whose code is not shown"
            if hidden
            else ("the traceback above shows where")
        )
        return f"the cell raised {name}, with no message ({where})"
    return "the cell's result was a partial score (the number it returned)"


class ExplainLostPoints(Preprocessor):
    """Every test cell that lost points says why on the feedback page, not only "Score 0.0".

    Runs after nbgrader's `GetGrades` (which puts each cell's score in its metadata) and after
    `RedactHiddenTests`; where no error message explains the loss, it adds one line that does.
    """

    enabled = Bool(True).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        meta = cell.get("metadata", {}).get("nbgrader", {}) or {}
        score, points = meta.get("score"), meta.get("points")
        if cell.cell_type != "code" or not meta.get("grade") or score is None or not points:
            return cell, resources
        if float(score) >= float(points):
            return cell, resources
        reason = _lost_points_reason(cell)
        if reason:
            cell.outputs = list(cell.get("outputs", [])) + [
                new_output(
                    "stream",
                    name="stdout",
                    text=f"[grader] this cell scored {score:g} of {points:g}: {reason}\n",
                )
            ]
        return cell, resources
