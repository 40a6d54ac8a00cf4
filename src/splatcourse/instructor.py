"""The instructor's commands: release, autograde, feedback and grades, each one call.

They wrap nbgrader (configured by `autograde/nbgrader_config.py`) and run every nbgrader step in
its own process, so a submission that crashes, hangs or floods output costs its own grade and
nothing else: the loop goes on to the next student and reports the failure at the end.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .paths import repo_root

NBGRADER = [sys.executable, "-m", "nbgrader"]
#: nbgrader's own start-up is a few seconds; a submission gets this long in all by default
DEFAULT_SUBMISSION_TIMEOUT = 600.0


@dataclass(frozen=True)
class Course:
    """Where a course's folders are; tests point it at a temporary copy."""

    root: Path

    @property
    def solutions(self) -> Path:
        return self.root / "solutions"

    @property
    def exercises(self) -> Path:
        return self.root / "exercises"

    @property
    def autograde(self) -> Path:
        return self.root / "autograde"

    @property
    def submitted(self) -> Path:
        return self.autograde / "submitted"

    @property
    def autograded(self) -> Path:
        return self.autograde / "autograded"

    @property
    def feedback(self) -> Path:
        return self.autograde / "feedback"

    @property
    def grades(self) -> Path:
        return self.autograde / "grades"

    @property
    def gradebook(self) -> Path:
        return self.autograde / "gradebook.db"

    def assignments(self) -> list[str]:
        """Every folder of `solutions/` that holds a notebook is an assignment."""
        if not self.solutions.is_dir():
            raise FileNotFoundError(f"no solutions folder at {self.solutions}")
        return sorted(p.name for p in self.solutions.iterdir()
                      if p.is_dir() and any(p.glob("*.ipynb")))

    def check_assignment(self, name: str) -> str:
        known = self.assignments()
        if name not in known:
            raise ValueError(f"unknown assignment {name!r}; the course has: {', '.join(known)}")
        return name


def default_course() -> Course:
    return Course(repo_root())


class NbgraderError(RuntimeError):
    pass


def run_nbgrader(course: Course, args: list[str], timeout: float | None = None,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one nbgrader command from `autograde/`, where its config lives."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    # graders run side by side: one thread per kernel avoids oversubscribing the cores
    env.setdefault("OMP_NUM_THREADS", "1")
    # nbgrader shells out to `alembic` and jupyter kernels: find them beside this interpreter
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # the kernel must import the same splatcourse as we do, even from a temporary course copy
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parents[1]),
                                                      env.get("PYTHONPATH")]))
    proc = subprocess.run(NBGRADER + args, cwd=course.autograde, env=env, text=True,
                          capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise NbgraderError(f"`nbgrader {' '.join(args)}` failed (exit {proc.returncode}):\n"
                            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def release(course: Course | None = None, assignments: Iterable[str] | None = None) -> list[Path]:
    """Generate the student notebooks in `exercises/` from the sources in `solutions/`."""
    course = course or default_course()
    names = list(assignments) if assignments else course.assignments()
    written = []
    for name in tqdm(names, desc="release"):
        course.check_assignment(name)
        run_nbgrader(course, ["generate_assignment", name, "--force"])
        written.extend(sorted((course.exercises / name).glob("*.ipynb")))
    return written


@dataclass
class GradeResult:
    student: str
    assignment: str
    status: str  # "graded", "timeout" or "failed"
    message: str = ""


@dataclass
class GradingReport:
    results: list[GradeResult] = field(default_factory=list)

    @property
    def failures(self) -> list[GradeResult]:
        return [r for r in self.results if r.status != "graded"]

    def summary(self) -> str:
        lines = [f"graded {len(self.results) - len(self.failures)} of {len(self.results)} "
                 "submissions"]
        for r in self.failures:
            lines.append(f"  {r.status}: {r.student}/{r.assignment}: {r.message}")
        return "\n".join(lines)


def find_submissions(folder: Path, assignments: list[str]) -> list[tuple[str, str]]:
    """(student, assignment) pairs laid out as FOLDER/<student>/<assignment>/*.ipynb."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"submissions folder {folder} does not exist")
    pairs = []
    for student_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for name in assignments:
            if (student_dir / name).is_dir():
                pairs.append((student_dir.name, name))
    return pairs


def autograde(submissions: Path | str, course: Course | None = None,
              assignments: Iterable[str] | None = None,
              timeout: float = DEFAULT_SUBMISSION_TIMEOUT) -> GradingReport:
    """Grade every submission in a folder laid out as <student>/<assignment>/<notebook>.ipynb.

    Each submission is copied into `autograde/submitted/` (the instructor's folder is never
    modified) and graded by its own nbgrader process with a wall-clock limit.
    """
    course = course or default_course()
    names = list(assignments) if assignments else course.assignments()
    pairs = find_submissions(Path(submissions), names)
    report = GradingReport()
    for student, name in tqdm(pairs, desc="autograde"):
        dest = course.submitted / student / name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(Path(submissions) / student / name, dest)
        try:
            proc = run_nbgrader(course, ["autograde", name, "--student", student, "--force"],
                                timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            report.results.append(GradeResult(student, name, "timeout",
                                              f"no result within {timeout:.0f} s"))
            continue
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            report.results.append(GradeResult(student, name, "failed", " | ".join(tail)))
        else:
            report.results.append(GradeResult(student, name, "graded"))
    return report


def feedback(course: Course | None = None, assignments: Iterable[str] | None = None) -> list[Path]:
    """Write one HTML feedback page per graded submission (hidden tests redacted)."""
    course = course or default_course()
    names = list(assignments) if assignments else course.assignments()
    for name in names:
        if course.autograded.is_dir() and any(course.autograded.glob(f"*/{name}")):
            run_nbgrader(course, ["generate_feedback", name, "--force"])
    return sorted(course.feedback.glob("*/*/*.html"))


def grade_table(course: Course | None = None) -> list[dict[str, object]]:
    """One row per student and assignment, straight from the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    course = course or default_course()
    rows: list[dict[str, object]] = []
    with Gradebook(f"sqlite:///{course.gradebook}", "splat-course") as gb:
        for assignment in sorted(gb.assignments, key=lambda a: a.name):
            for student in sorted(gb.students, key=lambda s: s.id):
                try:
                    sub = gb.find_submission(assignment.name, student.id)
                except MissingEntry:
                    continue
                rows.append({"student": student.id, "assignment": assignment.name,
                             "score": round(sub.score, 3), "max_score": round(sub.max_score, 3)})
    return rows


def export_grades(course: Course | None = None, out_dir: Path | None = None) -> tuple[Path, Path]:
    """Write grades.csv and a score-distribution plot per assignment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    course = course or default_course()
    if not course.gradebook.exists():
        raise FileNotFoundError(f"no gradebook at {course.gradebook}: run `splatcourse autograde` "
                                "first")
    rows = grade_table(course)
    out_dir = Path(out_dir or course.grades)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "grades.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["student", "assignment", "score", "max_score"])
        writer.writeheader()
        writer.writerows(rows)
    by_assignment: dict[str, list[float]] = {}
    max_by_assignment: dict[str, float] = {}
    for r in rows:
        by_assignment.setdefault(str(r["assignment"]), []).append(float(r["score"]))  # type: ignore[arg-type]
        max_by_assignment[str(r["assignment"])] = float(r["max_score"])  # type: ignore[arg-type]
    n = max(1, len(by_assignment))
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.2), squeeze=False)
    for ax, (name, scores) in zip(axes[0], sorted(by_assignment.items())):
        top = max_by_assignment[name] or 1.0
        ax.hist(scores, bins=min(10, max(3, len(scores))), range=(0, top), color="#3b7dd8",
                edgecolor="white")
        ax.set_title(f"{name} (n={len(scores)})")
        ax.set_xlabel(f"score (max {top:g})")
        ax.set_ylabel("students")
    if not by_assignment:
        axes[0][0].set_title("no graded submissions yet")
    fig.suptitle("Score distribution per assignment")
    fig.tight_layout()
    plot_path = out_dir / "score_distribution.png"
    fig.savefig(plot_path, dpi=110)
    plt.close(fig)
    (out_dir / "grades.json").write_text(json.dumps(rows, indent=1))
    return csv_path, plot_path
