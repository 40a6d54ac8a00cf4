"""Undo a submission's tampering with the grading tools before each test cell runs.

A test cell runs in the same kernel as the student's code, so a student can replace
`numpy.allclose`, `torch.allclose`, `splatcourse.checks` or the names the setup cell imported,
and make every check pass. The grader snapshots those objects before any student code runs and
puts them back before every test cell. This raises the bar; it is not a proof (code in the same
process can always reach further), which is why submissions that touch these names are also
flagged by a source scan (`tamper_notes`).

Used by: every exercise's autograding (before each test cell) and the submission check.
"""

from __future__ import annotations

import re
import sys
import types

#: (module name, attribute names or None for every public attribute) restored before each test
PROTECTED = [
    ("builtins", None),
    ("numpy", ["allclose", "isclose", "array_equal", "all", "any", "abs", "isfinite", "asarray"]),
    ("numpy.testing", None),
    (
        "torch",
        [
            "allclose",
            "isclose",
            "equal",
            "all",
            "any",
            "abs",
            "isfinite",
            "is_tensor",
            "as_tensor",
            "tensor",
        ],
    ),
    ("torch.testing", None),
    ("splatcourse.checks", None),
    ("splatcourse.toy2d", None),
]
_snapshot: list[tuple[types.ModuleType, dict]] = []
_globals: dict[str, object] = {}
_modules: dict[str, types.ModuleType] = {}


def snapshot() -> None:
    """Run by the kernel before the first cell (see kernel_arguments)."""
    import importlib

    for name, attrs in PROTECTED:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        keys = attrs if attrs is not None else [k for k in vars(module) if not k.startswith("__")]
        _snapshot.append((module, {k: vars(module)[k] for k in keys if k in vars(module)}))
        _modules[name] = module
    _modules.update(
        {
            k: v
            for k, v in sys.modules.items()
            if k.split(".")[0] in ("numpy", "torch", "splatcourse", "builtins")
        }
    )


def remember(user_ns: dict) -> None:
    """After a locked setup cell: keep the modules and functions it bound in the notebook."""
    for name, value in user_ns.items():
        if name.startswith("_"):
            continue
        module = getattr(value, "__module__", None)
        if isinstance(value, types.ModuleType) or (
            callable(value) and module and module != "__main__"
        ):
            _globals.setdefault(name, value)


def restore(user_ns: dict) -> None:
    """Put every protected object back, then reset hooks that could swallow a failing test."""
    for name, module in _modules.items():
        sys.modules[name] = module
    for module, saved in _snapshot:
        vars(module).update(saved)
    user_ns.update(_globals)
    user_ns["__builtins__"] = sys.modules["builtins"]
    sys.settrace(None)
    sys.setprofile(None)
    sys.excepthook = sys.__excepthook__
    try:
        shell = get_ipython()  # type: ignore[name-defined]
    except NameError:
        return
    shell.set_custom_exc((), None)


def kernel_arguments() -> list[str]:
    """ipykernel flags that take the snapshot before the notebook's first cell."""
    return ["--IPKernelApp.exec_lines=['import splatcourse.grading.guard as _g; _g.snapshot()']"]


RESTORE_CODE = (
    "__import__('sys').modules['splatcourse.grading.guard'].restore(get_ipython().user_ns)"
)
REMEMBER_CODE = (
    "__import__('sys').modules['splatcourse.grading.guard'].remember(get_ipython().user_ns)"
)

_TAMPER = re.compile(
    r"(\b(np|numpy|torch|checks|builtins|testing)\.\w+\s*=[^=])"
    r"|setattr\s*\(|__builtins__|sys\.modules|set_custom_exc|settrace|setprofile|excepthook"
    r"|splatcourse\.grading|grading\.guard|\bctypes\b|\bgc\.get_",
    re.MULTILINE,
)


def tamper_notes(sources: dict[str, str]) -> list[str]:
    """Cells (by id) whose code reaches for the grading machinery: flagged for a human."""
    notes = []
    for cell_id, src in sources.items():
        hits = sorted({m.group(0).strip() for m in _TAMPER.finditer(src)})
        if hits:
            notes.append(
                f"cell {cell_id} touches grading machinery ({', '.join(hits)[:120]}): "
                "flagged for review"
            )
    return notes
