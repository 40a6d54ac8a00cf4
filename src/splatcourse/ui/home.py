"""The course home page's one widget: a Start button for each exercise.

A student should not need a terminal to begin an exercise, and must never be led to type into
the tracked copy in `exercises/` (the next `git pull` would fight with it). Each button runs
`splatcourse.student.start`, which copies the exercise into `work/` or, when it is already
there, leaves the student's work alone and says so.

Used by: lessons/00_start_here.ipynb.
"""

from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets

from .. import student
from .display import NotebookWidget


class ExerciseStarter(NotebookWidget):
    """One row per released exercise: its name, a Start button, and where the copy is."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self.status: dict[str, widgets.HTML] = {}
        rows = [self._row(name) for name in student.released_exercises(root)]
        self.widget = widgets.VBox(rows)

    def _row(self, assignment: str) -> widgets.HBox:
        button = widgets.Button(description=f"Start {assignment}", icon="play")
        button.layout.width = "240px"
        button.on_click(lambda _button: self.start(assignment))
        started = (student.work_dir(self.root) / assignment).exists()
        self.status[assignment] = widgets.HTML(
            f"started: your copy is in <code>work/{assignment}/</code>" if started else ""
        )
        return widgets.HBox([button, self.status[assignment]])

    def start(self, assignment: str) -> student.Started:
        """What the button does; the message tells the student where their copy is."""
        started = student.start(assignment, self.root)
        names = ", ".join(f"<code>work/{assignment}/{p.name}</code>" for p in started.notebooks)
        verb = "started" if started.created else "already started, your work is kept"
        self.status[assignment].value = f"{verb}: open {names} (link in the table above)"
        return started
