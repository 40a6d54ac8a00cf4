"""A real class on loopback for the browser tests: JupyterHub, its proxy, accounts and an exchange.

`Hub` starts JupyterHub on 127.0.0.1 with configurable-http-proxy (installed from npm into
data/cache/ on first use), a shared-password authenticator (an instructor, who is the hub's
admin, and students), and this test's own environment as every user's single-user server
(`jupyterhub-singleuser` beside `sys.executable`). Users are separate Unix accounts when the
machine allows it (root, `useradd`, and a venv and course they can read), so nbgrader's exchange
works under its real permissions; otherwise every server runs as the test's own user
(`SimpleLocalProcessSpawner`), and `Hub.separate_users` says so.

`readme_recipe` reads the README's "Running a real class" recipe, the shell blocks an instructor
runs; the hub test runs exactly those lines, and tests/test_readme_class.py checks them without
a browser.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from lab_driver import LAB_SETTINGS, free_port, wait_until_answering

from splatcourse.paths import repo_root

CHP_VERSION = "5.3.0"
README_SECTION = "## Running a real class"
#: the README's recipe blocks are ```bash blocks whose first line is one of these comments
RECIPE_STEPS = ("# release", "# after the deadline")


#: With one Unix account for everyone, nbgrader (which names the student after the Unix account
#: running it) is told the hub's name instead; only the one-account fallback adds this.
ONE_ACCOUNT_NAMES = """
import os as _os

import nbgrader.utils as _utils

_utils.get_osusername = lambda: _os.environ["JUPYTERHUB_USER"]
"""


def proxy_command(cache: Path | None = None) -> str:
    """configurable-http-proxy, installed from the npm registry into data/cache/ once."""
    prefix = (cache or repo_root() / "data" / "cache") / f"configurable-http-proxy-{CHP_VERSION}"
    binary = prefix / "node_modules" / ".bin" / "configurable-http-proxy"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not installed: it installs JupyterHub's proxy (apt npm)")
        subprocess.run(
            [npm, "install", "--prefix", str(prefix), f"configurable-http-proxy@{CHP_VERSION}"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return str(binary)


def readme_recipe(readme: Path | None = None) -> dict[str, list[str]]:
    """The recipe's shell lines by step ("# release", "# after the deadline"), from the README."""
    text = (readme or repo_root() / "README.md").read_text()
    start = text.index(README_SECTION)
    end = text.find("\n## ", start + len(README_SECTION))
    section = text[start : end if end > 0 else None]
    steps: dict[str, list[str]] = {}
    for block in re.findall(r"```bash\n(.*?)```", section, re.DOTALL):
        lines = block.strip().splitlines()
        step = next((s for s in RECIPE_STEPS if lines[0].startswith(s)), None)
        if step is not None:
            steps[step] = [ln for ln in lines[1:] if ln.strip() and not ln.startswith("#")]
    missing = [s for s in RECIPE_STEPS if s not in steps]
    if missing:
        raise AssertionError(f"README.md {README_SECTION!r}: no ```bash block starting {missing}")
    return steps


def readme_student_config(readme: Path | None = None) -> str:
    """The README's nbgrader config for every single-user server (the ```python block that
    sets `c.Exchange.root`)."""
    text = (readme or repo_root() / "README.md").read_text()
    section = text[text.index(README_SECTION) :]
    for block in re.findall(r"```python\n(.*?)```", section, re.DOTALL):
        if "c.Exchange.root" in block:
            return block
    raise AssertionError(f"README.md {README_SECTION!r}: no ```python block sets c.Exchange.root")


#: what every user's server imports: an account that cannot import these cannot take part
PROBE = "import jupyterhub, nbgrader, jupyter_server_proxy, splatcourse"


def unix_users_refused() -> str | None:
    """Why users cannot be separate Unix accounts here (None: they can).

    Root can add accounts; they can take part only if they can run this environment, which a
    checkout or Python under a private home (root's, say) forbids: `nobody` tries it first."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "the tests do not run as root, so they cannot add Unix users"
    if not all(shutil.which(tool) for tool in ("useradd", "userdel", "runuser")):
        return "useradd, userdel or runuser is missing"
    probe = subprocess.run(
        ["runuser", "-u", "nobody", "--", sys.executable, "-c", PROBE],
        cwd="/",
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return f"another user cannot run {sys.executable} with the course: {why}"
    return None


@dataclass
class Hub:
    """JupyterHub on loopback; `stop` removes its processes, its folder and its Unix users."""

    instructor: str
    students: list[str]
    separate_users: bool
    startup_timeout: float = 120.0
    password: str = field(default_factory=lambda: secrets.token_hex(8))
    root: Path = field(init=False)
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="splatcourse-hub-"))
        self.root.chmod(0o755)  # users reach their homes and the exchange through it
        self.exchange = self.root / "exchange"
        self.exchange.mkdir(mode=0o777)
        self.exchange.chmod(0o1777)  # as nbgrader asks of a shared exchange: sticky, open
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_password = secrets.token_hex(16)
        self.log_path = self.root / "jupyterhub.log"
        self._proc: subprocess.Popen | None = None
        self._users: list[str] = []

    @property
    def people(self) -> list[str]:
        return [self.instructor, *self.students]

    def password_of(self, name: str) -> str:
        return self.admin_password if name == self.instructor else self.password

    def home(self, name: str) -> Path:
        return self.root / "home" / name

    def _add_unix_users(self) -> None:
        (self.root / "home").mkdir(mode=0o755)
        for name in self.people:
            subprocess.run(
                ["useradd", "--create-home", "--home-dir", str(self.home(name)), name],
                check=True,
                capture_output=True,
            )
            self._users.append(name)

    def _write_config(self, student_config: str) -> Path:
        etc = self.root / "etc"
        etc.mkdir(mode=0o755)
        names = "" if self.separate_users else ONE_ACCOUNT_NAMES
        (etc / "nbgrader_config.py").write_text(student_config + names)
        for rel, values in LAB_SETTINGS.items():
            path = self.root / "settings" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        bindir = Path(sys.executable).parent
        args = [
            f"--LabApp.user_settings_dir={self.root / 'settings'}",
            "--LabApp.expose_app_in_browser=True",  # the tests drive JupyterLab's commands
        ]
        if not self.separate_users:
            args.append("--ServerApp.allow_root=True")  # every server runs as the test's user
        config = {
            "JupyterHub.ip": "127.0.0.1",
            "JupyterHub.port": self.port,
            "JupyterHub.hub_ip": "127.0.0.1",
            "JupyterHub.hub_port": free_port(),
            "JupyterHub.db_url": f"sqlite:///{self.root / 'jupyterhub.sqlite'}",
            "JupyterHub.cookie_secret_file": str(self.root / "cookie_secret"),
            "JupyterHub.authenticator_class": "shared-password",
            "JupyterHub.spawner_class": "localprocess" if self.separate_users else "simple",
            "ConfigurableHTTPProxy.command": [proxy_command()],
            "ConfigurableHTTPProxy.api_url": f"http://127.0.0.1:{free_port()}",
            "SharedPasswordAuthenticator.user_password": self.password,
            "SharedPasswordAuthenticator.admin_password": self.admin_password,
            "Authenticator.admin_users": [self.instructor],
            "Authenticator.allowed_users": self.people,
            "Spawner.cmd": [str(bindir / "jupyterhub-singleuser")],
            "Spawner.args": args,
            "Spawner.default_url": "/lab",
            "Spawner.start_timeout": self.startup_timeout,
            "Spawner.http_timeout": self.startup_timeout,
            "Spawner.environment": {
                # the course's environment is the single-user image: its tools come first
                "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
                "JUPYTER_CONFIG_PATH": str(etc),  # as /etc/jupyter is in a real image
                "OMP_NUM_THREADS": "1",
            },
            "SimpleLocalProcessSpawner.home_dir_template": str(self.root / "home" / "{username}"),
        }
        path = self.root / "jupyterhub_config.py"
        path.write_text(
            "c = get_config()  # noqa: F821\n"
            + "".join(f"c.{key} = {value!r}\n" for key, value in config.items())
        )
        return path

    def start(self, student_config: str) -> Hub:
        """Start the hub; `student_config` is every single-user server's nbgrader_config.py."""
        if self.separate_users:
            self._add_unix_users()
        config = self._write_config(student_config)
        log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self._log = log
        self._proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(config)],
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its proxy and the users' servers stop with it
        )
        try:
            wait_until_answering(
                self._proc,
                f"{self.url}/hub/api/",
                self.startup_timeout,
                "JupyterHub",
                self.log_tail,
            )
        except TimeoutError:
            self.stop()
            raise
        return self

    def _as(self, name: str, command: list[str]) -> tuple[list[str], dict[str, str]]:
        prefix = ["runuser", "-u", name, "--"] if self.separate_users else []
        env = {**os.environ, "USER": name, "LOGNAME": name, "HOME": str(self.home(name))}
        return prefix + command, env

    def run_as(self, name: str, command: list[str]) -> subprocess.CompletedProcess[str]:
        """`command` as user `name` would run it in a terminal of their own server."""
        command, env = self._as(name, command)
        return subprocess.run(command, cwd=self.home(name), env=env, capture_output=True, text=True)

    def start_as(self, name: str, command: list[str]) -> subprocess.Popen[str]:
        """`command` started in the background as user `name` (stdout piped, for its ready line)."""
        command, env = self._as(name, command)
        return subprocess.Popen(
            command, cwd=self.home(name), env=env, stdout=subprocess.PIPE, text=True
        )

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _stop_leftovers(self) -> None:
        """Single-user servers run in sessions of their own: any the hub left behind (it was
        killed, say) is found by this hub's folder on its command line, as are its kernels
        (their connection files are there), and killed: a server cut off from its hub does
        not always stop on SIGTERM."""
        marker = str(self.root).encode()
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if marker in (proc / "cmdline").read_bytes():
                    os.kill(int(proc.name), signal.SIGKILL)
            except (OSError, ValueError):
                continue

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()  # the hub stops the users' servers and its proxy
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(timeout=10)
        if self._proc is not None:
            self._log.close()
        self._stop_leftovers()
        for name in self._users:
            subprocess.run(["userdel", name], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
