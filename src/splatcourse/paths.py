"""Where the course lives on disk, found the same way from a notebook, a test or the CLI.

Notebook kernels start in the notebook's own folder, so nothing may rely on the working
directory: every path is derived from the course root found here.
"""

from __future__ import annotations

import os
from pathlib import Path

_MARKER = Path("autograde") / "nbgrader_config.py"


def repo_root() -> Path:
    """The course checkout: $SPLATCOURSE_ROOT, else the folder above the package, else cwd's."""
    env = os.environ.get("SPLATCOURSE_ROOT")
    if env:
        root = Path(env).expanduser().resolve()
        if not (root / _MARKER).exists():
            raise FileNotFoundError(f"SPLATCOURSE_ROOT={env} is not a course checkout "
                                    f"(no {_MARKER} there)")
        return root
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for candidate in (start, *start.parents):
            if (candidate / _MARKER).exists():
                return candidate
    raise FileNotFoundError("cannot find the course checkout (a folder with "
                            f"{_MARKER}); set SPLATCOURSE_ROOT to it")


def data_dir() -> Path:
    """`data/` of the checkout: downloads and caches go below it (git ignores them)."""
    return repo_root() / "data"


def shared_data_dir() -> Path:
    """Read-only captures next to the checkout ($SPLATCOURSE_SHARED_DATA or ../shared/data)."""
    env = os.environ.get("SPLATCOURSE_SHARED_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return repo_root().parent / "shared" / "data"


def outputs_dir() -> Path:
    """Where notebooks write what students make (fits, splats, figures); git ignores it."""
    path = repo_root() / "outputs"
    path.mkdir(exist_ok=True)
    return path
