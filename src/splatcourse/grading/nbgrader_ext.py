"""nbgrader plug-ins the course needs that nbgrader does not ship.

Feedback goes back to students, so it must not reveal the hidden tests. nbgrader's own
`ClearHiddenTests` removes their source but leaves the outputs, and a failing hidden assert's
traceback quotes the very line that failed. Student code can print the source too (the calling
cell's, through `linecache` or `inspect`). `RedactHiddenTests` removes the source, reduces
hidden tests' errors to their message, and drops every line of every output, in any cell, that
quotes a line of a hidden test.

Used by: every exercise's feedback pages (named in autograde/nbgrader_config.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from nbconvert.preprocessors import Preprocessor
from nbformat.v4 import new_output
from traitlets import Bool

BEGIN = "### BEGIN HIDDEN TESTS"
END = "### END HIDDEN TESTS"
_HIDDEN = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.DOTALL)
NOTE = "# (hidden tests run here; their code is not shown)\n"
#: what a dropped output line becomes
REDACTED = "[a line of a hidden test was removed here]"
#: a hidden line shorter than this is dropped only where a whole output line equals it
#: (`try:` or `)` inside a longer printed line reveals nothing)
MIN_QUOTED = 12


def has_hidden_tests(source: str) -> bool:
    return BEGIN in source


def strip_hidden_tests(source: str) -> str:
    """Replace every hidden-test block by a one-line note."""
    return _HIDDEN.sub(NOTE, source)


def hidden_lines(sources: Iterable[str]) -> set[str]:
    """Every non-blank line (stripped) of every hidden-test block in these cell sources."""
    lines: set[str] = set()
    for source in sources:
        for block in _HIDDEN.findall(source):
            lines.update(line.strip() for line in block.splitlines() if line.strip())
    return lines


def redact_text(text: str, hidden: set[str]) -> str:
    """`text` with every line that quotes a hidden-test line replaced by a short note."""
    if not hidden:
        return text
    long = [h for h in hidden if len(h) >= MIN_QUOTED]
    out = []
    for line in text.splitlines(keepends=True):
        bare = line.strip()
        if bare and (bare in hidden or any(h in bare for h in long)):
            out.append(REDACTED + ("\n" if line.endswith("\n") else ""))
        else:
            out.append(line)
    return "".join(out)


def _redact_output(output, hidden: set[str]) -> None:
    """Redact one output in place: streams, rich text data, and error messages."""
    if "text" in output:
        output["text"] = redact_text(output["text"], hidden)
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/") or mime in ("application/json", "application/javascript"):
            joined = "".join(value) if isinstance(value, list) else value
            if isinstance(joined, str):
                output["data"][mime] = redact_text(joined, hidden)
    if output.get("output_type") == "error":
        output["evalue"] = redact_text(str(output.get("evalue", "")), hidden)
        output["traceback"] = [redact_text(t, hidden) for t in output.get("traceback", [])]


class RedactHiddenTests(Preprocessor):
    """Drop hidden-test code, reduce their error outputs to the assertion message, and remove
    every output line anywhere in the notebook that quotes a hidden test."""

    # nbconvert runs a preprocessor only when it is enabled, and its default is off
    enabled = Bool(True).tag(config=True)

    def preprocess(self, nb, resources):
        self._hidden = hidden_lines(c.source for c in nb.cells if c.cell_type == "code")
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        if has_hidden_tests(cell.source):
            cell.source = strip_hidden_tests(cell.source)
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    # keep the message the test author wrote for the student, nothing else
                    output["traceback"] = [
                        f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
                    ]
        for output in cell.get("outputs", []):
            _redact_output(output, getattr(self, "_hidden", set()))
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
