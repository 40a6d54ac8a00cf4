"""The notebook UI: the widgets the lessons display (2D explorer, fit scrubber, 3D explorers,
the splat viewer).

Only notebooks import this package; the teaching library never does (CI checks it with
import-linter), so every lesson's computation is usable without a browser or ipywidgets.
"""
