"""JupyterLab in a real browser, driven the way a student uses it, for the browser tests.

`LabServer` runs JupyterLab on loopback with a token over a throw-away copy of the course's
notebooks (so runs never touch the checkout); `CourseLab` does the same over a whole course copy
but starts JupyterLab through `splatcourse lab`, exactly as `make lab` does, adding only what a
test needs (loopback, a token, quiet settings); `launch_chromium` starts Debian's Chromium
through Playwright; the small helpers open a notebook, run its cells, and find, move and
photograph the widgets in it.

Running cells goes through JupyterLab's own commands (the ones the Run menu calls): that is
what a student triggers and it tells us exactly when a cell has finished. Everything a test
checks (sliders, buttons, Validate, the pictures) is done with the real mouse on the real page.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np
from PIL import Image

from splatcourse.paths import repo_root

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
]

# JupyterLab settings for a quiet, predictable page: every cell stays in the DOM (no
# virtual scrolling, so a widget far down the notebook can be found), and no news or
# update pop-ups cover the toolbar.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def chromium_path() -> str | None:
    """Debian's Chromium ($SPLATCOURSE_CHROMIUM overrides); None when it is not installed."""
    env = os.environ.get("SPLATCOURSE_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def artifacts_dir() -> Path:
    """Where screenshots go: $SPLATCOURSE_ARTIFACTS (CI uploads it), else a temporary folder."""
    env = os.environ.get("SPLATCOURSE_ARTIFACTS")
    base = Path(env) if env else Path(tempfile.gettempdir()) / "splatcourse-artifacts"
    folder = base / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_answering(
    proc: subprocess.Popen, url: str, timeout: float, what: str, log_tail: Callable[[], str]
) -> None:
    """Return once `url` answers 200; RuntimeError if `proc` (the server, named `what`) exits
    first, TimeoutError after `timeout` seconds (the caller stops what it started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited with code {proc.returncode} before answering:\n{log_tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} did not answer within {timeout:.0f} s:\n{log_tail()}")


@dataclass
class LabServer:
    """A JupyterLab server over a temporary copy of `folders` (paths relative to `source`).

    The kernel is the "python3" kernel of the Python running the tests, so it imports
    splatcourse from the same virtual environment; Jupyter's user config, data and runtime
    folders are temporary so nothing on the machine leaks in or is left behind.
    """

    source: Path
    folders: tuple[str, ...] = ("lessons", "exercises")
    files: tuple[str, ...] = ()
    startup_timeout: float = 180.0
    root: Path = field(init=False)
    url: str = field(init=False)
    token: str = field(init=False)

    def __post_init__(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="splatcourse-lab-"))
        self.root = self._tmp / "course"
        self.root.mkdir()
        for name in self.folders:
            shutil.copytree(
                self.source / name,
                self.root / name,
                ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
            )
        for name in self.files:
            (self.root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.source / name, self.root / name)
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen | None = None
        self.log_path = self._tmp / "jupyterlab.log"

    def _write_settings(self) -> Path:
        settings = self._tmp / "settings"
        for rel, values in LAB_SETTINGS.items():
            path = settings / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        return settings

    def _write_nbgrader_config(self) -> None:
        """Validate reads nbgrader_config.py from the server's working folder. Its default
        per-cell limit (30 s) is too short for a fit cell on a busy CI machine, where it
        fails with a confusing NameError in the next test cell instead."""
        (self.root / "nbgrader_config.py").write_text(
            "c = get_config()  # noqa: F821\nc.Execute.timeout = 600\n"
        )

    def _prepare_root(self) -> None:
        self._write_nbgrader_config()

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for var, sub in [
            ("JUPYTER_CONFIG_DIR", "config"),
            ("JUPYTER_DATA_DIR", "data"),
            ("JUPYTER_RUNTIME_DIR", "runtime"),
            ("IPYTHONDIR", "ipython"),
        ]:
            env[var] = str(self._tmp / sub)
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        # The kernels' tensors are small: extra torch threads gain nothing, and on a busy
        # 2-core CI machine their spin-waiting made a lesson cost ~7x more CPU time.
        env.setdefault("OMP_NUM_THREADS", "1")
        # the tests' Python and its venv come first, so the kernel's python is the same one
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        return env

    def harness_options(self) -> list[str]:
        """What only a test adds: loopback and a fixed port, a token, quiet settings and
        throw-away workspaces (so no tabs from an earlier run come back)."""
        options = [
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            "--LabApp.expose_app_in_browser=True",
            f"--LabApp.user_settings_dir={self._write_settings()}",
            f"--LabApp.workspaces_dir={self._tmp / 'workspaces'}",
            "--LabServerApp.open_browser=False",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            options.append("--ServerApp.allow_root=True")  # CI containers run as root
        return options

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "jupyterlab",
            f"--ServerApp.port={self.port}",
            f"--ServerApp.root_dir={self.root}",
            *self.harness_options(),
        ]

    def start(self) -> LabServer:
        self._prepare_root()
        env, command = self.environment(), self.command()
        log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        # cwd = root: nbgrader's Validate reads an nbgrader_config.py from the server's cwd
        self._proc = subprocess.Popen(
            command, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        self._log = log
        try:
            wait_until_answering(
                self._proc, self.api("status"), self.startup_timeout, "JupyterLab", self.log_tail
            )
        except TimeoutError:
            self.stop()
            raise
        return self

    def home_url(self) -> str:
        """The server's front page, which sends the browser on to its default URL."""
        return f"{self.url}/?token={self.token}"

    def api(self, path: str) -> str:
        return f"{self.url}/api/{path}?token={self.token}"

    def lab_url(self, notebook: str) -> str:
        """A fresh workspace per page (`reset`), so no tabs or kernels from earlier pages
        come back."""
        workspace = secrets.token_hex(4)
        return f"{self.url}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={self.token}"

    def shutdown_kernels(self) -> None:
        """Stop every kernel, so a notebook finished with stops using the CPU."""
        with urllib.request.urlopen(self.api("kernels"), timeout=10) as reply:
            kernels = json.load(reply)
        for kernel in kernels:
            request = urllib.request.Request(self.api(f"kernels/{kernel['id']}"), method="DELETE")
            urllib.request.urlopen(request, timeout=30).close()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()  # the server shuts its kernels down on SIGTERM
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        if self._proc is not None:
            self._log.close()
        shutil.rmtree(self._tmp, ignore_errors=True)


@dataclass
class CourseLab(LabServer):
    """JupyterLab over a whole throw-away course (lessons, exercises, solutions and the
    nbgrader config), started by `splatcourse lab` as `make lab` starts it; the kernels and
    the `splatcourse` commands of the test see that copy as the course (SPLATCOURSE_ROOT)."""

    folders: tuple[str, ...] = ("lessons", "exercises", "solutions")
    files: tuple[str, ...] = ("nbgrader_config.py", "autograde/nbgrader_config.py", ".gitignore")

    def _prepare_root(self) -> None:
        """Nothing to add: Validate reads the course's own nbgrader_config.py."""

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "SPLATCOURSE_ROOT": str(self.root)}

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "splatcourse.cli",
            "lab",
            f"--port={self.port}",
            *self.harness_options(),
        ]

    def splatcourse(self, *args: str, timeout: float = 900.0) -> str:
        """Run a `splatcourse` command on this course (as a student's or instructor's terminal
        in the course would); returns its output, fails with it on a non-zero exit."""
        proc = subprocess.run(
            [sys.executable, "-m", "splatcourse.cli", *args],
            cwd=self.root,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise AssertionError(
                f"`splatcourse {' '.join(args)}` exited {proc.returncode}:\n{output}"
            )
        return output


def launch_chromium(playwright, executable: str):
    """A fresh headless Chromium (its own throw-away profile) with a laptop-sized window."""
    profile = tempfile.mkdtemp(prefix="splatcourse-chromium-")
    context = playwright.chromium.launch_persistent_context(
        profile,
        executable_path=executable,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 1000},
        device_scale_factor=1,
    )
    context.set_default_timeout(60_000)
    return context, profile


# ---------------------------------------------------------------------------------------------
# Notebook helpers (page = a Playwright page showing JupyterLab)
# ---------------------------------------------------------------------------------------------

# the notebook in front: other open notebooks stay in the page, hidden by Lumino
CURRENT_NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"


_NOTEBOOK_READY = """(path) => {
  const app = window.jupyterapp;
  const w = app && app.shell.currentWidget;
  if (!w || !w.context || w.context.path !== path || !w.sessionContext) return false;
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle'
      && w.content.widgets.length > 0;
}"""

# Runs cells first..last one at a time through the command the Run menu uses; each call
# resolves when the kernel has finished the cell. Reports the first error output, if any.
_RUN_CELLS = """async ([first, last]) => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  const nb = panel.content;
  for (let i = first; i <= last; i++) {
    nb.activeCellIndex = i;
    nb.deselectAll();
    await app.commands.execute('notebook:run-cell');
    const cell = nb.widgets[i];
    if (cell.model.type !== 'code') continue;
    const outputs = cell.model.outputs.toJSON();
    for (const out of outputs) {
      if (out.output_type === 'error') {
        return {cell: i, error: out.ename + ': ' + out.evalue};
      }
    }
  }
  return null;
}"""


VALIDATE_TIMEOUT_MS = 300_000  # the server runs the whole notebook; CI machines are slow


def press_validate(page, shots, name: str) -> tuple[str, str]:
    """Click Validate, wait for the result dialog, photograph it, close it.

    Returns the dialog's text and the result class nbgrader gives it (validation-success,
    validation-failed, validation-changed, ...)."""
    button = page.locator(f"{CURRENT_NOTEBOOK} .jp-NotebookPanel-toolbar .validate-button")
    assert button.count() == 1, (
        "no Validate button on the notebook toolbar: is the nbgrader "
        "JupyterLab extension enabled? (jupyter labextension list)"
    )
    button.click()
    dialog = page.locator(".jp-Dialog").filter(has_text="Validation Results")
    dialog.wait_for(state="visible", timeout=VALIDATE_TIMEOUT_MS)
    message = dialog.locator("#validation-message")
    dialog.locator(".jp-Dialog-content").screenshot(path=shots / f"{name}.png")
    text = message.inner_text()
    kind = next(
        (c for c in (message.get_attribute("class") or "").split() if c.startswith("validation-")),
        "",
    )
    dialog.locator("button", has_text="Ok").click()
    dialog.wait_for(state="hidden")
    return text, kind


def answer_cells(assignment: str) -> dict[int, str]:
    """Cell index in the student notebook -> the reference answer, markers removed."""
    released = nbformat.read(repo_root() / "exercises" / assignment / f"{assignment}.ipynb", 4)
    source = nbformat.read(repo_root() / "solutions" / assignment / f"{assignment}.ipynb", 4)
    answers = {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in source.cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }
    marker = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)
    out = {}
    for index, c in enumerate(released.cells):
        gid = c.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            out[index] = marker.sub("", answers[gid])
    assert out, f"{assignment}: no answer cells found"
    return out


def type_answers(page, answers: dict[int, str]) -> None:
    """Replace each answer cell's text (cell index -> answer) with the mouse and keyboard."""
    for index, answer in answers.items():
        editor = cell(page, index).locator(".cm-content")
        editor.scroll_into_view_if_needed()
        editor.click()
        page.keyboard.press("ControlOrMeta+a")
        # inserted as one edit, as a paste would be: no auto-indent or bracket closing
        page.keyboard.insert_text(answer)


def find_cell(notebook: Path, text: str) -> int:
    """Index of the first code cell whose source contains `text`."""
    nb = nbformat.read(notebook, as_version=4)
    for index, c in enumerate(nb.cells):
        if c.cell_type == "code" and text in c.source:
            return index
    raise AssertionError(
        f"{notebook.name}: no code cell contains {text!r}; update the table in tests/browser"
    )


def open_notebook(page, lab: LabServer, path: str, timeout: float = 120.0) -> None:
    """Load JupyterLab on `path` and wait until its kernel is up and idle."""
    page.goto(lab.lab_url(path))
    wait_for_notebook(page, path, timeout)


def wait_for_notebook(page, path: str, timeout: float = 120.0) -> None:
    """Wait until `path` is the notebook in front and its kernel is up and idle."""
    page.wait_for_function(_NOTEBOOK_READY, arg=path, timeout=timeout * 1000, polling=250)


def run_cells(page, first: int, last: int) -> None:
    """Run cells first..last (inclusive); fail with the notebook's own error if one raises."""
    error = page.evaluate(_RUN_CELLS, [first, last])
    if error:
        raise AssertionError(f"cell {error['cell']} raised {error['error']}")


def cell(page, index: int):
    """Cell `index` of the notebook in front."""
    return page.locator(f"{CURRENT_NOTEBOOK} .jp-Notebook .jp-Cell").nth(index)


def widget_images(page, index: int):
    """The widget <img> views in cell `index`'s output, waiting until they have drawn."""
    images = cell(page, index).locator(".jp-OutputArea-output img.widget-image")
    images.first.wait_for(state="visible", timeout=120_000)
    page.wait_for_function(
        """(el) => Array.from(el.querySelectorAll('img.widget-image'))
                        .every(img => img.complete && img.naturalWidth > 0)""",
        arg=cell(page, index).element_handle(),
        timeout=60_000,
    )
    return images


def slider(page, index: int, label: str):
    """The slider labelled `label` in cell `index`'s widget output."""
    exact = re.compile(rf"^\s*{re.escape(label)}\s*$")
    return (
        cell(page, index)
        .locator(".widget-slider")
        .filter(has=page.locator(".widget-label", has_text=exact))
        .first
    )


def drag_slider(page, index: int, label: str, fraction: float = 0.3) -> None:
    """Drag a slider's handle with the mouse by `fraction` of its track, towards the side
    with more room (so the value really changes)."""
    box_slider = slider(page, index, label)
    box_slider.scroll_into_view_if_needed()
    track = box_slider.locator(".noUi-target").bounding_box()
    handle = box_slider.locator(".noUi-handle").first.bounding_box()
    if track is None or handle is None:
        raise AssertionError(f"slider {label!r} in cell {index} is not visible")
    x0 = handle["x"] + handle["width"] / 2
    y0 = handle["y"] + handle["height"] / 2
    centre = track["x"] + track["width"] / 2
    dx = fraction * track["width"] * (1 if x0 < centre else -1)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + dx, y0, steps=8)
    page.mouse.up()


def click_button(page, index: int, text: str) -> None:
    """Click the button (plain or one of a toggle group) whose text is exactly `text`."""
    exact = re.compile(rf"^\s*{re.escape(text)}\s*$")
    cell(page, index).locator(".jp-OutputArea-output button", has_text=exact).first.click()


def screenshot(locator) -> np.ndarray:
    """An element's pixels as an [H, W, 3] uint8 array."""
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB"))


def changed_fraction(before: np.ndarray, after: np.ndarray, level: int = 12) -> float:
    """Share of pixels that differ by more than `level` (of 255) in some channel."""
    if before.shape != after.shape:
        return 1.0
    diff = np.abs(before.astype(int) - after.astype(int)).max(axis=-1)
    return float((diff > level).mean())


def wait_for_change(
    locator, before: np.ndarray, minimum: float = 0.005, timeout: float = 60.0
) -> tuple[np.ndarray, float]:
    """Re-photograph until at least `minimum` of the pixels changed (the kernel re-renders
    asynchronously); returns the last picture and its changed fraction."""
    deadline = time.monotonic() + timeout
    while True:
        after = screenshot(locator)
        fraction = changed_fraction(before, after)
        if fraction >= minimum or time.monotonic() > deadline:
            return after, fraction
        time.sleep(0.3)


def save_png(array: np.ndarray, path: Path) -> Path:
    Image.fromarray(array).save(path)
    return path
