"""Hostile submissions, graded through the real pipeline (nbgrader + sandboxed kernel).

Two honest students are graded first; then one batch of hostile students (infinite loop, memory
and fork bombs, exits, tampering, snooping, vandalism, output floods, broken files) is graded in
a single `autograde` run with two workers. Each hostile student must get the grade its honest
content deserves, and the honest students' grades, files and the gradebook must be untouched.
Exercise 1 is the vehicle (its solution grades in seconds). The whole suite runs once per
namespace sandbox this machine supports: ``warm`` (kernels forked from a pre-warmed zygote that
build their own sandbox) and ``bwrap`` (bubblewrap); the ``rlimit`` fallback is weaker by design.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import nbformat
import pytest

from splatcourse.grading import instructor, sandbox, zygote
from splatcourse.grading.harness import (
    apply,
    cell_scores,
    completed,
    copy_course,
    mutants_for,
    notebooks,
    write_submission,
)

pytestmark = pytest.mark.slow

A = "ex01_toy_splats"
NB = f"{A}.ipynb"
FULL = 10.0
RESULTS_POINTS = 2.0  # test_results; the `results` answer cell is the last one
CELL_TIMEOUT = 60  # generous: a loaded CI machine must not time out honest cells


def _set(nb, grade_id: str, source: str):
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = source
            return nb
    raise AssertionError(f"no cell {grade_id}")


def _solution(course):
    return completed(course, A)[NB]


def _results_cell(prelude: str) -> str:
    """A results cell that runs `prelude` first: if the prelude raises, `results` is missing."""
    return prelude + "\nresults = {n: fit(target, n)[1] for n in (4, 16, 64)}\n"


RENDER_POINTS = 4.0  # test_render_visible and test_render_hidden
FIT_POINTS = 6.0  # test_fit_visible, test_fit_hidden and test_results
NO_HALF = ("torch.exp(-0.5 * d2 / var)", "torch.exp(-d2 / var)")  # a wrong render (a mutant's)
_CHECKS = "('check_close', 'check_tensor', 'check_number', 'fail')"
#: answer-cell preludes that, before the guard reset them, made every later check pass
FORGERIES = {
    # the function objects stay, their code is swapped
    "code_swap": (
        "from splatcourse import checks as _c\n_noop = lambda *a, **k: None\n"
        f"for _n in {_CHECKS}:\n    getattr(_c, _n).__code__ = _noop.__code__\n"
    ),
    # every later cell that checks something, or calls the guard, becomes `pass`
    "input_transformer": (
        "def _neuter(lines):\n"
        "    hit = any('checks.' in l or 'guard' in l for l in lines)\n"
        "    return ['pass\\n'] if hit else lines\n"
        "get_ipython().input_transformers_post.append(_neuter)\n"
    ),
    # every later cell is wrapped in try/except BaseException
    "ast_transformer": (
        "import ast\nclass _Swallow(ast.NodeTransformer):\n"
        "    def visit_Module(self, node):\n"
        "        catch = ast.ExceptHandler(type=ast.Name('BaseException', ast.Load()), name=None,\n"
        "                                  body=[ast.Pass()])\n"
        "        node.body = [ast.Try(body=node.body or [ast.Pass()], handlers=[catch], orelse=[],\n"
        "                             finalbody=[])]\n"
        "        return ast.fix_missing_locations(node)\n"
        "get_ipython().ast_transformers.append(_Swallow())\n"
    ),
    # the checks are patched again after the guard, just before every cell
    "event_hook": (
        "from splatcourse import checks as _c\n"
        f"def _patch(*a):\n    for _n in {_CHECKS}:\n"
        "        setattr(_c, _n, lambda *a, **k: None)\n"
        "get_ipython().events.register('pre_run_cell', _patch)\n"
    ),
}
#: a fit that never optimises, reporting a made-up MSE
FIT_REPORTING_NUMBERS = (
    "def fit(target, n_gaussians, steps=REFERENCE_STEPS, lr=REFERENCE_LR, seed=0):\n"
    "    s = init_splats(n_gaussians, seed=seed)\n"
    "    return {'means': s['means'], 'log_scales': s['log_scales'],\n"
    "            'weights': s['weights'][:, 0]}, 1e-6 / n_gaussians\n"
)
#: a fit that does nothing (zero weights), honest about its MSE, against a target made zero
FIT_ON_ZEROED_TARGET = (
    "def fit(target, n_gaussians, steps=REFERENCE_STEPS, lr=REFERENCE_LR, seed=0):\n"
    "    s = init_splats(n_gaussians, seed=seed)\n"
    "    p = {'means': s['means'], 'log_scales': s['log_scales'], 'weights': torch.zeros(n_gaussians)}\n"
    "    return p, ((render(**p, grid=pixel_grid(target.shape[0])) - target) ** 2).mean().item()\n"
    "target = torch.zeros_like(target)\n"
)
#: the course's renderer and fit, copied through their code objects
RENDER_COPIED = (
    "import types\nfrom splatcourse import toy2d as _t\n"
    "_sep = types.FunctionType(_t.render_splats_separable.__code__, _t.__dict__, 'mine',\n"
    "                          _t.render_splats_separable.__defaults__)\n"
    "def render(means, log_scales, weights, grid):\n"
    "    return _sep(means, log_scales, weights, grid.shape[0])\n"
)
FIT_COPIED = (
    "import types\nfrom splatcourse import toy2d as _t\n"
    "_fit = types.FunctionType(_t.fit_splats.__code__, _t.__dict__, 'mine',\n"
    "                          _t.fit_splats.__defaults__)\n"
    "def fit(target, n_gaussians, steps=REFERENCE_STEPS, lr=REFERENCE_LR, seed=0):\n"
    "    r = _fit(target, n_gaussians, seed=seed, steps=steps, progress=False)\n"
    "    p = {k: r.params[k] for k in ('means', 'log_scales')}\n"
    "    return {**p, 'weights': r.params['weights'].reshape(-1)}, r.mse\n"
)
#: printed by the student's fit: the source of the (hidden) test cell that called it
PRINT_CALLER = (
    "    import inspect, linecache\n"
    "    print(''.join(linecache.getlines(inspect.currentframe().f_back.f_code.co_filename)))\n"
)
#: a line of ex01's hidden fit test that must never reach a feedback page
HIDDEN_LINE = "_want = _ref.fit_splats(_target, _n, seed=3, steps=150, progress=False).mse"


def _prepend(nb, grade_id: str, prelude: str, old: str = "", new: str = ""):
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            assert old in cell.source, (grade_id, old)
            cell.source = prelude + cell.source.replace(old, new)
            return nb
    raise AssertionError(f"no cell {grade_id}")


def forged_answers(course, put) -> None:
    """Each forged answer of issue 15: a wrong part plus a trick that used to hide it."""
    for student, prelude in FORGERIES.items():
        put(student, _prepend(_solution(course), "render", prelude, *NO_HALF), FULL - RENDER_POINTS)
    put(
        "reported_numbers", _set(_solution(course), "fit", FIT_REPORTING_NUMBERS), FULL - FIT_POINTS
    )
    put("setup_rebind", _set(_solution(course), "fit", FIT_ON_ZEROED_TARGET), FULL - FIT_POINTS)
    copied = _set(_set(_solution(course), "render", RENDER_COPIED), "fit", FIT_COPIED)
    put("copied_reference", copied, 2.0)  # only the visible tests, which forbid nothing
    start = "    start = init_splats(n_gaussians, seed=seed)\n"
    put("prints_hidden", _prepend(_solution(course), "fit", "", start, PRINT_CALLER + start), FULL)


def hostile_submissions(course, subs: Path, honest: Path) -> dict[str, float]:
    """Write every hostile student's folder; returns the score each must get."""
    root = course.root
    expect: dict[str, float] = {}

    def put(student: str, nb, score: float, name: str = NB) -> None:
        write_submission(subs, student, A, {name: nb})
        expect[student] = score

    put(
        "infinite_loop",
        _set(_solution(course), "results", "while True:\n    pass\n"),
        FULL - RESULTS_POINTS,
    )
    put(
        "ignores_interrupt",
        _set(
            _solution(course),
            "results",
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n",
        ),
        FULL - RESULTS_POINTS,
    )
    put(
        "memory_bomb",
        _set(
            _solution(course),
            "results",
            _results_cell("hog = [bytearray(256 * 1024**2) for _ in range(64)]  # 16 GB"),
        ),
        FULL - RESULTS_POINTS,
    )
    put(
        "fork_bomb",
        _set(
            _solution(course),
            "results",
            _results_cell(
                "import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(3600)\n"
                "        os._exit(0)"
            ),
        ),
        FULL - RESULTS_POINTS,
    )
    put(
        "sys_exit",
        _set(_solution(course), "results", _results_cell("import sys\nsys.exit(3)")),
        FULL - RESULTS_POINTS,
    )
    put(
        "os_exit",
        _set(_solution(course), "results", _results_cell("import os\nos._exit(0)")),
        FULL - RESULTS_POINTS,
    )
    # the kernel kills itself in the first answer cell: nothing after it runs
    put(
        "kill_kernel",
        _set(
            _solution(course), "render", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"
        ),
        0.0,
    )
    # importing something missing leaves `render` undefined, and every test needs it (the hidden
    # fit test keeps the student's render aside before swapping in the reference one)
    sol = _solution(course)
    render_src = next(
        c.source
        for c in sol.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "render"
    )
    put("import_error", _set(sol, "render", "import no_such_module_xyz\n" + render_src), 0.0)
    # wrong answers, plus every trick to make the checks pass anyway
    cheat = notebooks(course.exercises / A)[NB]
    _set(
        cheat,
        "render",
        (
            "import types\nimport numpy as np\nimport torch\n"
            "from splatcourse import checks as _c\n"
            "def _ok(*a, **k):\n    return True\n"
            "for _n in ('check_close', 'check_tensor', 'check_number', 'fail'):\n"
            "    setattr(_c, _n, lambda *a, **k: None)\n"
            "np.allclose = torch.allclose = torch.equal = _ok\n"
            "checks = types.SimpleNamespace(check_close=_ok, check_tensor=_ok, check_number=_ok,\n"
            "                               forbid=_c.forbid)\n"
            "def render(means, log_scales, weights, grid):\n"
            "    return torch.zeros(grid.shape[:2])\n"
        ),
    )
    _set(
        cheat,
        "fit",
        (
            "def fit(target, n_gaussians, steps=REFERENCE_STEPS, lr=REFERENCE_LR, seed=0):\n"
            "    s = init_splats(n_gaussians, seed=seed)\n"
            "    return {'means': s['means'], 'log_scales': s['log_scales'],\n"
            "            'weights': s['weights'][:, 0]}, 1e9\n"
        ),
    )
    _set(cheat, "results", "results = {4: 0.0, 16: 0.0, 64: -1.0}\n")
    put("monkeypatch", cheat, 0.0)
    # snooping and vandalism: the results cell succeeds only if the sandbox leaks
    secret = [
        root / "solutions" / A / NB,
        root / "autograde" / "gradebook.db",
        root / "autograde" / "submitted" / "honest" / A / NB,
    ]
    put(
        "read_solutions",
        _set(
            _solution(course),
            "results",
            _results_cell(
                f"leaked = []\nfor p in {[str(p) for p in secret]!r}:\n"
                "    try:\n        leaked.append(open(p, 'rb').read(100))\n    except OSError:\n"
                "        pass\nassert leaked, 'nothing to read: the sandbox held'"
            ),
        ),
        FULL - RESULTS_POINTS,
    )
    victims = [
        root / "autograde" / "gradebook.db",
        root / "autograde" / "autograded" / "honest" / A / NB,
        root / "autograde" / "submitted" / "honest" / A / NB,
        honest / "honest" / A / NB,
    ]
    put(
        "vandal",
        _set(
            _solution(course),
            "results",
            _results_cell(
                f"broke = 0\nfor p in {[str(p) for p in victims]!r}:\n"
                "    try:\n        open(p, 'wb').write(b'vandalised')\n        broke += 1\n"
                "    except OSError:\n        pass\nassert broke, 'nothing writable: the sandbox held'"
            ),
        ),
        FULL - RESULTS_POINTS,
    )
    put(
        "output_flood",
        _set(
            _solution(course),
            "results",
            _results_cell("import sys\nfor _ in range(10**6):\n    print('x' * 10000)  # 10 GB"),
        ),
        FULL - RESULTS_POINTS,
    )
    # test cells emptied and one deleted: the originals are put back, so stubs score nothing
    edited = notebooks(course.exercises / A)[NB]
    for gid in ("test_render_visible", "test_render_hidden", "test_fit_hidden", "test_results"):
        _set(edited, gid, "pass\n")
    edited.cells = [
        c
        for c in edited.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") != "test_fit_visible"
    ]
    put("edited_tests", edited, 0.0)
    put("wrong_name", _solution(course), FULL, name="my_homework.ipynb")
    # files that are no notebook at all, and an empty folder
    (subs / "corrupted" / A).mkdir(parents=True)
    (subs / "corrupted" / A / NB).write_bytes(os.urandom(5000))
    expect["corrupted"] = 0.0
    (subs / "not_a_notebook" / A).mkdir(parents=True)
    (subs / "not_a_notebook" / A / NB).write_text('{"hello": "world"}')
    expect["not_a_notebook"] = 0.0
    (subs / "empty" / A).mkdir(parents=True)
    expect["empty"] = 0.0
    forged_answers(course, put)
    return expect


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


UID_BASE = 62000  # not the default 61000: other tests may be grading on this machine meanwhile


@pytest.fixture(scope="module", autouse=True)
def own_sandbox_uids():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPLATCOURSE_SANDBOX_UID_BASE", str(UID_BASE))
        yield


def _available_modes() -> list:
    modes = []
    for mode, works, why in (
        ("warm", zygote.works, "needs root and namespaces"),
        ("bwrap", sandbox.bwrap_works, "bubblewrap missing or blocked"),
    ):
        modes.append(pytest.param(mode, marks=() if works() else pytest.mark.skip(reason=why)))
    return modes


@pytest.fixture(scope="module", params=_available_modes())
def mode(request):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPLATCOURSE_SANDBOX", request.param)
        yield request.param


@pytest.fixture(scope="module")
def graded(mode, released_course, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"hostile-{mode}")
    course = copy_course(tmp / "course", released_course.root, with_gradebook=True)
    honest = tmp / "honest_subs"
    write_submission(honest, "honest", A, completed(course, A))
    write_submission(honest, "untouched", A, notebooks(course.exercises / A))
    first = instructor.autograde(honest, course, [A], cell_timeout=CELL_TIMEOUT, progress=False)
    assert not first.failures, first.summary()
    before = {s: cell_scores(course, A, s) for s in ("honest", "untouched")}
    files_before = {
        p: _digest(p)
        for p in [
            *(course.autograde / "autograded").rglob("*.ipynb"),
            *(course.autograde / "submitted").rglob("*.ipynb"),
            *honest.rglob("*.ipynb"),
        ]
    }
    hostile = tmp / "hostile_subs"
    hostile.mkdir()
    write_submission(hostile, "honest_twin", A, completed(course, A))  # graded alongside them
    expect = hostile_submissions(course, hostile, honest)
    expect["honest_twin"] = FULL
    report = instructor.autograde(
        hostile, course, [A], workers=2, cell_timeout=CELL_TIMEOUT, timeout=900, progress=False
    )
    print(report.summary())
    return course, report, expect, before, files_before, honest, hostile


def test_every_hostile_submission_gets_the_grade_it_deserves(graded):
    _course, report, expect, *_ = graded
    got = {r.student: r.score for r in report.results}
    wrong = {s: (got.get(s), want) for s, want in expect.items() if got.get(s) != want}
    assert not wrong, f"(got, expected) per student: {wrong}\n{report.summary()}"
    statuses = {r.student: r.status for r in report.results}
    for student in ("corrupted", "not_a_notebook", "empty"):
        assert statuses[student] == "zero", statuses
    for student in set(expect) - {"corrupted", "not_a_notebook", "empty"}:
        assert statuses[student] == "graded", (student, statuses[student], report.summary())


def test_honest_students_and_gradebook_are_untouched(graded):
    course, _report, expect, before, files_before, *_ = graded
    for student, scores in before.items():
        assert cell_scores(course, A, student) == scores, student
    for path, digest in files_before.items():
        assert path.exists() and _digest(path) == digest, f"{path} changed"
    con = sqlite3.connect(course.gradebook)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    rows = {r["student"]: r["score"] for r in instructor.grade_table(course)}
    assert set(rows) == set(expect) | set(before)
    assert rows["honest"] == FULL and rows["untouched"] == 0.0


def test_no_sandbox_process_survives(graded):
    leftovers = sandbox.processes_of(range(UID_BASE, UID_BASE + 64))
    assert not leftovers, f"processes still running as sandbox uids: {leftovers}"


def test_feedback_says_what_happened(graded):
    course, report, *_ = graded
    notes = {r.student: " ".join(r.notes) for r in report.results}
    assert "deleted" in notes["edited_tests"] and "edited" in notes["edited_tests"]
    assert "renamed" in notes["wrong_name"]
    assert "not a readable notebook" in notes["corrupted"]
    assert "flagged for review" in notes["monkeypatch"]
    assert "flagged" not in notes["honest_twin"]
    pages = instructor.feedback(course, [A])
    text = {p.parent.parent.name: p.read_text() for p in pages}
    assert set(text) >= {"honest", "honest_twin", "corrupted", "empty", "edited_tests"}
    assert "could not be graded" in text["corrupted"]
    assert "was deleted" in text["edited_tests"]
    assert "KernelDied" in text["os_exit"]
    assert "BEGIN HIDDEN TESTS" not in "".join(text.values())
    assert HIDDEN_LINE not in "".join(text.values())  # printed by prints_hidden's fit


def test_forged_answers_are_flagged_with_a_reason(graded):
    """The scan names each trick before grading; the guard says in the test cell's output what
    it undid (the instructor sees both; the cell's checks decide its score)."""
    course, report, *_ = graded
    notes = {r.student: " ".join(r.notes) for r in report.results}
    for student in [*FORGERIES, "copied_reference", "prints_hidden"]:
        assert "flagged for review" in notes[student], (student, notes[student])
    undone = {
        student: "".join(
            o.get("text", "")
            for c in nbformat.read(course.autograded / student / A / NB, as_version=4).cells
            for o in c.get("outputs", [])
        )
        for student in [*FORGERIES, "setup_rebind", "honest_twin"]
    }
    assert "the code of splatcourse.checks.check_close" in undone["code_swap"]
    assert "input transformers" in undone["input_transformer"]
    assert "AST transformers" in undone["ast_transformer"]
    assert "pre_run_cell event hooks" in undone["event_hook"]
    assert "setup value target (rebound)" in undone["setup_rebind"]
    assert "grader undid" not in undone["honest_twin"]


def test_regrading_is_idempotent_and_resumes(graded):
    course, report, _expect, _, _, _, hostile = graded
    again = instructor.autograde(
        hostile, course, [A], workers=2, cell_timeout=CELL_TIMEOUT, progress=False
    )
    assert all(r.status in ("cached", "zero") for r in again.results), again.summary()
    assert {r.student: r.score for r in again.results} == {
        r.student: r.score for r in report.results
    }
    # a crash mid-class loses the record of what was in flight: only that one is graded again
    (course.autograde / "state" / A / "sys_exit.json").unlink()
    resumed = instructor.autograde(
        hostile, course, [A], workers=2, cell_timeout=CELL_TIMEOUT, progress=False
    )
    regraded = {r.student for r in resumed.results if r.status == "graded"}
    assert regraded == {"sys_exit"}
    assert {r.student: r.score for r in resumed.results} == {
        r.student: r.score for r in report.results
    }


def test_shrunk_setup_lists_gain_nothing(mode, released_course, tmp_path):
    """Exercise 5: a recommender wrong for every mesh brief, with OUTPUTS shrunk to leave the
    mesh briefs out, loses what the wrong recommender alone loses (issue 15 saw full marks)."""
    ex05 = "ex05_pipeline_brief"
    course = copy_course(tmp_path / "course", released_course.root, with_gradebook=True)
    (wrong,) = [m for m in mutants_for(ex05) if m.name == "no-metallic"]
    nbs = apply(wrong, completed(course, ex05))
    for nb in nbs.values():
        _set(
            nb,
            "recommend",
            next(
                c.source
                for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == "recommend"
            )
            + '\nOUTPUTS = ("splat", "nerf")\n',
        )
    write_submission(tmp_path / "subs", "shrinker", ex05, nbs)
    report = instructor.autograde(
        tmp_path / "subs", course, [ex05], cell_timeout=CELL_TIMEOUT, progress=False
    )
    lost = {g for g, (score, top) in cell_scores(course, ex05, "shrinker").items() if score < top}
    assert lost == set(wrong.fails), report.summary()


def test_default_mode_is_the_strongest_available(monkeypatch):
    monkeypatch.delenv("SPLATCOURSE_SANDBOX", raising=False)
    want = "warm" if zygote.works() else "bwrap" if sandbox.bwrap_works() else "rlimit"
    assert sandbox.effective_mode() == want


def test_inspection_catches_broken_files(tmp_path, released_course):
    from splatcourse.grading.submissions import inspect

    nb = notebooks(released_course.exercises / A)[NB]
    (tmp_path / "s" / A).mkdir(parents=True)
    (tmp_path / "s" / A / NB).symlink_to(released_course.solutions / A / NB)
    seen = inspect(tmp_path, "s", A, released_course.exercises / A)
    assert not seen.gradable and "not a regular file" in seen.notes[0]
    (tmp_path / "t" / A).mkdir(parents=True)
    nbformat.write(nb, tmp_path / "t" / A / NB)
    seen = inspect(tmp_path, "t", A, released_course.exercises / A)
    assert seen.gradable and not seen.notes
    assert not inspect(tmp_path, "../x", A, released_course.exercises / A).gradable


def test_linked_student_or_assignment_folder_is_refused(released_course, tmp_path):
    """`bob/ex05 -> ../alice/ex05` (or `carol -> alice`) would grade alice's notebook as bob's:
    a link anywhere on the path is refused with the reason, and alice keeps her own grade."""
    a = "ex05_pipeline_brief"
    course = copy_course(tmp_path / "course", released_course.root, with_gradebook=True)
    subs = tmp_path / "subs"
    write_submission(subs, "alice", a, completed(course, a))
    (subs / "bob").mkdir()
    (subs / "bob" / a).symlink_to(Path("..") / "alice" / a)
    (subs / "carol").symlink_to("alice")
    report = instructor.autograde(subs, course, [a], workers=1, progress=False)
    got = {r.student: r for r in report.results}
    assert got["alice"].status == "graded", report.summary()
    assert got["alice"].score == got["alice"].max_score == 10.0
    for student, linked in (("bob", f"bob/{a}"), ("carol", "carol")):
        assert got[student].status == "zero" and got[student].score == 0, report.summary()
        assert f"{linked} is a link" in got[student].message, got[student].message
        assert not (course.submitted / student).exists() or not any(
            (course.submitted / student).rglob("*.ipynb")
        )
