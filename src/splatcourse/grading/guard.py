"""Undo a submission's tampering with the grading tools before each test cell runs.

A test cell runs in the same kernel as the student's code, so a student can replace
`numpy.allclose`, `torch.allclose`, `splatcourse.checks` or the names the setup cell imported,
swap the code object inside a check function, rebind the setup cell's values (`target`,
`INPUTS`), or register IPython transformers and event hooks that rewrite every later cell. The
grader snapshots all of these before any student code runs (and after each read-only cell) and
puts them back before every test cell, reporting what it had to undo. This raises the bar; it is
not a proof (code in the same process can always reach further), which is why submissions that
reach for these names are also flagged by a source scan (`tamper_notes`).

The grader calls `restore` through an execute request's `user_expressions` with empty code, so
no input transformer, AST transformer or pre-execution hook sees it (see grading/execute.py).

Used by: every exercise's autograding (before each test cell) and the submission check.
"""

from __future__ import annotations

import ast
import copy
import re
import sys
import types
from typing import Any

#: (module name, attribute names or None for every attribute) restored before each test
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
]
#: every module of these packages is protected whole, including ones the setup cell imports
PROTECTED_PACKAGES = ("splatcourse",)
#: event callbacks from these packages are the kernel's own (matplotlib's inline figures)
TRUSTED_HOOK_MODULES = ("IPython.", "ipykernel.", "matplotlib_inline.", "matplotlib.")

_snapshot: dict[str, tuple[types.ModuleType, dict[str, object]]] = {}
_codes: dict[int, tuple[types.FunctionType, tuple]] = {}
_classes: dict[type, dict[str, object]] = {}
_globals: dict[str, object] = {}
_values: dict[str, tuple[object, bool]] = {}  # name -> (private copy, copyable)
_handed_out: dict[str, object] = {}  # name -> the object restore last put in the namespace
_modules: dict[str, types.ModuleType] = {}
_hooks: dict[str, Any] = {}
_shell: Any = None


# ----------------------------------------------------------------------------------------------
# snapshots


def _function_state(fn: types.FunctionType) -> tuple:
    return (fn.__code__, fn.__defaults__, fn.__kwdefaults__)


def _keep_functions(namespace: dict[str, object], owner: str) -> None:
    """Remember the code of every function (and method of a class) `owner` defines."""
    for value in list(namespace.values()):
        if isinstance(value, types.FunctionType):
            _codes.setdefault(id(value), (value, _function_state(value)))
        elif isinstance(value, type) and value.__module__ == owner and value not in _classes:
            _keep_class(value)
            _keep_functions(dict(vars(value)), owner)


def _keep_class(cls: type) -> None:
    _classes[cls] = dict(vars(cls))


def _keep_module(name: str, module: types.ModuleType, attrs: list[str] | None) -> None:
    if name in _snapshot or name == __name__:  # the guard's own state changes as it works
        return
    namespace = vars(module)
    keys = attrs if attrs is not None else list(namespace)
    saved = {k: namespace[k] for k in keys if k in namespace}
    _snapshot[name] = (module, saved)
    _keep_functions(saved, name)


def _keep_packages() -> None:
    """Protect every loaded module of PROTECTED_PACKAGES not protected yet (cheap when none)."""
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in PROTECTED_PACKAGES and isinstance(module, types.ModuleType):
            _keep_module(name, module, None)
            _modules.setdefault(name, module)


def _keep_shell(shell: Any) -> None:
    """The IPython machinery a cell passes through: transformers, event hooks, the classes."""
    manager = shell.input_transformer_manager
    _hooks.update(
        manager=manager,
        cleanup=list(manager.cleanup_transforms),
        line=list(manager.line_transforms),
        token=list(manager.token_transformers),
        post=list(shell.input_transformers_post),
        ast=list(shell.ast_transformers),
        events=shell.events,
        callbacks={k: list(v) for k, v in shell.events.callbacks.items()},
        instance_keys=set(vars(shell)),
    )
    for cls in (*type(shell).__mro__, *type(getattr(shell, "kernel", None)).__mro__):
        if cls.__module__.startswith(("IPython.", "ipykernel.")):
            _keep_class(cls)


def snapshot() -> None:
    """Run by the kernel before the first cell (see kernel_arguments)."""
    import importlib

    global _shell
    for name, attrs in PROTECTED:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        _keep_module(name, module, attrs)
        _modules[name] = module
    import torch

    _keep_class(torch.Tensor)
    _modules.update(
        {
            k: v
            for k, v in sys.modules.items()
            if k.split(".")[0] in ("numpy", "torch", "splatcourse", "builtins")
        }
    )
    _keep_packages()
    from IPython.core.getipython import get_ipython

    _shell = get_ipython()
    if _shell is not None:
        _keep_shell(_shell)


def bound_names(source: str) -> list[str] | None:
    """Names a cell binds at its top level (None if it is not plain Python, e.g. a magic)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    names: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
            return  # what a body binds is local to it
        if isinstance(
            node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
        ):
            return  # their variables are their own
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.append(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.extend([(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return list(dict.fromkeys(names))


def remember(names: list[str] | None = None) -> None:
    """After a locked, ungraded cell (the setup): keep what it bound as the test cells' truth.

    Modules and library functions are kept by identity; the plain values among `names` (the
    names the cell itself binds, see `bound_names`) as a private deep copy, so that neither
    rebinding (`target = torch.zeros_like(target)`) nor changing them in place survives.
    """
    user_ns = _shell.user_ns
    for name, value in user_ns.items():
        if name.startswith("_"):
            continue
        module = getattr(value, "__module__", None)
        if isinstance(value, types.ModuleType) or (
            callable(value) and module and module != "__main__"
        ):
            _globals.setdefault(name, value)
    for name in names or ():
        if name.startswith("_") or name in _values or name in _globals or name not in user_ns:
            continue
        value = user_ns[name]
        try:
            _values[name] = (copy.deepcopy(value), True)
        except Exception:  # not copyable (a lock, a generator): kept by identity
            _values[name] = (value, False)
        _handed_out[name] = value
    _keep_packages()


# ----------------------------------------------------------------------------------------------
# restoring


def _restore_modules(undone: list[str]) -> None:
    for name, module in _modules.items():
        if sys.modules.get(name) is not module:
            sys.modules[name] = module
            undone.append(f"sys.modules[{name!r}]")
    for name, (module, saved) in _snapshot.items():
        namespace = vars(module)
        for key, value in saved.items():
            now = namespace.get(key, saved)
            if now is not value:
                namespace[key] = value
                if now is not saved:  # a name gone (IPython's own get_ipython) forges nothing
                    undone.append(f"{name}.{key}")


def _restore_code(undone: list[str]) -> None:
    for fn, state in _codes.values():
        if _function_state(fn) != state:
            fn.__code__, fn.__defaults__, fn.__kwdefaults__ = state
            undone.append(f"the code of {fn.__module__}.{fn.__qualname__}")


def _restore_classes(undone: list[str]) -> None:
    for cls, saved in _classes.items():
        namespace = vars(cls)
        for key, value in saved.items():
            if namespace.get(key, saved) is not value:
                setattr(cls, key, value)
                undone.append(f"{cls.__qualname__}.{key}")


def _same(a: object, b: object) -> bool | None:
    """Whether two values are equal, or None where that cannot be told cheaply."""
    import torch

    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a, b))
    try:
        return bool(a == b)
    except Exception:
        return None


def _restore_values(user_ns: dict, undone: list[str]) -> None:
    for name, (private, copyable) in _values.items():
        current = user_ns.get(name, _values)
        same = _same(current, private) if copyable else None
        if current is _handed_out[name] and (same or (not copyable)):
            continue
        if current is not _handed_out[name]:
            undone.append(f"setup value {name} (rebound)")
        elif same is False:
            undone.append(f"setup value {name} (changed in place)")
        fresh = copy.deepcopy(private) if copyable else private
        user_ns[name] = _handed_out[name] = fresh


def _trusted_hook(callback: object) -> bool:
    return isinstance(callback, (types.FunctionType, types.MethodType)) and str(
        getattr(callback, "__module__", "")
    ).startswith(TRUSTED_HOOK_MODULES)


def _reset_list(owner: Any, attr: str, saved: list, undone: list[str], what: str) -> None:
    if list(getattr(owner, attr)) != saved:
        setattr(owner, attr, list(saved))
        undone.append(what)


def _restore_shell(shell: Any, undone: list[str]) -> None:
    """Transformers and hooks back to the kernel's own, and no method shadowed on the shell."""
    if "manager" not in _hooks:
        return
    if shell.input_transformer_manager is not _hooks["manager"]:
        shell.input_transformer_manager = _hooks["manager"]
        undone.append("the input transformer manager")
    manager = _hooks["manager"]
    _reset_list(manager, "cleanup_transforms", _hooks["cleanup"], undone, "input transformers")
    _reset_list(manager, "line_transforms", _hooks["line"], undone, "input transformers")
    _reset_list(manager, "token_transformers", _hooks["token"], undone, "token transformers")
    _reset_list(shell, "input_transformers_post", _hooks["post"], undone, "input transformers")
    _reset_list(shell, "ast_transformers", _hooks["ast"], undone, "AST transformers")
    if shell.events is not _hooks["events"]:
        shell.events = _hooks["events"]
        undone.append("the event manager")
    callbacks = shell.events.callbacks
    for event, saved in _hooks["callbacks"].items():
        keep = [cb for cb in callbacks.get(event, []) if cb in saved or _trusted_hook(cb)]
        if keep != callbacks.get(event):
            callbacks[event] = keep
            undone.append(f"{event} event hooks")
    for key in set(vars(shell)) - _hooks["instance_keys"]:
        if callable(getattr(type(shell), key, None)):
            delattr(shell, key)
            undone.append(f"the shell's {key}")


def restore() -> list[str]:
    """Put every protected object back, reset hooks that could swallow a failing test, and
    return what had to be undone (empty for an honest submission)."""
    undone: list[str] = []
    _restore_modules(undone)
    _restore_code(undone)
    _restore_classes(undone)
    if sys.gettrace() is not None or sys.getprofile() is not None:
        undone.append("a trace or profile function")
    sys.settrace(None)
    sys.setprofile(None)
    sys.excepthook = sys.__excepthook__  # the kernel swaps its own in: not worth a report
    if _shell is None:
        return undone
    _restore_shell(_shell, undone)
    user_ns = _shell.user_ns
    for name, value in _globals.items():
        if user_ns.get(name) is not value:
            user_ns[name] = value
            undone.append(f"setup name {name}")
    _restore_values(user_ns, undone)
    if user_ns.get("__builtins__") is not sys.modules["builtins"]:
        user_ns["__builtins__"] = sys.modules["builtins"]
        undone.append("__builtins__")
    _shell.set_custom_exc((), None)
    return list(dict.fromkeys(undone))


def kernel_arguments() -> list[str]:
    """ipykernel flags that take the snapshot before the notebook's first cell."""
    return ["--IPKernelApp.exec_lines=['import splatcourse.grading.guard as _g; _g.snapshot()']"]


#: evaluated as a user expression (see module docstring); its value is what `restore` undid
RESTORE_EXPRESSION = "__import__('sys').modules['splatcourse.grading.guard'].restore()"


def remember_expression(source: str) -> str:
    """The user expression that runs `remember` for a read-only cell with this source."""
    return (
        f"__import__('sys').modules['splatcourse.grading.guard'].remember({bound_names(source)!r})"
    )


_TAMPER = re.compile(
    r"(\b(np|numpy|torch|checks|builtins|testing)\.\w+\s*=[^=])"
    r"|setattr\s*\(|__builtins__|\bimport\s+builtins\b|\bfrom\s+builtins\b|sys\.modules"
    r"|set_custom_exc|settrace|setprofile|excepthook"
    r"|splatcourse\.grading|grading\.guard|\bctypes\b|\bgc\.get_"
    r"|__code__|\bco_code\b|__globals__|\bf_globals\b|\bf_locals\b|\bf_back\b|_getframe"
    r"|\bcurrentframe\b|\binspect\.stack\b|\blinecache\b"
    r"|input_transformers|input_transformer_manager|ast_transformers|\bevents\.register"
    # exec/eval/compile of anything but one plain string literal (`re.compile`, `.eval()` pass)
    r"|(?<![\w.])(exec|eval|compile)\s*\((?!\s*[rRbBuU]?(?P<q>['\"])(?:(?!(?P=q)).)*(?P=q)\s*[,)])",
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
