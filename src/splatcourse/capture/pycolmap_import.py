"""The course's one import of pycolmap, made safe.

pycolmap's extension module exports its own zlib symbols. If it is loaded before Python's
`zlib` module, later compression (a Pillow PNG save, matplotlib's `savefig`, `zlib.compress`)
binds to pycolmap's copy and the process aborts with "corrupted size vs. prev_size" (SIGABRT).
Loading `zlib` first makes every later user bind to the system library, so every piece of the
course that needs pycolmap imports it through `import_pycolmap()`, never directly.

Used by: capture.sfm (structure from motion) and capture.colmap (binary models).
"""

from __future__ import annotations

import zlib  # noqa: F401  (must be loaded before pycolmap: see the module docstring)
from types import ModuleType


def import_pycolmap() -> ModuleType:
    """The pycolmap module, loaded after zlib; a clear ImportError when it is not installed."""
    try:
        import pycolmap
    except ImportError as err:
        raise ImportError(
            f"pycolmap is needed for structure from motion and binary COLMAP models ({err}); "
            "install it with `pip install pycolmap==4.2.1`"
        ) from None
    return pycolmap
