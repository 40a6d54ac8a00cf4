"""splatcourse: the package behind the Gaussian-splatting course.

Notebooks stay thin: they explain, call this package, plot and ask. Everything that is
computed lives here, where it is typed and tested. CONTRIBUTING.md maps each lesson and
exercise to its modules; the layers (teaching library, `ui`, `grading`) are enforced in CI.
"""

import os
import sys
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("splatcourse")  # one source: pyproject.toml
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"


def quiet_openmp() -> None:
    """Let OpenMP's idle worker threads sleep at once instead of spinning (unless the user
    chose a policy).

    Why: after each parallel torch operation, OpenMP's workers spin for a while waiting for
    the next one. A training step is hundreds of small operations, so on a machine where
    anything else runs (a student's laptop, a grader with several workers) the spinning
    workers take the cores the compiled rasterizer's band threads need: on the bench scene
    with two threads, 98-145 ms of CPU per forward + backward with the default policy against
    51-55 ms with ``PASSIVE`` (issue 17). OpenMP reads the variable once, when torch loads,
    so it must be set before ``import torch``: here when the package is imported first, and
    by ``splatcourse lab`` for every kernel JupyterLab starts.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


if "torch" not in sys.modules:
    quiet_openmp()
