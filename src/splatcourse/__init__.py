"""splatcourse: the package behind the Gaussian-splatting course.

Notebooks stay thin: they explain, call this package, plot and ask. Everything that is
computed lives here, where it is typed and tested.
"""

__version__ = "0.1.0"
