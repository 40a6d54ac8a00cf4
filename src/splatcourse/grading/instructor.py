"""The instructor's commands: release, autograde, feedback and grades, each one call.

They wrap nbgrader (configured by `autograde/nbgrader_config.py`) and run every nbgrader step in
its own process, so a submission that crashes, hangs or floods output costs its own grade and
nothing else: the loop goes on to the next student and reports the failure at the end.

Used by: instructors, through the `splatcourse` command.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import math
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..paths import repo_root
from . import sandbox, submissions

NBGRADER = [sys.executable, "-m", "nbgrader"]
#: nbgrader's own start-up is a few seconds; a submission gets this long in all by default
DEFAULT_SUBMISSION_TIMEOUT = 600.0
#: what one submission may put in its worker's log (the grader's own lines included)
MAX_LOG_BYTES_PER_SUBMISSION = 1024**2


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
        return sorted(
            p.name for p in self.solutions.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))
        )

    def check_assignment(self, name: str) -> str:
        known = self.assignments()
        if name not in known:
            raise ValueError(f"unknown assignment {name!r}; the course has: {', '.join(known)}")
        return name

    def required_captures(self, name: str) -> list[str]:
        """Captures an assignment's hidden tests load, from its source notebook's metadata
        (``"splatcourse": {"captures": [...]}``): without them it cannot be graded fairly."""
        return self._course_data(name, "captures")

    def required_models(self, name: str) -> list[str]:
        """Trained models an assignment's hidden tests draw (``"splatcourse": {"models":
        [...]}``): built from the captures by the grader, once, before any submission runs."""
        return self._course_data(name, "models")

    def _course_data(self, name: str, key: str) -> list[str]:
        needed: list[str] = []
        for path in sorted((self.solutions / name).glob("*.ipynb")):
            meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
            needed += [c for c in meta.get("splatcourse", {}).get(key, []) if c not in needed]
        return needed


class MissingCourseData(FileNotFoundError):
    """An assignment needs a capture this machine does not have; nothing was graded."""


def check_course_data(course: Course, assignments: Iterable[str]) -> None:
    """Refuse to grade, before any submission runs, when an assignment's capture is missing;
    then build, once, the trained models its hidden tests draw.

    A hidden test that cannot find its data would fail every student through no fault of
    theirs, and substituting another capture would grade them on something else.
    """
    from ..capture import find_capture  # the capture package loads torch: only when grading
    from ..paths import captures_dir, shared_data_dir

    assignments = list(assignments)
    missing = [
        (a, c) for a in assignments for c in course.required_captures(a) if find_capture(c) is None
    ]
    if missing:
        lines = "\n".join(f"  {a} needs the capture {c!r}" for a, c in missing)
        first = missing[0][1]
        raise MissingCourseData(
            f"cannot grade: this machine lacks course data.\n{lines}\n"
            f"Looked in {captures_dir()} and {shared_data_dir()}. Get it with "
            f"`splatcourse download {first}` (or point SPLATCOURSE_SHARED_DATA at a folder "
            "that holds it), then run autograde again. Nothing was graded."
        )
    _build_models(course, assignments)


def _build_models(course: Course, assignments: Iterable[str]) -> None:
    """Train, once per machine, the models hidden tests draw (cached under data/cache/; the
    sandboxed kernels only read them). Never per submission."""
    wanted = {m for a in assignments for m in course.required_models(a)}
    if not wanted:
        return
    from ..train import renderer_model  # trains with torch: only when an assignment needs it

    unknown = wanted - {renderer_model.RENDERER_MODEL_NAME}
    if unknown:
        raise ValueError(f"solutions ask for unknown models {sorted(unknown)}")
    renderer_model.build_renderer_model()


def default_course() -> Course:
    return Course(repo_root())


class NbgraderError(RuntimeError):
    pass


def run_nbgrader(
    course: Course, args: list[str], timeout: float | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run one nbgrader command from `autograde/`, where its config lives."""
    proc = subprocess.run(
        NBGRADER + args,
        cwd=course.autograde,
        env=_nbgrader_env(),
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise NbgraderError(
            f"`nbgrader {' '.join(args)}` failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def _nbgrader_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    # graders run side by side: one thread per kernel avoids oversubscribing the cores
    env.setdefault("OMP_NUM_THREADS", "1")
    # nbgrader shells out to `alembic` and jupyter kernels: find them beside this interpreter
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # the kernel must import the same splatcourse as we do, even from a temporary course copy
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).parents[2]), env.get("PYTHONPATH")])
    )
    return env


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
    status: str  # "graded", "cached" (unchanged since last time), "zero", "timeout" or "failed"
    message: str = ""
    score: float | None = None
    max_score: float | None = None
    notes: list[str] = field(default_factory=list)


OK_STATUSES = ("graded", "cached")


@dataclass
class GradingReport:
    results: list[GradeResult] = field(default_factory=list)
    #: assignments released first because the gradebook had no record of them
    released: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[GradeResult]:
        """Submissions that did not grade normally (they hold a score of 0 in the gradebook)."""
        return [r for r in self.results if r.status not in OK_STATUSES]

    def summary(self) -> str:
        cached = sum(r.status == "cached" for r in self.results)
        lines = [
            f"released {name} first: the gradebook had no record of it "
            f"(`splatcourse release {name}` does the same)"
            for name in self.released
        ]
        lines.append(
            f"graded {len(self.results) - len(self.failures)} of {len(self.results)} "
            f"submissions ({cached} unchanged since the last run, not regraded)"
        )
        for r in self.failures:
            lines.append(f"  {r.status}: {r.student}/{r.assignment}: {r.message}")
        for r in self.results:
            flagged = [n for n in r.notes if "flagged" in n]
            if flagged:
                lines.append(f"  review: {r.student}/{r.assignment}: " + "; ".join(flagged))
        return "\n".join(lines)


def find_submissions(folder: Path, assignments: list[str]) -> list[tuple[str, str]]:
    """(student, assignment) pairs laid out as FOLDER/<student>/<assignment>/*.ipynb.

    Links are listed too, so that inspection refuses them with a reason instead of skipping a
    student silently."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"submissions folder {folder} does not exist")
    pairs = []
    for student_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for name in assignments:
            if (student_dir / name).is_dir():
                pairs.append((student_dir.name, name))
    return pairs


def _state_path(course: Course, student: str, assignment: str) -> Path:
    return course.autograde / "state" / assignment / f"{student}.json"


def _write_state(course: Course, result: GradeResult, content_hash: str) -> None:
    """Atomic (write, then rename): a crash mid-class never leaves half a record behind."""
    path = _state_path(course, result.student, result.assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"hash": content_hash, **asdict(result)}, indent=1))
    os.replace(tmp, path)


def read_state(course: Course, student: str, assignment: str) -> dict | None:
    """What the last run recorded for one submission (None if it never finished grading)."""
    try:
        return json.loads(_state_path(course, student, assignment).read_text())
    except (OSError, ValueError):
        return None


def _salt(course: Course, assignment: str) -> bytes:
    """What else decides a grade: the source notebooks and the grading config."""
    h = hashlib.sha256()
    for p in [
        course.autograde / "nbgrader_config.py",
        *sorted((course.solutions / assignment).glob("*.ipynb")),
    ]:
        h.update(p.read_bytes())
    return h.digest()


def _with_gradebook(course: Course, fn):
    """Run fn(gradebook), retrying while another grader holds SQLite's write lock."""
    import sqlalchemy.exc
    from nbgrader.api import Gradebook

    for attempt in range(40):
        try:
            with Gradebook(f"sqlite:///{course.gradebook}", "splat-course") as gb:
                return fn(gb)
        except sqlalchemy.exc.OperationalError:
            if attempt == 39:
                raise
            time.sleep(0.5)
    return None


def unreleased(course: Course, assignments: Iterable[str]) -> list[str]:
    """Assignments the gradebook cannot grade yet: nbgrader learns an assignment's notebooks
    and test cells when it is released, and a fresh clone has no gradebook at all."""
    from nbgrader.api import MissingEntry

    names = list(assignments)
    if not course.gradebook.exists():
        return names

    def missing(gb) -> list[str]:
        out = []
        for name in names:
            try:
                known = {nb.name for nb in gb.find_assignment(name).notebooks}
            except MissingEntry:
                known = set()
            if known != {p.stem for p in (course.solutions / name).glob("*.ipynb")}:
                out.append(name)
        return out

    return _with_gradebook(course, missing) or []


def _score(course: Course, student: str, assignment: str) -> tuple[float, float] | None:
    from nbgrader.api import MissingEntry

    def get(gb):
        try:
            sub = gb.find_submission(assignment, student)
        except MissingEntry:
            return None
        return float(sub.score), float(sub.max_score)

    return _with_gradebook(course, get)


def _add_students(course: Course, students: list[str]) -> None:
    """Put every student in the gradebook once, before any worker starts.

    Why: nbgrader's autograde adds its student itself, so two workers grading two exercises of
    one student at the same moment both add it, and the second fails on SQLite's unique key
    ("UNIQUE constraint failed: student.id"): an honest submission recorded as failed
    (bench/autograde.py met it in 1 or 2 of 32 submissions with two workers).
    """

    def add(gb):
        for student in students:
            gb.update_or_create_student(student)

    _with_gradebook(course, add)


def _record_zero(course: Course, student: str, assignment: str) -> None:
    """A submission that could not be graded holds an explicit 0, never a stale grade."""

    def zero(gb):
        gb.update_or_create_student(student)
        sub = gb.update_or_create_submission(assignment, student)
        for nb in sub.notebooks:
            for grade in nb.grades:
                grade.auto_score = 0
                grade.manual_score = None
                grade.needs_manual_grade = False
        gb.db.commit()

    with warnings.catch_warnings():  # SQLAlchemy notes nbgrader's lazy row creation; harmless
        warnings.simplefilter("ignore")
        _with_gradebook(course, zero)
    shutil.rmtree(course.autograded / student / assignment, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


class CappedLog:
    """A worker's log file, of which each submission gets at most `cap` bytes.

    Everything the worker's process group writes to fd 1 or 2 (nbgrader, the kernel, a student's
    ``os.write(2, ...)``) comes through a pipe that one thread drains into the file, so a flood
    neither fills the disk nor blocks the kernel; what is over the cap is dropped, and the log
    says so.
    """

    def __init__(self, path: Path, cap: int = MAX_LOG_BYTES_PER_SUBMISSION) -> None:
        self.path, self.cap = path, cap
        self._lock = threading.Lock()
        self._label, self._used = "worker start-up", 0

    def begin(self, label: str) -> None:
        """Later output is `label`'s (one submission), with a fresh allowance."""
        with self._lock:
            self._close_share()
            self._label, self._used = label, 0
            self._append(f"--- {label} ---\n".encode())

    def write(self, data: bytes) -> None:
        with self._lock:
            room = max(0, self.cap - self._used)
            self._append(data[:room])
            if self._used <= self.cap < self._used + len(data):
                self._append(
                    f"\n[grader: log of {self._label} cut after {self.cap} bytes; the rest "
                    "of its output is dropped]\n".encode()
                )
            self._used += len(data)

    def close(self) -> None:
        with self._lock:
            self._close_share()

    def _close_share(self) -> None:
        if self._used > self.cap:
            dropped = self._used - self.cap
            self._append(f"[grader: {dropped} bytes of {self._label}'s output dropped]\n".encode())
            self._used = self.cap

    def _append(self, data: bytes) -> None:
        if data:
            with self.path.open("ab") as f:
                f.write(data)

    def drain(self, fd: int) -> None:
        """Copy from the read end of a pipe until every writer has closed it."""
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                self.write(chunk)


class _Worker:
    """One pool slot's nbgrader process (`splatcourse.grading.worker`), restarted when killed."""

    def __init__(self, course: Course, slot: int, extra_args: list[str]) -> None:
        self.course, self.slot, self.extra_args = course, slot, extra_args
        self.proc: subprocess.Popen | None = None
        self._drainer: threading.Thread | None = None
        course.autograde.joinpath("logs").mkdir(exist_ok=True)
        self.log = CappedLog(course.autograde / "logs" / f"worker-{slot}.log")

    def _start(self) -> subprocess.Popen:
        env = _nbgrader_env()
        # own uid per worker: own process count; the base can move so that two graders on one
        # machine (e.g. parallel test runs) never share uids
        base = int(os.environ.get("SPLATCOURSE_SANDBOX_UID_BASE", "61000"))
        env["SPLATCOURSE_SANDBOX_UID"] = str(base + self.slot)
        read_end, write_end = os.pipe()
        try:
            # own session: on timeout the whole group (nbgrader, sandbox, kernel) goes at once
            proc = subprocess.Popen(
                [sys.executable, "-m", "splatcourse.grading.worker", *self.extra_args],
                cwd=self.course.autograde,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=write_end,
                text=True,
                start_new_session=True,
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        self._drainer = threading.Thread(target=self.log.drain, args=(read_end,), daemon=True)
        self._drainer.start()
        return proc

    def grade(self, assignment: str, student: str, timeout: float) -> tuple[bool, str | None]:
        """(graded, error); error None means the time ran out."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        assert self.proc.stdin and self.proc.stdout
        self.log.begin(f"{student}/{assignment}")
        try:
            self.proc.stdin.write(json.dumps({"assignment": assignment, "student": student}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.stop()
            return False, "the grading process died"
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.stop()
            return (False, None) if not ready else (False, "the grading process died")
        reply = json.loads(line)
        return bool(reply["ok"]), reply.get("error", "")

    def stop(self) -> None:
        if self.proc is not None:
            _kill_group(self.proc)
            self.proc = None

    def finish(self) -> None:
        """End of the run: let the worker exit on its own (it then stops its kernel zygote and
        removes its files), and kill what is left after a grace period."""
        if self.proc is not None and self.proc.poll() is None and self.proc.stdin:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.stop()
        if self._drainer is not None:
            self._drainer.join(timeout=5)  # the last lines reach the log before it closes
        self.log.close()


def _grade_one(
    course: Course,
    folder: Path,
    student: str,
    assignment: str,
    worker: _Worker,
    force: bool,
    timeout: float,
) -> GradeResult:
    seen = submissions.inspect(folder, student, assignment, course.exercises / assignment)
    content_hash = seen.content_hash(_salt(course, assignment))
    previous = read_state(course, student, assignment)
    if (
        not force
        and previous
        and previous.get("hash") == content_hash
        and previous.get("status") in OK_STATUSES
    ):
        score = _score(course, student, assignment)
        if score is not None:
            return GradeResult(student, assignment, "cached", "", *score, seen.notes)
    dest = course.submitted / student / assignment
    # Grading the folder `nbgrader collect` filled (autograde/submitted) reads and writes the
    # same place: keep everything the student handed in there, only add what is picked.
    in_place = (Path(folder) / student / assignment).resolve() == dest.resolve()
    if not in_place:
        shutil.rmtree(dest, ignore_errors=True)
    if not seen.gradable:
        _record_zero(course, student, assignment)
        score = _score(course, student, assignment) or (0.0, None)
        result = GradeResult(
            student, assignment, "zero", "; ".join(seen.notes) or "empty", *score, seen.notes
        )
        _write_state(course, result, content_hash)
        return result
    dest.mkdir(parents=True, exist_ok=in_place)
    for name, data in seen.files.items():
        (dest / name).write_bytes(data)
    for name, text in seen.receipts.items():
        if not in_place:  # in place, nbgrader's own receipts are already there
            (dest / name).write_text(text)
    ok, error = worker.grade(assignment, student, timeout)
    if ok:
        status, message = "graded", ""
    else:
        status = "timeout" if error is None else "failed"
        message = f"no result within {timeout:.0f} s" if error is None else error
        _record_zero(course, student, assignment)
    score = _score(course, student, assignment) or (0.0, None)
    result = GradeResult(student, assignment, status, message, *score, seen.notes)
    _write_state(course, result, content_hash)
    return result


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def autograde(
    submissions_folder: Path | str,
    course: Course | None = None,
    assignments: Iterable[str] | None = None,
    timeout: float = DEFAULT_SUBMISSION_TIMEOUT,
    workers: int | None = None,
    force: bool = False,
    cell_timeout: int | None = None,
    progress: bool = True,
    shard: tuple[int, int] | None = None,
) -> GradingReport:
    """Grade every submission in a folder laid out as <student>/<assignment>/<notebook>.ipynb.

    Each submission is checked first (`splatcourse.grading.submissions`), copied into
    `autograde/submitted/` (the instructor's folder is never modified) and graded by its own
    nbgrader process under a wall-clock limit; only the notebook kernel runs student code, and it
    runs in the sandbox (`splatcourse.grading.sandbox`). `workers` submissions grade side by side
    (default: one per core). A submission whose notebooks, source notebook and config are
    unchanged since it last graded is not graded again unless `force`, so re-running is
    idempotent and an interrupted run resumes where it stopped. An assignment the gradebook has
    no record of (a fresh clone) is released first, as `splatcourse release` would.
    `shard=(i, n)` grades only the students whose sorted position is i modulo n: n machines, one
    shard each, cover a class.
    """
    course = course or default_course()
    names = list(assignments) if assignments else course.assignments()
    for name in names:
        course.check_assignment(name)
    folder = Path(submissions_folder)
    pairs = find_submissions(folder, names)
    check_course_data(course, sorted({a for _, a in pairs}))
    report = GradingReport(released=unreleased(course, sorted({a for _, a in pairs})))
    if report.released:
        release(course, report.released)
    if shard is not None:
        index, count = shard
        if not 0 <= index < count:
            raise ValueError(f"shard={shard}: need 0 <= index < count")
        students = sorted({s for s, _ in pairs})
        mine = {s for i, s in enumerate(students) if i % count == index}
        pairs = [p for p in pairs if p[0] in mine]
    workers = workers or default_workers()
    if workers < 1:
        raise ValueError(f"workers={workers}: need at least one")
    extra = [f"--Execute.timeout={int(cell_timeout)}"] if cell_timeout else []
    sandbox.prepare_shared()  # fail early, and build shared caches once, before workers start
    _add_students(course, sorted({s for s, _ in pairs}))
    idle: queue.Queue[_Worker] = queue.Queue()
    pool_workers = [_Worker(course, i, extra) for i in range(workers)]
    for w in pool_workers:
        idle.put(w)

    def run(pair: tuple[str, str]) -> GradeResult:
        worker = idle.get()
        try:
            return _grade_one(course, folder, *pair, worker, force, timeout)
        except Exception as err:
            return GradeResult(*pair, "failed", f"{type(err).__name__}: {err}")
        finally:
            idle.put(worker)

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(run, p) for p in pairs]
            for fut in tqdm(
                as_completed(futures), total=len(futures), desc="autograde", disable=not progress
            ):
                report.results.append(fut.result())
    finally:
        for w in pool_workers:
            w.finish()
    order = {p: i for i, p in enumerate(pairs)}
    report.results.sort(key=lambda r: order[(r.student, r.assignment)])
    return report


def feedback(course: Course | None = None, assignments: Iterable[str] | None = None) -> list[Path]:
    """Write one HTML feedback page per graded submission (hidden tests redacted).

    Pages also say what the grader did beyond running the tests: restored test cells, a renamed
    notebook, a file that was not a notebook, a submission that could not be graded.
    """
    course = course or default_course()
    names = list(assignments) if assignments else course.assignments()
    for name in names:
        if course.autograded.is_dir() and any(course.autograded.glob(f"*/{name}")):
            run_nbgrader(course, ["generate_feedback", name, "--force"])
        for state_file in sorted((course.autograde / "state" / name).glob("*.json")):
            state = json.loads(state_file.read_text())
            _annotate_feedback(course, state, name)
    return sorted(course.feedback.glob("*/*/*.html"))


def _annotate_feedback(course: Course, state: dict, assignment: str) -> None:
    student, notes = state["student"], list(state.get("notes") or [])
    folder = course.feedback / student / assignment
    if state["status"] not in OK_STATUSES:
        notes.insert(
            0,
            f"This submission could not be graded normally ({state['status']}: "
            f"{state.get('message') or 'see the notes'}); it scores 0. Ask your "
            "instructor to look at it.",
        )
        folder.mkdir(parents=True, exist_ok=True)
        for nb in sorted((course.exercises / assignment).glob("*.ipynb")):
            (folder / f"{nb.stem}.html").write_text(
                f"<html><head><meta charset='utf-8'><title>{html.escape(assignment)}</title>"
                f"</head><body><h1>{html.escape(assignment)}: {html.escape(student)}</h1>"
                f"{_notes_html(notes)}</body></html>"
            )
        return
    if not notes:
        return
    for page in folder.glob("*.html"):
        text = page.read_text()
        at = text.find(">", text.find("<body")) + 1 if "<body" in text else 0
        page.write_text(text[:at] + _notes_html(notes) + text[at:])


def _notes_html(notes: list[str]) -> str:
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (
        "<div class='grading-notes' style='border:2px solid #c60;padding:0.5em;margin:1em'>"
        f"<b>Notes from the grader</b><ul>{items}</ul></div>"
    )


def _seconds_late(submission) -> int:
    """Whole seconds past the due date (with the student's extension, if any), as nbgrader
    counts them from the time `nbgrader collect` recorded; 0 when on time or no due date is
    set. The course marks late work and deducts nothing: the instructor decides (README)."""
    return math.ceil(submission.total_seconds_late)


def grade_table(course: Course | None = None) -> list[dict[str, object]]:
    """One row per student and assignment, straight from the gradebook; `late` is in seconds."""
    from nbgrader.api import Gradebook, MissingEntry

    course = course or default_course()
    rows: list[dict[str, object]] = []
    with Gradebook(f"sqlite:///{course.gradebook}", "splat-course") as gb:
        for assignment in sorted(gb.assignments, key=lambda a: a.name):
            for student in sorted(gb.students, key=lambda s: s.id):
                # nbgrader's models are untyped SQLAlchemy: on an instance a Column attribute is
                # its value (a str here), and score/max_score, declared as None in the class
                # body, are column properties added after it: the checker sees neither.
                try:
                    sub = gb.find_submission(assignment.name, student.id)  # pyright: ignore[reportArgumentType]
                except MissingEntry:
                    continue
                rows.append(
                    {
                        "student": student.id,
                        "assignment": assignment.name,
                        "score": round(sub.score, 3),  # pyright: ignore[reportCallIssue, reportArgumentType]
                        "max_score": round(sub.max_score, 3),  # pyright: ignore[reportCallIssue, reportArgumentType]
                        "late": _seconds_late(sub),
                    }
                )
    return rows


#: the columns of grades.csv, one row per student and assignment
GRADE_COLUMNS = ["student", "assignment", "score", "max_score", "late"]


def export_grades(course: Course | None = None, out_dir: Path | None = None) -> tuple[Path, Path]:
    """Write grades.csv and a score-distribution plot per assignment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    course = course or default_course()
    if not course.gradebook.exists():
        raise FileNotFoundError(
            f"no gradebook at {course.gradebook}: run `splatcourse autograde` first"
        )
    rows = grade_table(course)
    out_dir = Path(out_dir or course.grades)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "grades.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=GRADE_COLUMNS)
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
        ax.hist(
            scores,
            bins=min(10, max(3, len(scores))),
            range=(0, top),
            color="#3b7dd8",
            edgecolor="white",
        )
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
