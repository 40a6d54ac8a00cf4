"""Run a student's notebook kernel in a sandbox while nbgrader, the trusted part, stays outside.

nbgrader executes a submission by starting a Jupyter kernel and sending it the cells. Only that
kernel runs student code, so only the kernel is confined. Three modes:

- ``warm`` (default where the grader runs as root): the same sandbox as ``bwrap``, built by
  each kernel itself right after it is forked from a zygote that has already imported torch
  and friends (see ``zygote``); saves about 5 CPU-seconds per submission.
- ``bwrap``: the kernel runs under bubblewrap in fresh mount, PID, IPC, UTS and network
  namespaces. It sees a read-only system (/usr, /etc), the Python install and the course
  package, a private /tmp and home, and one writable scratch folder holding a copy of its own
  files. The course checkout (solutions/, hidden tests, the gradebook, other submissions) is not
  mounted at all. It talks to nbgrader over Unix sockets in the scratch folder.
- ``rlimit`` (fallback when bubblewrap is missing or cannot start): same scratch folder, working
  directory, clean environment and resource limits, but no namespaces: the kernel can still read
  any file its user may read.

Every mode but ``none`` applies resource limits (address space, processes, file size, open
files, no core dumps; ``prlimit``, or ``setrlimit`` in a warm kernel) and, when the grader runs
as root, drops to an unprivileged uid so that the process limit bites and nothing owned by root
can be written.

Used by: every exercise's autograding.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager

from ..paths import ENV_CAPTURES, ENV_SHARED, captures_dir, data_dir, shared_data_dir
from . import guard, zygote

MODES = ("auto", "warm", "bwrap", "rlimit", "none")
GiB = 1024**3


@dataclass(frozen=True)
class Limits:
    """Per-kernel resource limits; env vars SPLATCOURSE_SANDBOX_* override them (see from_env)."""

    memory_bytes: int = 4 * GiB  # address space: torch alone maps ~1 GiB
    processes: int = 64  # per sandbox uid, so a fork bomb stops here
    file_bytes: int = 64 * 1024**2  # largest file the kernel may write
    open_files: int = 512

    @classmethod
    def from_env(cls) -> Limits:
        def get(name: str, default: int) -> int:
            value = os.environ.get(f"SPLATCOURSE_SANDBOX_{name}")
            return int(value) if value else default

        d = cls()
        return cls(
            get("MEMORY", d.memory_bytes),
            get("PROCESSES", d.processes),
            get("FILE_BYTES", d.file_bytes),
            get("OPEN_FILES", d.open_files),
        )


def requested_mode() -> str:
    mode = os.environ.get("SPLATCOURSE_SANDBOX", "auto")
    if mode not in MODES:
        raise ValueError(f"SPLATCOURSE_SANDBOX={mode!r}: expected one of {', '.join(MODES)}")
    return mode


def sandbox_uid(mode: str) -> int | None:
    """The uid kernels run as: only root can switch, and (without bwrap) only if that uid can
    still reach the interpreter (a Python under /root cannot be run by anyone else)."""
    if os.geteuid() != 0 or mode == "none":
        return None
    if mode != "warm" and not shutil.which("setpriv"):  # a warm kernel changes uid itself
        return None
    uid = int(os.environ.get("SPLATCOURSE_SANDBOX_UID", "61000"))
    if mode in ("bwrap", "warm") or _uid_runs_python(uid):
        return uid
    return None


@functools.cache
def _uid_runs_python(uid: int) -> bool:
    cmd = limit_args(Limits(), uid) + [sys.executable, "-c", "pass"]
    try:
        return (
            subprocess.run(cmd, capture_output=True, timeout=60, cwd="/", check=False).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def _python_paths() -> list[Path]:
    """Folders the kernel needs read-only: the interpreter, the venv and this package's source."""
    paths = {
        Path(sys.base_prefix).resolve(),
        Path(sys.prefix).resolve(),
        Path(__file__).resolve().parents[2],
    }
    real_exe = Path(sys.executable).resolve()
    if not any(real_exe.is_relative_to(p) for p in paths):
        paths.add(real_exe.parent)
    return sorted(paths)


def _data_paths() -> list[Path]:
    """The course data the kernel may read: data/, downloaded captures (which an instructor may
    keep elsewhere) and the shared captures."""
    out = []
    for get in (data_dir, captures_dir, shared_data_dir):
        try:
            p = get().resolve()
        except FileNotFoundError:
            continue
        if p.is_dir():
            out.append(p)
    return out


def _bwrap_args(scratch: Path, home: Path, readonly: list[Path]) -> list[str]:
    args = [
        "bwrap",
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-net",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
    ]
    for top in ("usr", "etc"):
        args += ["--ro-bind", f"/{top}", f"/{top}"]
    for top in ("bin", "lib", "lib64", "sbin"):
        p = Path("/" + top)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), str(p)]
        elif p.is_dir():
            args += ["--ro-bind", str(p), str(p)]
    args += ["--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--tmpfs", "/tmp"]
    made: set[Path] = {Path("/"), Path("/tmp")}
    for target in [*readonly, scratch, home]:
        # bwrap makes missing parents 0700; an unprivileged kernel must be able to walk them
        for parent in reversed(target.parents):
            if parent not in made and not any(parent.is_relative_to(r) for r in readonly):
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
    for p in readonly:
        args += ["--ro-bind", str(p), str(p)]
    args += [
        "--bind",
        str(scratch),
        str(scratch),
        "--bind",
        str(home),
        str(home),
        "--chdir",
        str(scratch / "work"),
    ]
    return args


@functools.cache
def bwrap_works() -> bool:
    """Measured, not assumed: containers often forbid the namespaces bubblewrap needs."""
    if not shutil.which("bwrap"):
        return False
    with tempfile.TemporaryDirectory() as tmp:
        scratch, home = Path(tmp) / "s", Path(tmp) / "h"
        (scratch / "work").mkdir(parents=True)
        home.mkdir()
        cmd = _bwrap_args(scratch, home, _python_paths()) + [sys.executable, "-c", "pass"]
        try:
            return subprocess.run(cmd, capture_output=True, timeout=60, check=False).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False


def effective_mode() -> str:
    mode = requested_mode()
    if mode == "auto":
        if zygote.works():
            return "warm"
        return "bwrap" if bwrap_works() else "rlimit"
    if mode == "warm" and not zygote.works():
        raise RuntimeError(
            "SPLATCOURSE_SANDBOX=warm needs root and permission to create "
            "namespaces here; use bwrap (or auto) instead"
        )
    if mode == "bwrap" and not bwrap_works():
        raise RuntimeError(
            "SPLATCOURSE_SANDBOX=bwrap but bubblewrap is missing or cannot create "
            "namespaces here (apt-get install bubblewrap; check user namespaces)"
        )
    return mode


def limit_args(limits: Limits, uid: int | None) -> list[str]:
    """setpriv (drop root) then prlimit: limits are set before any student code runs."""
    cmd: list[str] = []
    if uid is not None:
        cmd += [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--no-new-privs",
            "--bounding-set=-all",
            "--inh-caps=-all",
            "--",
        ]
    cmd += [
        "prlimit",
        f"--as={limits.memory_bytes}",
        f"--nproc={limits.processes}",
        f"--fsize={limits.file_bytes}",
        f"--nofile={limits.open_files}",
        "--core=0",
        "--",
    ]
    return cmd


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def processes_of(uids: range | list[int]) -> list[int]:
    """PIDs of the processes running as any of these uids (what a sandbox left behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid in uids:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def kill_uid(uid: int) -> None:
    """End every process left running as the sandbox uid (a fork bomb's orphans, in rlimit mode)."""
    for pid in processes_of([uid]):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue


def _mpl_cache() -> Path:
    """A matplotlib font cache built once outside the sandbox (building it inside takes ~10 s)."""
    path = Path(tempfile.gettempdir()) / f"splatcourse-mplcache-{os.geteuid()}"
    if not (path / "done").exists():
        path.mkdir(exist_ok=True)
        env = dict(os.environ, MPLCONFIGDIR=str(path))
        subprocess.run(
            [sys.executable, "-c", "import matplotlib.font_manager"],
            env=env,
            capture_output=True,
            check=False,
        )
        os.chmod(path, 0o755)
        for f in path.iterdir():
            os.chmod(f, 0o644)
        (path / "done").touch()
    return path


#: where each kernel gets its own writable copy of the compiled rasterizer's cache
KERNEL_NUMBA_CACHE = "numba-cache"


#: the modules whose compiled kernels the shared cache holds, read as files: importing them
#: would load torch and numba into every grading worker (about 2 CPU-seconds each, which a
#: class graded by two workers on two cores paid in wall time)
_COMPILED_SOURCES = tuple(
    Path(__file__).resolve().parents[1] / "splat3d" / name
    for name in ("kernel.py", "fused_ssim.py")
)


def _cache_version() -> str:
    """Which kernels a built cache holds: a hash of :data:`_COMPILED_SOURCES`."""
    sources = b"".join(p.read_bytes() for p in _COMPILED_SOURCES)
    return hashlib.sha256(sources).hexdigest()[:16]


@functools.cache  # every kernel start asks; a failed build must not be retried each time
def _numba_cache() -> Path:
    """The compiled rasterizer's kernels, compiled once outside the sandbox, readable by all.

    numba only uses a cache folder it can write to, and inside the sandbox the checkout's
    ``data/cache/numba`` is read-only: the kernel would compile for seconds per submission, or
    fall back to the PyTorch rasterizer. So a subprocess compiles (or loads) every kernel
    into this folder, once per version of ``splat3d/kernel.py`` and ``splat3d/fused_ssim.py``
    (the training loss's SSIM); the zygote uses it directly
    and every other kernel gets a writable copy (:func:`_kernel_numba_cache`). Where that
    fails, grading goes on (the kernels fall back to the PyTorch rasterizer) with a warning.
    """
    path = Path(tempfile.gettempdir()) / f"splatcourse-numbacache-{os.geteuid()}"
    done = path / f"done-{_cache_version()}"
    path.mkdir(mode=0o755, exist_ok=True)
    _check_owned(path)
    if not done.exists():
        for old in path.iterdir():  # an earlier version's kernels: every kernel would copy them
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()
        env = dict(_base_env_without_numba(), NUMBA_CACHE_DIR=str(path))
        proc = subprocess.run(
            [sys.executable, "-c", "from splatcourse.splat3d import kernel; kernel.warm_up()"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            warnings.warn(
                f"sandbox: compiling the rasterizer's kernels into {path} failed, graded "
                f"kernels will compile them or use the PyTorch rasterizer: "
                f"{proc.stderr.strip()[-2000:]}",
                RuntimeWarning,
                stacklevel=2,
            )
            return path
        for p in [path, *path.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        done.touch()
    return path


def _check_owned(path: Path) -> None:
    """Compiled code from ``path`` runs in the grader's zygote: refuse a folder in the shared
    temporary directory that someone else made (or may write to)."""
    st = path.lstat()
    if path.is_symlink() or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise RuntimeError(
            f"sandbox: {path} must be a folder owned by uid {os.geteuid()} and writable only "
            f"by it (owner {st.st_uid}, mode {oct(st.st_mode & 0o777)}); remove it and retry"
        )


def _kernel_numba_cache(home: Path) -> Path:
    """A writable copy of :func:`_numba_cache` in the kernel's home (about 2 MB): numba loads
    from it and could write to it, the shared one stays as it was."""
    copy = home / KERNEL_NUMBA_CACHE
    shutil.copytree(_numba_cache(), copy)
    return copy


def _base_env_without_numba() -> dict[str, str]:
    return {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _base_env(mpl: Path) -> dict[str, str]:
    """What every kernel's (and the zygote's) environment holds; nothing of the grader's.
    ``NUMBA_CACHE_DIR`` is the shared compiled cache; a sandboxed kernel gets its own copy."""
    return {
        **_base_env_without_numba(),
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(mpl),
        "NUMBA_CACHE_DIR": str(_numba_cache()),
    }


class SandboxKernelManager(AsyncKernelManager):
    """Starts the kernel inside the sandbox, in a scratch copy of the notebook's folder."""

    _scratch: tempfile.TemporaryDirectory | None = None

    async def _async_pre_start_kernel(self, **kw):  # type: ignore[override]
        self._scratch = tempfile.TemporaryDirectory(prefix="splatkernel-")
        scratch = Path(self._scratch.name)
        os.chmod(scratch, 0o711)
        # Unix sockets instead of TCP: the kernel needs no network, so it gets none
        self.transport = "ipc"
        self.ip = str(scratch / "sock")
        self.connection_file = str(scratch / "kernel.json")
        return await super()._async_pre_start_kernel(**kw)

    async def _async_launch_kernel(self, kernel_cmd, **kw):  # type: ignore[override]
        assert self._scratch is not None
        scratch = Path(self._scratch.name)
        mode = effective_mode()
        limits, uid = Limits.from_env(), sandbox_uid(mode)
        work, home, course = scratch / "work", scratch / "home", scratch / "course"
        source = Path(kw.get("cwd") or os.getcwd())
        shutil.copytree(source, work, symlinks=True)  # the kernel's own files, nothing else
        home.mkdir()
        (course / "autograde").mkdir(parents=True)
        (course / "autograde" / "nbgrader_config.py").write_text("# marker: sandbox course root\n")
        (course / "outputs").mkdir()
        data = _data_paths()
        try:
            (course / "data").symlink_to(data_dir())
        except FileNotFoundError:
            pass
        mpl = _mpl_cache()
        namespaced = mode in ("bwrap", "warm")
        env = {
            **_base_env(mpl),
            "HOME": str(home),
            "TMPDIR": "/tmp" if namespaced else str(home),
            "SPLATCOURSE_ROOT": str(course),
            "NBGRADER_EXECUTION": "autograde",
        }
        if mode != "warm":  # a warm kernel has the compiled kernels from its zygote already
            env["NUMBA_CACHE_DIR"] = str(_kernel_numba_cache(home))
        for var, get in ((ENV_SHARED, shared_data_dir), (ENV_CAPTURES, captures_dir)):
            try:  # the kernel looks where the grader looks
                env[var] = str(get().resolve())
            except FileNotFoundError:
                pass
        kernel_cmd = list(kernel_cmd) + guard.kernel_arguments()
        if uid is not None:
            for p in [scratch, *scratch.rglob("*")]:
                os.lchown(p, uid, uid)
            os.chmod(scratch / "kernel.json", 0o600)
        readonly = [*_python_paths(), *data, mpl]
        if mode == "warm":
            warm = zygote.Zygote.get({**_base_env(mpl), "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
            try:
                args = kernel_cmd[kernel_cmd.index("ipykernel_launcher") + 1 :]
            except ValueError:
                raise RuntimeError(
                    f"warm sandbox: not an ipykernel command: {kernel_cmd}"
                ) from None
            # parent_handle=1: no banner on stdout, no polling for a parent (PID 1 has none)
            args += ["--IPKernelApp.parent_handle=1", "--HistoryManager.enabled=False"]
            prefix, kernel_cmd = (
                [],
                warm.command(
                    {
                        "scratch": str(scratch),
                        "cwd": str(work),
                        "env": env,
                        "argv": args,
                        "uid": uid,
                        "limits": asdict(limits),
                        "readonly": [str(p) for p in readonly],
                    }
                ),
            )
        elif mode == "bwrap":
            prefix = _bwrap_args(scratch, home, readonly) + limit_args(limits, uid)
            # inside a PID namespace the kernel's parent is the namespace's init, which
            # ipykernel would take for "parent died"; --die-with-parent covers that case instead
            kernel_cmd.append("--IPKernelApp.parent_handle=1")
            # an interrupt goes to the whole process group; bwrap itself must not die of it
            # (ipykernel installs its own SIGINT handler while a cell runs)
            kw["preexec_fn"] = _ignore_sigint
        elif mode == "rlimit":
            prefix = limit_args(limits, uid)
        else:
            prefix = []
        kw["cwd"] = str(work)
        kw["env"] = env
        self.log.info("sandbox %s: %s", mode, " ".join(prefix))
        await super()._async_launch_kernel(prefix + kernel_cmd, **kw)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        mode = effective_mode()
        uid = sandbox_uid(mode)
        if uid is not None and mode not in ("bwrap", "warm"):
            kill_uid(uid)  # in a PID namespace, the kernel's end took every child down
        if self._scratch is not None and not restart:
            self._scratch.cleanup()
            self._scratch = None


def prepare_shared() -> str:
    """Once per grading run, before workers start: probe the sandbox and build shared caches."""
    mode = effective_mode()
    _mpl_cache()
    _numba_cache()
    return mode
