"""Checks used by the exercises' test cells, written to tell a student *why* an answer is wrong.

A bare `assert` fails with nothing but a line number. These raise AssertionError with the
quantity that is off, what was expected, and a hint, so the student can fix it without
seeing the hidden tests.

Used by: the test cells of every exercise (1-5).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import sys
import threading
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

Tensor = torch.Tensor


class AnswerError(AssertionError):
    """An answer is wrong; the message says how."""


def fail(message: str, hint: str = "") -> None:
    raise AnswerError(message + (f"\n  hint: {hint}" if hint else ""))


def check_tensor(
    name: str, value: Any, shape: Sequence[int | None] | None = None, hint: str = ""
) -> Tensor:
    """A finite torch tensor of the expected shape (None in `shape` means any size)."""
    if not isinstance(value, torch.Tensor):
        fail(f"{name} should be a torch.Tensor, got {type(value).__name__}", hint)
    if shape is not None:
        ok = value.dim() == len(shape) and all(
            want is None or got == want for got, want in zip(value.shape, shape)
        )
        if not ok:
            want_s = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
            fail(f"{name} has shape {list(value.shape)}, expected {want_s}", hint)
    if not torch.isfinite(value.detach()).all():
        fail(f"{name} contains NaN or inf", hint or "check for divisions by zero or exp overflow")
    return value


def check_close(
    name: str,
    got: Any,
    expected: Tensor | float,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    hint: str = "",
) -> None:
    """Element-wise closeness, reporting the worst element and where it is."""
    expected_t = torch.as_tensor(expected, dtype=torch.float64)
    if isinstance(got, (int, float)):
        got = torch.tensor(float(got))
    got_t = check_tensor(name, got, tuple(expected_t.shape), hint).detach().to(torch.float64)
    err = (got_t - expected_t).abs()
    allowed = atol + rtol * expected_t.abs()
    bad = err > allowed
    if bad.any():
        worst = int(torch.argmax(err - allowed))
        index = (
            tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), err.shape))
            if err.dim()
            else ()
        )
        fail(
            f"{name} is wrong at {int(bad.sum())} of {err.numel()} entries; worst at index "
            f"{list(index)}: got {got_t.flatten()[worst].item():.6g}, expected "
            f"{expected_t.flatten()[worst].item():.6g}",
            hint,
        )


def check_number(
    name: str, got: Any, low: float = -math.inf, high: float = math.inf, hint: str = ""
) -> float:
    """A real, finite number within [low, high]."""
    try:
        value = float(got)
    except (TypeError, ValueError):
        fail(f"{name} should be a number, got {type(got).__name__}", hint)
    if not math.isfinite(value):
        fail(f"{name} is {value}", hint)
    if not low <= value <= high:
        fail(f"{name} = {value:.6g} is outside the expected range [{low:.6g}, {high:.6g}]", hint)
    return value


def _refuse(*args: Any, **kwargs: Any) -> Any:
    # only builtins here: this code object runs with the *patched* function's globals
    raise AssertionError(
        "this exercise asks for your own implementation; calling the course's "
        "reference implementation is not allowed here"
    )


def _same_code(code: types.CodeType, bytecodes: dict[bytes, list[types.CodeType]]) -> bool:
    """Whether `code` is one of the banned code objects, or a copy renamed or moved: the same
    bytecode with the same names and constants (the bytecode alone would match any function
    of the same shape)."""
    return any(
        code.co_names == b.co_names and code.co_consts == b.co_consts
        for b in bytecodes.get(code.co_code, ())
    )


@contextlib.contextmanager
def forbid(*functions: Callable[..., Any]) -> Iterator[None]:
    """Make reference implementations raise while a student's function runs.

    Swapping the code object (not the module attribute) also catches names a student imported
    with `from ... import ...`. A copy of the function made from its code object
    (`types.FunctionType(ref.__code__, ...)`, `code.replace(...)`) keeps the original code, so
    a trace function also watches every Python call in the block (and in threads it starts)
    and fails the check at the end if one ran that code, even where the student's code caught
    the error.
    """
    saved = [(f, f.__code__) for f in functions]
    bytecodes: dict[bytes, list[types.CodeType]] = {}
    for _, code in saved:
        bytecodes.setdefault(code.co_code, []).append(code)
    ran: list[str] = []

    def watch(frame: types.FrameType, event: str, arg: Any) -> None:
        if event == "call" and _same_code(frame.f_code, bytecodes):
            ran.append(frame.f_code.co_qualname)

    previous, previous_threads = sys.gettrace(), threading.gettrace()
    try:
        for f, _ in saved:
            f.__code__ = _refuse.__code__
        threading.settrace(watch)  # type: ignore[arg-type]
        sys.settrace(watch)  # type: ignore[arg-type]
        yield
    finally:
        sys.settrace(previous)
        threading.settrace(previous_threads)  # type: ignore[arg-type]
        for f, code in saved:
            f.__code__ = code
    if ran:
        fail(
            f"your code ran a copy of the course's reference {ran[0]}; this exercise asks "
            "for your own implementation"
        )


def loaded_gsplat_references() -> list[Callable[..., Any]]:
    """gsplat's pure-PyTorch reference functions, if the student's kernel has imported them.

    A hidden test passes these to `forbid` alongside the course's own reference, so an answer
    cannot hand the work to gsplat either. gsplat's module is slow to import, so it is looked
    up, never imported: code that never imported it cannot be calling it.
    """
    impl = sys.modules.get("gsplat.cuda._torch_impl")
    if impl is None:
        return []
    names = (
        "_quat_to_rotmat",
        "_quat_scale_to_matrix",
        "_quat_scale_to_covar_preci",
        "_persp_proj",
        "_world_to_cam",
        "_fully_fused_projection",
        # exercise 3's renderer: gsplat's SH, tile intersection and compositing in PyTorch
        "_eval_sh_bases_fast",
        "_spherical_harmonics",
        "_isect_tiles",
        "_isect_offset_encode",
        "_rasterize_to_pixels",
    )
    found = [getattr(impl, n) for n in names if hasattr(impl, n)]
    utils = sys.modules.get("gsplat.utils")
    if utils is not None and hasattr(utils, "normalized_quat_to_rotmat"):
        found.append(utils.normalized_quat_to_rotmat)
    return [f for f in map(_unwrapped, found) if f is not None]


def _unwrapped(value: Any) -> Callable[..., Any] | None:
    """The plain function under a decorator, if `forbid` can swap its code (no closure)."""
    f = getattr(value, "__wrapped__", value)
    return f if inspect.isfunction(f) and f.__closure__ is None else None


def functions_of(*modules: Any) -> list[Callable[..., Any]]:
    """Every function defined in these modules, private ones included, ready for `forbid`.

    A hidden test that grades a whole renderer must close every shortcut through the course's
    own, not only the few functions it names: listing them from the modules keeps up with the
    package. Decorated functions are unwrapped (`forbid` swaps the code of the function
    underneath); functions with closures are left out (their code cannot be swapped).
    """
    found: list[Callable[..., Any]] = []
    for module in modules:
        for value in vars(module).values():
            f = _unwrapped(value)
            if f is not None and f.__module__ == module.__name__ and f not in found:
                found.append(f)
    return found


def run_by_nbgrader() -> bool:
    """True while nbgrader runs the notebook (autograding, or the student's Validate button).

    A cell that only shows the student something slow, such as a ten-minute fit, skips itself
    then: the grader measures the student's functions with its own, shorter fit.
    """
    return bool(os.environ.get("NBGRADER_EXECUTION"))
