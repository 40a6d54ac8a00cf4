"""splatcourse: the package behind the Gaussian-splatting course.

Notebooks stay thin: they explain, call this package, plot and ask. Everything that is
computed lives here, where it is typed and tested. CONTRIBUTING.md maps each lesson and
exercise to its modules; the layers (teaching library, `ui`, `grading`) are enforced in CI.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("splatcourse")  # one source: pyproject.toml
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
