"""nbgrader started from the course root (e.g. JupyterLab's Validate button) uses the course's
settings, kept in one place: autograde/nbgrader_config.py."""

load_subconfig("autograde/nbgrader_config.py")  # noqa: F821 (injected by traitlets)
