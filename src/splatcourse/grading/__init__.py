"""The grading system: release, sandboxed autograding, feedback and grades (instructors only).

It sits on top of the teaching library and may import it; nothing in the teaching library or
the notebook UI imports this package (CI checks the rule with import-linter, see pyproject).

- `instructor`: the four instructor commands (release, autograde, feedback, grades).
- `submissions`: checks a submission before anything runs it.
- `worker`: one long-lived nbgrader process per pool slot.
- `sandbox`, `execute`, `zygote`, `_zygote_stub`: the confined notebook kernel.
- `guard`: what the kernel restores before each test cell, and the source scan.
- `nbgrader_ext`: the preprocessor that hides hidden tests in feedback.
- `harness`: the end-to-end grading helpers the tests and benches share.

Used by: instructors (splatcourse release, autograde, feedback, grades); no lesson.
"""
