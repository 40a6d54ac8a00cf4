"""A real class on a real JupyterHub, one exercise's whole term, driven as people would.

The hub runs on loopback (tests/browser/hub_driver.py): an instructor and three students, each
a separate Unix account where the machine allows it (the test prints which), nbgrader's exchange
in a temporary folder, and this environment as every single-user server. The instructor's
checkout is a throw-away copy of the course; the instructor runs exactly the README's recipe
("Running a real class"), line for line. The students work in Chromium:

- `right` fetches exercise 1 in the Assignment List, submits it untouched, then types the
  solution, validates and submits again: the later submission is the one graded (full marks);
- `wrong` types the solution with one plausible mistake (a mutant), validates and submits;
- `late` submits the release untouched after the due date: it is marked late.

The instructor collects, grades, writes and releases feedback, and exports the grades; each
student fetches their feedback in the Assignment List and sees their own page, and only theirs.
Screenshots go to the artifacts folder (`hub-*.png`), with the time of each phase
(`hub-timings.json`).

Without separate Unix users (not root, or a checkout other users cannot read), every server runs
as the test's own user: then the exchange's permissions are not what keeps students apart, and
only the hub's own access rules are checked.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hub_driver import Hub, readme_recipe, readme_student_config, unix_users_refused
from lab_driver import (
    answer_cells,
    free_port,
    press_validate,
    save_png,
    screenshot,
    type_answers,
    wait_for_notebook,
)

from splatcourse.grading.harness import cell_scores, mutants_for
from splatcourse.grading.instructor import GRADE_COLUMNS, Course
from splatcourse.paths import repo_root

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EXERCISE = "ex01_toy_splats"
NOTEBOOK = f"{EXERCISE}/{EXERCISE}.ipynb"
COURSE_FILES = ("nbgrader_config.py", "autograde/nbgrader_config.py")
COURSE_FOLDERS = ("solutions", "exercises")
WRONG = mutants_for(EXERCISE)[0]  # a plausible mistake in one answer cell


@pytest.fixture(scope="module")
def hub(browser_ready):
    refused = unix_users_refused()
    print(
        f"students are the test user: {refused}" if refused else "students are separate Unix users"
    )
    tag = secrets.token_hex(2)  # unique account names: a crashed run leaves no clash behind
    server = Hub(
        instructor=f"sc{tag}-teacher",
        students=[f"sc{tag}-right", f"sc{tag}-wrong", f"sc{tag}-late"],
        separate_users=refused is None,
    )
    server.start(student_config="c = get_config()  # noqa: F821\n" + _config_for(server))
    yield server
    server.stop()


def _config_for(hub: Hub) -> str:
    """The README's nbgrader config with the exchange in this hub's folder."""
    return readme_student_config().replace("/srv/nbgrader/exchange", str(hub.exchange))


@pytest.fixture(scope="module")
def course(hub, tmp_path_factory) -> Course:
    """The instructor's checkout, with the README's exchange lines in its nbgrader config."""
    root = tmp_path_factory.mktemp("instructor") / "course"
    for name in COURSE_FOLDERS:
        shutil.copytree(
            repo_root() / name,
            root / name,
            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
        )
    for name in COURSE_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes((repo_root() / name).read_bytes())
    with (root / "autograde" / "nbgrader_config.py").open("a") as config:
        config.write("\n" + _config_for(hub))
    return Course(root)


def run_recipe(course: Course, step: str, **env: str) -> str:
    """The README's lines for `step`, in the instructor's checkout, as a shell runs them."""
    lines = readme_recipe()[step]
    proc = subprocess.run(
        ["bash", "-euxo", "pipefail", "-c", "\n".join(lines)],
        cwd=course.root,
        env={
            **os.environ,
            **env,
            "SPLATCOURSE_ROOT": str(course.root),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"README recipe {step!r} exited {proc.returncode}:\n{output}"
    return output


class Student:
    """One person in Chromium: logs in, works in their own JupyterLab, logs out."""

    def __init__(self, hub: Hub, browser, name: str, shots: Path) -> None:
        self.hub, self.name, self.shots = hub, name, shots
        self.page = browser.new_page()

    def user_url(self, path: str = "") -> str:
        return f"{self.hub.url}/user/{self.name}/{path}"

    def log_in(self) -> None:
        page = self.page
        page.goto(f"{self.hub.url}/hub/logout")  # whoever used this browser before
        page.goto(f"{self.hub.url}/hub/login")
        page.locator("#username_input").fill(self.name)
        page.locator("#password_input").fill(self.hub.password_of(self.name))
        page.locator("#login_submit").click()
        page.wait_for_url(re.compile(rf".*/user/{re.escape(self.name)}/lab.*"), timeout=180_000)
        page.wait_for_function(
            "() => window.jupyterapp && window.jupyterapp.shell", timeout=120_000
        )
        # its layout is restored (tabs of the last visit come back, then stay put)
        page.evaluate("async () => { await window.jupyterapp.restored; }")

    def log_out(self) -> None:
        self.page.goto(f"{self.hub.url}/hub/logout")
        self.page.close()

    def assignment_list(self):
        """The Assignment List panel, refreshed."""
        command = "nbgrader:open-assignment-list"
        self.page.wait_for_function(f"() => window.jupyterapp.commands.hasCommand('{command}')")
        self.page.evaluate(f"window.jupyterapp.commands.execute('{command}')")
        # the one in front: a workspace restored at log-in may hold an older one, hidden
        panel = self.page.locator("#assignments").filter(visible=True).first
        panel.wait_for(state="visible")
        return panel

    def row(self, listing: str, text: str = EXERCISE):
        """The row for `text` in one of the panel's lists (released, fetched, submitted), in
        the panel in front (a workspace restored at log-in may hold an older one)."""
        listing = self.page.locator(f"#{listing}_assignments_list").filter(visible=True)
        return listing.locator(".list_item").filter(has_text=text)

    def fetch(self) -> None:
        self.assignment_list()
        self.row("released").locator("button", has_text="Fetch").click()
        self.row("fetched").first.wait_for(state="visible", timeout=60_000)

    def open_notebook(self) -> None:
        self.page.goto(self.user_url(f"lab/tree/{NOTEBOOK}"))
        wait_for_notebook(self.page, NOTEBOOK, timeout=180)

    def save(self) -> None:
        self.page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
        self.page.wait_for_function(
            "() => !window.jupyterapp.shell.currentWidget.context.model.dirty"
        )

    def submit(self) -> str:
        """Press Submit in the Assignment List; returns the submission's timestamp."""
        self.assignment_list()
        before = self.row("submitted", "").count()
        self.row("fetched").locator("button", has_text="Submit").first.click()
        self.page.wait_for_function(
            "(n) => document.querySelectorAll('#submitted_assignments_list .list_item').length > n",
            arg=before,
            timeout=120_000,
        )
        return self.row("submitted", "").last.inner_text()

    def photograph(self, what: str) -> Path:
        path = self.shots / f"hub-{what}.png"
        self.page.screenshot(path=path)
        return path


def work(student: Student, answers: dict[int, str] | None, shots: Path) -> str:
    """Open the fetched notebook, type `answers` (None: leave it untouched), validate, save,
    submit; returns what Validate said."""
    student.open_notebook()
    if answers is not None:
        type_answers(student.page, answers)
    student.save()
    _, kind = press_validate(student.page, shots, f"hub-validate-{student.name}")
    student.page.evaluate("window.jupyterapp.commands.execute('kernelmenu:shutdown')")
    student.submit()
    return kind


def wrong_answers() -> dict[int, str]:
    """The solution with one plausible mistake (tests/mutants/), typed as a student would."""
    answers = answer_cells(EXERCISE)
    index = next(i for i, a in answers.items() if WRONG.old in a)
    answers[index] = answers[index].replace(WRONG.old, WRONG.new)
    return answers


def test_one_exercise_through_a_real_hub(hub, course, browser, shots):
    right, wrong, late = hub.students
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        timings[name] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()

    # the term starts: the instructor releases exercise 1 to the exchange
    run_recipe(course, "# release")
    lap("release_s")

    # `right` hands in the untouched release first, then the solution: the later one counts
    student = Student(hub, browser, right, shots)
    student.log_in()
    student.fetch()
    student.photograph("assignment-list")
    student.submit()
    assert work(student, answer_cells(EXERCISE), shots) == "validation-success"
    student.photograph("submitted-twice")
    student.log_out()

    student = Student(hub, browser, wrong, shots)
    student.log_in()
    student.fetch()
    assert work(student, wrong_answers(), shots) == "validation-failed"
    student.log_out()
    lap("students_on_time_s")

    # the due date, in whole seconds, falls after every submission so far and before the next
    due = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S UTC")
    time.sleep(2)

    student = Student(hub, browser, late, shots)
    student.log_in()
    student.fetch()
    assert work(student, None, shots) == "validation-failed"
    student.log_out()
    lap("late_student_s")

    # after the deadline: the instructor collects, grades, returns feedback, exports grades
    log = run_recipe(course, "# after the deadline", DUE=due)
    (shots / "hub-instructor.log").write_text(log)
    lap("collect_grade_feedback_s")
    if hub.separate_users:
        assert "cheating attempt" not in log, "a collected submission is not its student's"

    top = sum(m for _, m in cell_scores(course, EXERCISE, right).values())
    lost = sum(m for c, (_, m) in cell_scores(course, EXERCISE, wrong).items() if c in WRONG.fails)
    with (course.grades / "grades.csv").open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == GRADE_COLUMNS
        rows = {r["student"]: (float(r["score"]), int(r["late"])) for r in reader}
    assert set(rows) == set(hub.students), rows
    assert rows[right] == (top, 0) and rows[wrong] == (top - lost, 0), rows
    assert rows[late][0] == 0 and rows[late][1] > 0, rows

    # each student fetches their feedback and sees their own page, and only theirs
    for name in hub.students:
        student = Student(hub, browser, name, shots)
        student.log_in()
        page = feedback_page(student)
        header = f"{EXERCISE} (Score: {rows[name][0]} / {top})"  # nbgrader's page heading
        assert header in page, f"{name} did not get their own page ({header!r}):\n{page[:800]}"
        for other in (n for n in hub.students if n != name):
            reply = student.page.request.get(f"{hub.url}/user/{other}/api/contents")
            assert reply.status in (403, 404) or "/hub/login" in reply.url, (
                f"{name} reached {other}'s server: {reply.status} {reply.url}"
            )
        if name == right:
            student.photograph("feedback")
        student.log_out()
    lap("feedback_s")
    if hub.separate_users:
        listing = hub.run_as(right, ["ls", str(hub.exchange / "splat-course" / "feedback")])
        assert listing.returncode != 0, "a student can list everyone's feedback in the exchange"
    (shots / "hub-timings.json").write_text(json.dumps(timings) + "\n")
    print(json.dumps({"hub_cycle": timings, "total_s": round(sum(timings.values()), 1)}))


def feedback_page(student: Student) -> str:
    """Fetch Feedback in the Assignment List, then open the page it brought home."""
    student.assignment_list()
    student.row("submitted").locator("button", has_text="Fetch Feedback").first.click()
    link = student.page.locator("#submitted_assignments_list a", has_text="view feedback")
    link.first.wait_for(state="visible", timeout=60_000)
    pages = sorted(student.hub.home(student.name).glob(f"{EXERCISE}/feedback/*/*.html"))
    assert len(pages) == 1, f"{student.name}: expected one feedback page, found {pages}"
    relative = pages[0].relative_to(student.hub.home(student.name)).as_posix()
    student.page.goto(student.user_url(f"files/{relative}"))
    return student.page.content()


#: a viser server with a few splats, as the live viewer starts one inside a student's server
VISER_SERVER = """
import sys, time
import numpy as np
import viser

rng = np.random.default_rng(0)
n = 64
server = viser.ViserServer(host="127.0.0.1", port=int(sys.argv[1]))
server.scene.add_gaussian_splats(
    "/splats",
    centers=rng.normal(size=(n, 3)).astype(np.float32),  # [N, 3]
    covariances=np.tile(np.eye(3, dtype=np.float32) * 0.02, (n, 1, 1)),  # [N, 3, 3]
    rgbs=rng.uniform(size=(n, 3)).astype(np.float32),  # [N, 3]
    opacities=np.ones((n, 1), dtype=np.float32),  # [N, 1]
)
print("serving", flush=True)
while True:
    time.sleep(1)
"""


def test_live_viewer_reaches_a_student_through_the_hub_proxy(hub, browser, shots):
    """A viser server in a student's server is reachable, websocket and all, at
    /user/<name>/proxy/<port>/ (jupyter-server-proxy), and draws the splats it was given."""
    name, port = hub.students[0], free_port()
    viewer = hub.start_as(name, [sys.executable, "-c", VISER_SERVER, str(port)])
    try:
        assert viewer.stdout is not None
        lines = iter(viewer.stdout.readline, "")  # viser prints a banner first
        assert any(line.strip() == "serving" for line in lines), "the viser server did not start"
        student = Student(hub, browser, name, shots)
        student.log_in()
        sockets, frames = [], []

        def watch(socket) -> None:
            sockets.append(socket.url)
            socket.on("framereceived", lambda frame: frames.append(len(frame)))

        student.page.on("websocket", watch)
        student.page.goto(student.user_url(f"proxy/{port}/"))
        canvas = student.page.locator("canvas").first
        canvas.wait_for(state="visible", timeout=60_000)
        deadline = time.monotonic() + 60
        while sum(frames) < 1000 and time.monotonic() < deadline:  # the scene's messages
            student.page.wait_for_timeout(250)
        assert any(f"/user/{name}/proxy/{port}" in url for url in sockets), sockets
        assert sum(frames) >= 1000, f"the viewer's websocket brought {sum(frames)} bytes"
        picture = screenshot(canvas)
        assert picture.reshape(-1, 3).std(axis=0).max() > 5, "the viewer's canvas is blank"
        save_png(picture, shots / "hub-viewer.png")
        student.log_out()
    finally:
        viewer.terminate()
        viewer.wait(timeout=30)
