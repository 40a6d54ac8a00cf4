"""Pre-warmed grading kernels: fork each sandboxed kernel from a process that imported torch.

A fresh grading kernel spends about 5 CPU-seconds before a student's first line runs: Python
and ipykernel, torch, the compile machinery torch's optimisers load on first use, matplotlib.
On a 2-core grader that is more than the exercises themselves. The zygote pays it once per
worker; every kernel is a ``fork`` of it, so the imported libraries are shared copy-on-write.

Forking must not weaken the sandbox, so each forked kernel builds its own, from scratch, before
any student code exists in it (the same layout as the bubblewrap mode in ``sandbox``):

1. new mount, PID, network, IPC and UTS namespaces (``unshare``); the kernel is PID 1 of its
   PID namespace, so when it ends every process it started ends too;
2. a new root: a tmpfs holding read-only binds of the system, the Python install, the course
   package and data, a private ``/tmp`` and ``/dev``, a fresh ``/proc``, and one writable
   scratch folder with the submission's own files (``pivot_root``; the old root is detached);
3. the sandbox uid, no supplementary groups, no capabilities, ``no_new_privs``, resource limits;
4. fresh random seeds, the kernel's own environment, then ipykernel.

Creating namespaces needs root here (no user namespaces), so ``works()`` probes it once and
the grader falls back to bubblewrap otherwise. The zygote itself never runs student code.

A kernel is started through ``_zygote_stub.py``, a tiny stdlib-only process that jupyter_client
launches like any kernel: it asks the zygote for a kernel, forwards signals to it, and exits
with it. Killing the stub kills the kernel.

Used by: every exercise's autograding in warm mode.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import functools
import json
import os
import platform
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

STUB = Path(__file__).with_name("_zygote_stub.py")

_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
_CLONE_NEWPID, _CLONE_NEWNET = 0x20000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MNT_DETACH = 2
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _ok(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _ok(
        _libc().mount(
            src and src.encode(),
            target.encode(),
            fstype and fstype.encode(),
            ctypes.c_ulong(flags),
            data.encode() or None,
        ),
        f"mount {target}",
    )


def _prctl(option: int, value: int) -> None:
    _ok(_libc().prctl(option, ctypes.c_ulong(value), 0, 0, 0), "prctl")


# ----------------------------------------------------------------------------- in the kernel


def _bind(root: str, path: str, readonly: bool) -> None:
    target = root + path
    if os.path.isdir(path):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        open(target, "a").close()
    _mount(path, target, None, _MS_BIND)
    if readonly:
        _mount(None, target, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)


def _build_root(req: dict) -> None:
    """The new root filesystem (see the module docstring); runs as PID 1 of the new namespace."""
    root = req["root"]
    os.umask(0o022)
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)  # nothing we mount leaks to the host
    _mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755")
    for top in ("bin", "lib", "lib64", "sbin"):
        p = "/" + top
        if os.path.islink(p):
            os.symlink(os.readlink(p), root + p)
        elif os.path.isdir(p):
            _bind(root, p, readonly=True)
    for p in ("/usr", "/etc"):
        _bind(root, p, readonly=True)
    os.makedirs(root + "/tmp")
    _mount("tmpfs", root + "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777")
    os.makedirs(root + "/dev")
    _mount("tmpfs", root + "/dev", "tmpfs", _MS_NOSUID, "mode=0755")
    for dev in _DEVICES:
        if os.path.exists("/dev/" + dev):
            _bind(root, "/dev/" + dev, readonly=False)
    os.makedirs(root + "/dev/shm")
    _mount("tmpfs", root + "/dev/shm", "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777")
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"{root}/dev/{name}")
    os.makedirs(root + "/proc")
    _mount("proc", root + "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    done: list[str] = []
    for path in sorted(req["readonly"], key=len):
        if not any(path == d or path.startswith(d.rstrip("/") + "/") for d in done):
            _bind(root, path, readonly=True)
            done.append(path)
    _bind(root, req["scratch"], readonly=False)
    old = root + "/.oldroot"
    os.makedirs(old)
    _ok(
        _libc().syscall(_SYS_PIVOT_ROOT[platform.machine()], root.encode(), old.encode()),
        "pivot_root",
    )
    os.chdir("/")
    _ok(_libc().umount2(b"/.oldroot", _MNT_DETACH), "umount old root")
    os.rmdir("/.oldroot")


def _drop_privileges(req: dict) -> None:
    import resource

    limits = req["limits"]
    for res, value in (
        (resource.RLIMIT_AS, limits["memory_bytes"]),
        (resource.RLIMIT_NPROC, limits["processes"]),
        (resource.RLIMIT_FSIZE, limits["file_bytes"]),
        (resource.RLIMIT_NOFILE, limits["open_files"]),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(res, (value, value))
    uid = req.get("uid")
    if not uid:  # root inside the namespaces could undo them: never run a kernel as root
        raise RuntimeError(f"warm sandbox: no unprivileged uid to run the kernel as ({uid!r})")
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)  # from root to another uid: every capability is dropped
    # changing uid clears the parent-death signal: set it again
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)


def _reseed() -> None:
    """A fork shares its parent's random state; give each kernel what a fresh process has."""
    import random

    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    if "torch" in sys.modules:
        sys.modules["torch"].seed()  # a fresh process draws its seed from the OS too


def _run_kernel(req: dict, fds: list[int]) -> None:
    for i, fd in enumerate(fds[:3]):
        os.dup2(fd, i)
    os.closerange(3, 1 << 16)
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    sys.dont_write_bytecode = True
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _reseed()
    sys.argv = ["ipykernel_launcher", *req["argv"]]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


# ------------------------------------------------------------------------------- the zygote


def _send(conn: socket.socket, **msg) -> None:
    try:
        conn.sendall((json.dumps(msg) + "\n").encode())
    except OSError:
        pass


def _session(conn: socket.socket, req: dict, fds: list[int]) -> None:
    """One kernel: runs in a fork of the zygote, outside the sandbox, until the kernel ends."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    _ok(
        _libc().unshare(
            _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWNET | _CLONE_NEWIPC | _CLONE_NEWUTS
        ),
        "unshare",
    )
    status_r, status_w = os.pipe()
    kid = os.fork()
    if kid == 0:  # PID 1 of the new PID namespace: becomes the kernel
        try:
            os.close(status_r)
            conn.close()
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            _libc().sethostname(b"sandbox", 7)
            _build_root(req)
            _drop_privileges(req)
            # fails (and so ends this process) if the session died before the death signal was set
            os.write(status_w, b"ok")
            os.close(status_w)
        except BaseException as err:
            os.write(status_w, f"{type(err).__name__}: {err}".encode()[:4000])
            os._exit(70)
        try:
            _run_kernel(req, fds)
        finally:
            os._exit(0)
    os.close(status_w)
    for fd in fds:
        os.close(fd)
    status = os.read(status_r, 4096).decode(errors="replace")
    os.close(status_r)
    if status != "ok":
        _send(conn, error=f"could not build the kernel sandbox: {status or 'no answer'}")
        os.kill(kid, signal.SIGKILL)
        os.waitpid(kid, 0)
        return
    _send(conn, pid=kid)
    while True:
        done, wait_status = os.waitpid(kid, os.WNOHANG)
        if done:
            _send(conn, exit=os.waitstatus_to_exitcode(wait_status))
            return
        if select.select([conn], [], [], 0.2)[0] and not conn.recv(4096):
            os.kill(kid, signal.SIGKILL)  # the stub is gone: so is its kernel
            os.waitpid(kid, 0)
            return


def _warm_up() -> None:
    """Import and exercise what every exercise notebook uses, so that no kernel has to."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot
    import numpy.testing  # noqa: F401 (the grading guard's snapshot takes these)
    import torch
    import torch.testing
    import tqdm.auto  # noqa: F401
    from ipykernel import debugger, ipkernel, kernelapp, zmqshell  # noqa: F401

    import splatcourse.checks
    import splatcourse.grading.guard
    import splatcourse.splat3d
    import splatcourse.toy2d  # noqa: F401
    from splatcourse.splat3d.backend import compiled_available

    compiled_available()  # the compiled rasterizer, compiled or loaded from its cache, once
    x = torch.zeros(4, requires_grad=True)
    opt = torch.optim.Adam([x], lr=0.1)  # loads torch._dynamo: 2 s on first use
    (x - 1).square().sum().backward()
    opt.step()
    opt.zero_grad()


def _recv_request(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    while not data.endswith(b"\n"):
        more = conn.recv(1 << 16)
        if not more:
            raise ConnectionError("request cut short")
        data += more
    return json.loads(data), fds


def serve(path: str) -> None:
    """The zygote's loop: one forked session per request; prints 'ready' once warm."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # dies with the grading worker that started it
    _warm_up()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    os.chmod(path, 0o600)
    server.listen(16)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # sessions are reaped by the kernel
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        try:
            req, fds = _recv_request(conn)
        except (OSError, ValueError) as err:
            _send(conn, error=f"bad request: {err}")
            conn.close()
            continue
        if os.fork() == 0:
            server.close()
            try:
                _session(conn, req, fds)
            except BaseException as err:
                _send(conn, error=f"{type(err).__name__}: {err}")
            finally:
                os._exit(0)
        conn.close()
        for fd in fds:
            os.close(fd)


# ------------------------------------------------------------------------------ the grader


class Zygote:
    """One warm zygote per grading process, started on first use."""

    _instance: Zygote | None = None
    _lock = threading.Lock()

    def __init__(self, env: dict[str, str]) -> None:
        self.dir = tempfile.mkdtemp(prefix="splatcourse-zygote-")  # 0700: root's only
        self.socket = os.path.join(self.dir, "zygote.sock")
        self.root = os.path.join(self.dir, "root")  # mount point of every kernel's new root
        os.mkdir(self.root)
        os.mkdir(os.path.join(self.dir, "home"))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "splatcourse.grading.zygote", self.socket],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd="/",
            env={**env, "HOME": os.path.join(self.dir, "home")},
        )
        atexit.register(self.close)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            self.close()
            raise RuntimeError("the kernel zygote did not start (see its stderr above)")

    def close(self) -> None:
        """Stop the zygote (its kernels follow it) and remove its folder."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    @classmethod
    def get(cls, env: dict[str, str]) -> Zygote:
        with cls._lock:
            if cls._instance is None or cls._instance.proc.poll() is not None:
                if cls._instance is not None:
                    cls._instance.close()
                cls._instance = cls(env)
            return cls._instance

    def command(self, request: dict) -> list[str]:
        """The kernel command jupyter_client launches: the stub, which asks this zygote."""
        return [
            sys.executable,
            "-I",
            "-S",
            str(STUB),
            self.socket,
            json.dumps({**request, "root": self.root}),
        ]


@functools.cache
def works() -> bool:
    """Measured, not assumed: root, a known architecture and permission to unshare."""
    if os.geteuid() != 0 or platform.machine() not in _SYS_PIVOT_ROOT or sys.platform != "linux":
        return False
    code = (
        "import ctypes, os, sys; libc = ctypes.CDLL(None, use_errno=True); "
        f"sys.exit(0 if libc.unshare({_CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWNET}) == 0 "
        "else 1)"
    )
    try:
        return (
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, timeout=60, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


if __name__ == "__main__":
    serve(sys.argv[1])
