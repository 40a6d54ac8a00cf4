"""Where the course lives on disk: the one definition, used by notebooks, tests, the CLI and
the grading sandbox alike.

Notebook kernels start in the notebook's own folder (and graded kernels in a scratch copy of
it), so nothing may rely on the working directory: every path is derived from the course root
found here. Environment variables override each location; the grading sandbox sets
``SPLATCOURSE_ROOT`` and ``SPLATCOURSE_SHARED_DATA`` so that a confined kernel finds the
manifest and the captures exactly where an ordinary one does.

Used by: lessons 5-7 and exercises 4-5 (outputs_dir), the capture loaders, the CLI and the grading sandbox.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variables that override the default locations.
ENV_ROOT = "SPLATCOURSE_ROOT"  # the course checkout
ENV_SHARED = "SPLATCOURSE_SHARED_DATA"  # read-only captures, one sub-folder each
ENV_CAPTURES = "SPLATCOURSE_CAPTURES_DIR"  # where `splatcourse download` installs captures
ENV_DATA_URL = "SPLATCOURSE_DATA_URL"  # base URL to download captures from

_MARKER = Path("autograde") / "nbgrader_config.py"


def repo_root() -> Path:
    """The course checkout: $SPLATCOURSE_ROOT, else the folder above the package, else cwd's."""
    env = os.environ.get(ENV_ROOT)
    if env:
        root = Path(env).expanduser().resolve()
        if not (root / _MARKER).exists():
            raise FileNotFoundError(
                f"{ENV_ROOT}={env} is not a course checkout (no {_MARKER} there)"
            )
        return root
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for candidate in (start, *start.parents):
            if (candidate / _MARKER).exists():
                return candidate
    raise FileNotFoundError(
        f"cannot find the course checkout (a folder with {_MARKER}); set {ENV_ROOT} to it"
    )


def data_dir() -> Path:
    """`data/` of the checkout: the manifest (tracked), downloads and caches (ignored)."""
    return repo_root() / "data"


def manifest_path() -> Path:
    """`data/manifest.json`: what each capture is, where it comes from, how to verify it."""
    return data_dir() / "manifest.json"


def captures_dir() -> Path:
    """Where `splatcourse download` installs captures ($SPLATCOURSE_CAPTURES_DIR)."""
    env = os.environ.get(ENV_CAPTURES)
    return Path(env).expanduser().resolve() if env else data_dir() / "captures"


def shared_data_dir() -> Path:
    """Read-only captures next to the checkout ($SPLATCOURSE_SHARED_DATA or ../shared/data),
    resolved either way, so a linked ../shared names the same folder the sandbox mounts."""
    env = os.environ.get(ENV_SHARED)
    shared = Path(env).expanduser() if env else repo_root().parent / "shared" / "data"
    return shared.resolve()


def outputs_dir() -> Path:
    """Where notebooks write what students make (fits, splats, figures); git ignores it."""
    path = repo_root() / "outputs"
    path.mkdir(exist_ok=True)
    return path
