"""Where captures live on disk.

The course is used from a git checkout, so data is found relative to the repository root
rather than the current directory (notebooks run in their own folder). Environment variables
override every location, which is how CI and unusual layouts point the course elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variables that override the default locations.
ENV_SHARED = "SPLATCOURSE_SHARED_DATA"  # folder that holds shared captures, one sub-folder each
ENV_CAPTURES = "SPLATCOURSE_CAPTURES_DIR"  # where `download` installs captures
ENV_DATA_URL = "SPLATCOURSE_DATA_URL"  # base URL of the download mirror


def repo_root() -> Path:
    """The checkout this package was installed from (editable install), else the cwd."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "src" / "splatcourse").is_dir():
            return parent
    return Path.cwd()


def data_dir() -> Path:
    """`<repo>/data`: the manifest (tracked) plus captures/ and cache/ (both gitignored)."""
    return repo_root() / "data"


def manifest_path() -> Path:
    return data_dir() / "manifest.json"


def captures_dir() -> Path:
    """Where `python -m splatcourse.capture.download` installs captures."""
    env = os.environ.get(ENV_CAPTURES)
    return Path(env).expanduser() if env else data_dir() / "captures"


def shared_data_dir() -> Path:
    """Read-only captures shared next to the checkout (`<repo>/../shared/data`)."""
    env = os.environ.get(ENV_SHARED)
    return Path(env).expanduser() if env else repo_root().parent / "shared" / "data"


def cache_dir() -> Path:
    return data_dir() / "cache"
