"""The pre-warmed kernel sandbox (``warm`` mode): what a forked kernel can see and do, and what
a kernel in every sandbox mode finds of the course (paths, manifest, the real capture).

Each test starts real kernels through ``SandboxKernelManager``, the class nbgrader uses, and asks
them questions. The hostile-submission suite covers the same ground end to end through nbgrader;
these tests pin the individual properties, fast, with a clear message when one breaks.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

from splatcourse.capture import COURSE_CAPTURE, load_manifest
from splatcourse.grading import sandbox, zygote
from splatcourse.paths import repo_root, shared_data_dir

pytestmark = pytest.mark.slow

UID = 63000  # not the hostile suite's or a real grader's uids
#: what each sandbox mode needs from this machine (rlimit runs anywhere)
NEEDS = {
    "warm": (zygote.works, "needs root and namespaces"),
    "bwrap": (sandbox.bwrap_works, "bubblewrap missing or blocked"),
}


@pytest.fixture(autouse=True)
def sandbox_mode(request, monkeypatch):
    """``warm``, unless a test asks for another mode (``parametrize(..., indirect=True)``);
    skipped where this machine cannot run that mode."""
    mode = getattr(request, "param", "warm")
    works, why = NEEDS.get(mode, (lambda: True, ""))
    if not works():
        pytest.skip(f"{mode} sandbox: {why}")
    monkeypatch.setenv("SPLATCOURSE_SANDBOX", mode)
    monkeypatch.setenv("SPLATCOURSE_SANDBOX_UID", str(UID))
    return mode


async def _start(folder: Path):
    km = sandbox.SandboxKernelManager(kernel_name="python3")
    await km.start_kernel(cwd=str(folder))
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=120)
    return km, kc


async def _run(kc, code: str, timeout: float = 60) -> tuple[str, str | None]:
    """(stdout, error name) of one cell."""
    msg_id = kc.execute(code)
    out, err = [], None
    while True:
        msg = await kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "stream":
            out.append(msg["content"]["text"])
        elif kind == "error":
            err = msg["content"]["ename"]
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(out), err


async def _stop(km, kc) -> None:
    kc.stop_channels()
    await km.shutdown_kernel(now=True)


def _one_cell(folder: Path, code: str, timeout: float = 60) -> tuple[str, str | None]:
    """(stdout, error name) of `code` run as the only cell of a fresh sandboxed kernel."""

    async def go():
        km, kc = await _start(folder)
        try:
            return await _run(kc, code, timeout=timeout)
        finally:
            await _stop(km, kc)

    return asyncio.run(go())


def _facts(folder: Path) -> dict:
    """What a kernel in folder reports about its world."""
    code = f"""
import json, os, socket, torch, numpy
def writable(p):
    try:
        open(p, "w").close(); os.remove(p); return True
    except OSError:
        return False
print(json.dumps({{
    "uid": os.getuid(), "pid": os.getpid(), "host": socket.gethostname(),
    "cwd_files": sorted(os.listdir(".")), "pids": [p for p in os.listdir("/proc") if p.isdigit()],
    "sees_solutions": os.path.exists({str(repo_root() / "solutions")!r}),
    "sees_autograde": os.path.exists({str(repo_root() / "autograde")!r}),
    "package_writable": writable({str(Path(zygote.__file__).with_name("x.tmp"))!r}),
    "etc_writable": writable("/etc/x.tmp"), "cwd_writable": writable("here.tmp"),
    "torch_seed": torch.initial_seed(), "numpy_draw": float(numpy.random.rand()),
    "env_keys": sorted(os.environ), "root_files": sorted(os.listdir("/")),
}}))
"""

    out, err = _one_cell(folder, code)
    assert err is None, out
    return json.loads(out)


def test_a_forked_kernel_lives_in_its_own_sandbox(tmp_path):
    (tmp_path / "mine.txt").write_text("my answer")
    first, second = _facts(tmp_path), _facts(tmp_path)
    assert first["uid"] == UID and first["pid"] == 1 and first["host"] == "sandbox"
    assert first["pids"] == ["1"], "the kernel must see no process but its own"
    assert first["cwd_files"] == ["mine.txt"]
    assert not first["sees_solutions"] and not first["sees_autograde"]
    assert not first["package_writable"] and not first["etc_writable"]
    assert first["cwd_writable"]
    assert "SPLATCOURSE_SANDBOX" not in first["env_keys"], "the grader's environment leaked in"
    assert ".oldroot" not in first["root_files"]
    # two forks of one zygote must not share random state
    assert first["torch_seed"] != second["torch_seed"]
    assert first["numpy_draw"] != second["numpy_draw"]


def test_interrupt_reaches_the_kernel_and_it_survives(tmp_path):
    async def go():
        km, kc = await _start(tmp_path)
        try:
            msg_id = kc.execute("import time\ntime.sleep(60)")
            await asyncio.sleep(1.0)
            t0 = time.perf_counter()
            await km.interrupt_kernel()
            errors = []
            while True:  # until the interrupted cell reports idle
                msg = await kc.get_iopub_msg(timeout=30)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "error":
                    errors.append(msg["content"]["ename"])
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    break
            assert errors == ["KeyboardInterrupt"]
            assert time.perf_counter() - t0 < 10
            out, err = await _run(kc, "print(6 * 7)")
            assert (out.strip(), err) == ("42", None)
        finally:
            await _stop(km, kc)

    asyncio.run(go())


def test_killing_the_stub_kills_the_kernel_and_its_children(tmp_path):
    async def go():
        km, kc = await _start(tmp_path)
        # a child that would outlive a careless sandbox
        out, err = await _run(
            kc, "import subprocess, os\np = subprocess.Popen(['sleep', '300'])\nprint(p.pid)"
        )
        assert err is None, out
        kc.stop_channels()
        stub = km.provisioner.process
        os.killpg(stub.pid, signal.SIGKILL)  # what jupyter_client does to a hung kernel
        stub.wait()
        deadline = time.time() + 15
        while time.time() < deadline and sandbox.processes_of([UID]):
            await asyncio.sleep(0.2)
        assert not sandbox.processes_of([UID]), "kernel processes survived their stub"
        await km.shutdown_kernel(now=True)

    asyncio.run(go())


def test_a_kernel_that_exits_ends_its_stub(tmp_path):
    async def go():
        km, kc = await _start(tmp_path)
        kc.execute("import os; os._exit(3)")
        stub = km.provisioner.process
        for _ in range(100):
            if stub.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert stub.poll() == 3
        kc.stop_channels()
        await km.shutdown_kernel(now=True)

    asyncio.run(go())


def test_kernels_die_with_their_zygote(tmp_path):
    """A grading worker killed at its time limit takes its zygote down: no kernel may linger."""

    async def go():
        km, kc = await _start(tmp_path)
        out, err = await _run(kc, "import subprocess\nsubprocess.Popen(['sleep', '300'])")
        assert err is None, out
        assert len(sandbox.processes_of([UID])) >= 2
        warm = zygote.Zygote._instance
        assert warm is not None
        warm.proc.kill()
        warm.proc.wait()
        deadline = time.time() + 15
        while time.time() < deadline and sandbox.processes_of([UID]):
            await asyncio.sleep(0.2)
        assert not sandbox.processes_of([UID]), "kernels outlived their zygote"
        kc.stop_channels()
        await km.shutdown_kernel(now=True)

    asyncio.run(go())


@pytest.mark.parametrize("sandbox_mode", ["warm", "bwrap", "rlimit"], indirect=True)
def test_a_sandboxed_kernel_finds_the_course_paths_and_the_real_capture(sandbox_mode, tmp_path):
    """The sandbox hands the kernel a scratch course root; through it the kernel must still find
    the manifest, and so load the capture at the course resolution, not its native 512x341."""
    if not (shared_data_dir() / COURSE_CAPTURE).is_dir():
        pytest.skip(f"the real capture is not at {shared_data_dir() / COURSE_CAPTURE}")
    entry = load_manifest()[COURSE_CAPTURE]
    assert entry.default_width is not None, "the manifest must say the course resolution"
    code = f"""
import json, os
from splatcourse import paths
from splatcourse.capture import load_capture, load_manifest
manifest = paths.manifest_path()
entry = load_manifest()[{COURSE_CAPTURE!r}] if manifest.is_file() else None
cap = load_capture({COURSE_CAPTURE!r}, fallback=False, verbose=False)
print(json.dumps({{
    "root_env": os.environ.get("SPLATCOURSE_ROOT"), "repo_root": str(paths.repo_root()),
    "manifest": str(manifest), "manifest_exists": manifest.is_file(),
    "default_width": entry and entry.default_width,
    "name": cap.name, "source": cap.source, "shape": list(cap.images.shape),
}}))
"""

    out, err = _one_cell(tmp_path, code)
    assert err is None, f"the {sandbox_mode} kernel raised {err}: {out}"
    seen = json.loads(out)
    assert seen["repo_root"] == seen["root_env"], "the kernel must use the sandbox's course root"
    assert seen["manifest_exists"], f"no manifest inside the {sandbox_mode} kernel: {seen}"
    assert seen["default_width"] == entry.default_width
    assert seen["name"] == COURSE_CAPTURE
    assert Path(seen["source"]) == shared_data_dir() / COURSE_CAPTURE
    width = seen["shape"][2]  # images are [N, H, W, 3]
    assert width == entry.default_width, (
        f"{sandbox_mode} kernel loaded the capture {width} px wide, the manifest says "
        f"{entry.default_width}: {seen}"
    )


@pytest.mark.parametrize("sandbox_mode", ["warm", "bwrap", "rlimit"], indirect=True)
def test_a_sandboxed_kernel_renders_on_the_compiled_rasterizer(sandbox_mode, tmp_path):
    """The checkout's numba cache is read-only in a sandbox: the kernel must still load the
    compiled rasterizer from a cache (built outside, once), not compile it, nor fall back."""
    code = """
import json, os
from splatcourse.splat3d import backend, fused_ssim, kernel
ok, why = backend.compiled_available()
ks = [k for m in (kernel, fused_ssim) for k in vars(m).values() if hasattr(k, "signatures")]
print(json.dumps({"ok": ok, "why": why, "backend": backend.resolve_backend(),
                  "misses": sum(sum(k.stats.cache_misses.values()) for k in ks)}))
"""

    out, err = _one_cell(tmp_path, code)
    assert err is None, f"the {sandbox_mode} kernel raised {err}: {out}"
    seen = json.loads(out.strip().splitlines()[-1])
    assert (seen["ok"], seen["backend"]) == (True, "compiled"), f"{seen['why']}; {out}"
    assert seen["misses"] == 0, f"the {sandbox_mode} kernel compiled the rasterizer: {seen}"


def test_the_shared_numba_cache_must_be_the_graders_own(tmp_path):
    # its compiled code runs in the zygote: a folder others may write to is refused
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o755)
    sandbox._check_owned(mine)
    os.chmod(mine, 0o777)
    with pytest.raises(RuntimeError, match=r"writable only by it"):
        sandbox._check_owned(mine)


def test_a_new_version_of_the_kernels_replaces_the_old_cache(tmp_path, monkeypatch):
    # every sandboxed kernel copies the shared cache: an old version's files must not pile up
    import subprocess

    monkeypatch.setattr(sandbox.tempfile, "gettempdir", lambda: str(tmp_path))
    shared = tmp_path / f"splatcourse-numbacache-{os.geteuid()}"
    (shared / "splat3d_old").mkdir(parents=True, mode=0o755)
    (shared / "splat3d_old" / "kernel._row_lists-171.py311.nbi").write_text("stale")
    (shared / "done-0123456789abcdef").touch()
    built = []

    def fake_build(cmd, env, **_kw):  # instead of compiling for seconds: one new file
        built.append(env["NUMBA_CACHE_DIR"])
        (Path(env["NUMBA_CACHE_DIR"]) / "splat3d_new").mkdir()
        (Path(env["NUMBA_CACHE_DIR"]) / "splat3d_new" / "kernel.nbi").write_text("new")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(sandbox.subprocess, "run", fake_build)
    assert sandbox._numba_cache.__wrapped__() == shared
    assert built == [str(shared)]
    left = sorted(p.name for p in shared.iterdir())
    assert left[1:] == ["splat3d_new"] and left[0].startswith("done-")
    assert left[0] != "done-0123456789abcdef"
    assert sandbox._numba_cache.__wrapped__() == shared and len(built) == 1  # built once


def test_a_grading_worker_finds_the_shared_cache_without_loading_torch(tmp_path):
    # Every grading worker asks for the shared cache. Importing the kernels to find their files
    # loaded torch and numba into each worker (about 2 CPU-seconds): on two cores, two workers
    # took 20 s instead of 15-16 for four submissions. It is found by reading the files.
    import subprocess
    import sys

    from splatcourse.splat3d import fused_ssim, kernel

    modules = [Path(m.__file__).resolve() for m in (kernel, fused_ssim)]
    assert list(sandbox._COMPILED_SOURCES) == modules
    shared = tmp_path / f"splatcourse-numbacache-{os.geteuid()}"
    (shared / "splat3d_built").mkdir(parents=True, mode=0o755)  # a rebuild would remove it
    (shared / f"done-{sandbox._cache_version()}").touch()  # built already
    code = (
        "import json, sys\n"
        "from splatcourse.grading import execute, instructor, sandbox, worker\n"
        "path = sandbox._numba_cache()\n"
        "print(json.dumps([str(path), [m for m in ('torch', 'numba') if m in sys.modules]]))\n"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    path, loaded = json.loads(out.strip().splitlines()[-1])
    assert path == str(shared), "the worker looked elsewhere"
    assert (shared / "splat3d_built").is_dir(), "the worker rebuilt a cache that was built"
    assert loaded == [], f"finding the cache loaded {loaded} into the grading worker"
