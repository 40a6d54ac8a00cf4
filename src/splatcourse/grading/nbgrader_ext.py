"""nbgrader plug-ins the course needs that nbgrader does not ship.

Feedback goes back to students, so it must not reveal the hidden tests. nbgrader's own
`ClearHiddenTests` removes their source but leaves the outputs, and a failing hidden assert's
traceback quotes the very line that failed. `RedactHiddenTests` removes both.

Used by: every exercise's feedback pages (named in autograde/nbgrader_config.py).
"""

from __future__ import annotations

import re

from nbconvert.preprocessors import Preprocessor
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
