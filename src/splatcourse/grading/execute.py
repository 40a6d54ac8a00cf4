"""`SandboxedExecute`, the nbgrader preprocessor that runs a submission in the sandboxed kernel.

A module of its own so that importing `sandbox` (the kernel manager, used by the workers and the
zygote tests) does not import nbgrader's preprocessors; nbgrader imports this module by the name
given in ``autograde/nbgrader_config.py`` when it builds its autograde pipeline.

Used by: every exercise's autograding (named in autograde/nbgrader_config.py).
"""

from __future__ import annotations

import ast
import asyncio
import json

from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute

from .guard import RESTORE_EXPRESSION, remember_expression
from .sandbox import SandboxKernelManager

#: output one cell may produce before it is cut off and interrupted
MAX_OUTPUT_BYTES = 2 * 1024**2
#: heads what a test cell wrote to stderr, once it no longer reads as a failure to nbgrader
STDERR_LABEL = "[stderr of this cell: shown for information, it does not change the grade]\n"


def _nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def stderr_as_information(outputs: list) -> list:
    """A test cell's outputs with its stderr made plain, labelled output.

    nbgrader scores a test cell 0 if it wrote anything to stderr, so a progress bar (tqdm), a
    harmless warning or a log line would cost an honest student the points of checks that
    passed. A cell's verdict must be its checks: only an `error` output (the cell raised) or a
    returned number may decide it. Consecutive stderr chunks (a progress bar writes hundreds)
    become one labelled stdout block, in place, so the feedback still shows them.
    """
    kept: list = []
    merging = False  # the last kept output is a block made from stderr
    for out in outputs:
        is_stderr = out.get("output_type") == "stream" and out.get("name") == "stderr"
        if not is_stderr:
            kept.append(out)
        elif merging:
            kept[-1]["text"] += out.get("text", "")
        else:
            kept.append(
                new_output("stream", name="stdout", text=STDERR_LABEL + out.get("text", ""))
            )
        merging = is_stderr
    return kept


def _is_test_cell(cell) -> bool:
    meta = _nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution")


def fold_stderr_when_validating() -> None:
    """Make nbgrader's own Execute (what the Validate button runs) treat stderr as the grader does.

    nbgrader's Validator reports a test cell that wrote to stderr as failed, so a student whose
    fit shows a tqdm bar would press Validate on a correct answer and read "failed". The Validator
    builds its preprocessors from a fixed list (not a config option), so the course's config
    (autograde/nbgrader_config.py) calls this once to fold each test cell's stderr into
    labelled output there too, exactly as ``SandboxedExecute`` does when grading. Idempotent.
    """
    if getattr(Execute, "_splatcourse_folds_stderr", False):
        return
    run_cell = Execute.preprocess_cell

    def preprocess_cell(self, cell, resources, index):
        cell, resources = run_cell(self, cell, resources, index)
        if cell.cell_type == "code" and _is_test_cell(cell):
            cell.outputs = stderr_as_information(cell.outputs)
        return cell, resources

    Execute.preprocess_cell = preprocess_cell
    Execute._splatcourse_folds_stderr = True  # pyright: ignore[reportAttributeAccessIssue]


class SandboxedExecute(Execute):
    """nbgrader's Execute with a sandboxed kernel, tamper repair and kernel-death handling.

    If the kernel dies (os._exit, a signal, the memory limit), the cell that killed it and
    every later cell get an error output saying so, instead of the whole submission failing:
    cells that ran before keep their marks and the student learns what happened.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
        super().__init__(*args, **kwargs)
        self._dead_at: int | None = None
        self._out_bytes: dict[int, int] = {}
        self._flooded: set[int] = set()
        self._interrupts: set[asyncio.Future] = set()  # held so none is collected unrun

    def preprocess(self, nb, resources=None, km=None):
        self._dead_at = None
        return super().preprocess(nb, resources, km)

    def output(self, outs, msg, display_id, cell_index):
        """Keep at most MAX_OUTPUT_BYTES per cell; a flood is cut and its cell interrupted,
        so gigabytes of prints cost neither the grader's memory nor the gradebook."""
        size = len(json.dumps(msg.get("content", {}), default=str))
        used = self._out_bytes.get(cell_index, 0) + size
        self._out_bytes[cell_index] = used
        if used <= MAX_OUTPUT_BYTES:
            return super().output(outs, msg, display_id, cell_index)
        if cell_index not in self._flooded:
            self._flooded.add(cell_index)
            outs.append(
                new_output(
                    "stream",
                    name="stderr",
                    text=(
                        f"\n[grader: output cut after {MAX_OUTPUT_BYTES // 1024} KB; the cell was "
                        "interrupted]\n"
                    ),
                )
            )
            # Output only arrives from a running kernel, and ours is asynchronous
            # (SandboxKernelManager), so its interrupt is a coroutine to schedule.
            assert isinstance(self.km, AsyncKernelManager), self.km
            task = asyncio.ensure_future(self.km.interrupt_kernel())
            self._interrupts.add(task)
            task.add_done_callback(self._interrupts.discard)
        return None

    def _guard(self, expression: str) -> tuple[list[str] | None, str]:
        """Evaluate a guard expression in the kernel, out of reach of the student's hooks.

        It runs as a user expression of an empty cell: IPython's input and AST transformers
        and its pre-execution hooks never see it. Returns its value (a list of what the guard
        undid) or None and why it failed.
        """
        try:
            assert self.kc is not None, "no kernel client"  # it is connected while cells run
            msg_id = self.kc.execute(
                "", silent=True, store_history=False, user_expressions={"guard": expression}
            )
            reply = self.wait_for_reply(msg_id) or {}
            result = reply.get("content", {}).get("user_expressions", {}).get("guard", {})
            if result.get("status") != "ok":
                return None, f"{result.get('ename', 'no reply')}: {result.get('evalue', '')}"
            value = ast.literal_eval(result.get("data", {}).get("text/plain", "None"))
            return (list(value) if isinstance(value, (list, tuple)) else []), ""
        except Exception as err:
            self.log.warning("grading guard failed: %s", err)
            return None, f"{type(err).__name__}: {err}"

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        meta = _nbgrader_meta(cell)
        if self._dead_at is not None:
            cell.outputs = [
                new_output(
                    "error",
                    ename="KernelDied",
                    evalue="not run",
                    traceback=[
                        (f"KernelDied: not run: the kernel died in cell {self._dead_at + 1}")
                    ],
                )
            ]
            return cell, resources
        undone: list[str] | None = []
        why = ""
        if meta.get("grade") and not meta.get("solution"):
            undone, why = self._guard(RESTORE_EXPRESSION)
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except (DeadKernelError, CellTimeoutError) as err:
            # dead, or still running after an interrupt: nothing later can run reliably
            self._dead_at = index
            what = (
                "died running this cell (exit, signal or memory limit)"
                if isinstance(err, DeadKernelError)
                else "did not stop when this cell was interrupted at its time limit"
            )
            cell.outputs = list(cell.get("outputs", [])) + [
                new_output(
                    "error",
                    ename="KernelDied",
                    evalue=f"the kernel {what}",
                    traceback=[f"KernelDied: the kernel {what}; later cells were not run"],
                )
            ]
            return cell, resources
        if meta.get("grade") and not meta.get("solution"):
            cell.outputs = stderr_as_information(cell.outputs)
        if meta.get("locked") and not meta.get("grade") and not meta.get("solution"):
            self._guard(remember_expression(cell.source))
        cell.outputs = list(cell.get("outputs", [])) + guard_outputs(undone, why)
        return cell, resources


def guard_outputs(undone: list[str] | None, why: str) -> list:
    """What a test cell's feedback says about the guard: what it undid before the cell ran
    (flagged for review, the cell's checks still decide), or that it could not run at all (the
    cell scores nothing: its checks may have been forged)."""
    if undone is None:
        text = f"the grading guard could not run before this cell ({why[:200]}); flagged for review"
        return [new_output("error", ename="GradingGuard", evalue=text, traceback=[text])]
    if not undone:
        return []
    shown = ", ".join(undone[:12]) + (f" and {len(undone) - 12} more" if len(undone) > 12 else "")
    return [
        new_output(
            "stream",
            name="stdout",
            text=f"\n[grader: before this test cell the grader undid changes to {shown}; "
            "flagged for review]\n",
        )
    ]
