"""The notebook UI, the widgets the lessons display: lessons 1-2 use `widgets2d` (2D explorer,
fit scrubber), lessons 3-4 `widgets3d` (3D explorers) and lesson 5 `viewer` (the splat viewer).

All of them draw their pictures and show themselves through `display`, so each one appears the
same way when it is the last thing in a cell.

Only notebooks import this package; the teaching library never does (CI checks it with
import-linter), so every lesson's computation is usable without a browser or ipywidgets.
"""
