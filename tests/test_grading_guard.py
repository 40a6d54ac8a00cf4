"""The grading guard's source scan and its reading of read-only cells (no kernel needed; the
guard's restoring is tested end to end in tests/test_hostile_submissions.py)."""

import nbformat
import pytest

from splatcourse.grading.guard import bound_names, tamper_notes

TRICKS = {
    "code object": "checks.check_close.__code__ = (lambda *a, **k: None).__code__",
    "bytecode": "raw = f.__code__.co_code",
    "input transformer": "get_ipython().input_transformers_post.append(neuter)",
    "cleanup transformer": "ip.input_transformers_cleanup.insert(0, neuter)",
    "AST transformer": "get_ipython().ast_transformers.append(Swallow())",
    "event hook": "get_ipython().events.register('pre_run_cell', patch)",
    "trace": "import sys\nsys.settrace(tracer)",
    "profile": "sys.setprofile(spy)",
    "builtins": "import builtins\nbuiltins.isinstance = lambda *a: True",
    "exec": "exec(source_of_reference)",
    "eval": "value = eval(''.join(parts))",
    "compile": "code = compile(text, '<x>', 'exec')",
    "frames": "frame = inspect.currentframe().f_back",
    "linecache": "import linecache\nprint(linecache.getlines(name))",
}
HONEST = [
    "model = torch.compile(model)",
    "pattern = re.compile(r'\\d+')",
    "net.eval()",
    "x = eval('1 + 1')",
    "exec(\"print('hi')\", {})",
    "from tqdm.auto import tqdm\nfor _ in tqdm(range(3)):\n    pass",
    "np.abs(x) < 1e-3",
    "events = ['a', 'b']",
]


@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_scan_flags_each_trick_with_a_reason(trick):
    (note,) = tamper_notes({"nb[3]": TRICKS[trick]})
    assert (
        note.startswith("cell nb[3] touches grading machinery (") and "flagged for review" in note
    )


@pytest.mark.parametrize("source", HONEST)
def test_scan_leaves_honest_code_alone(source):
    assert tamper_notes({"nb[3]": source}) == []


def test_no_solution_notebook_is_flagged(root):
    for path in sorted((root / "solutions").glob("*/*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        sources = {
            f"{path.name}[{i}]": c.source
            for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and not c.get("metadata", {}).get("nbgrader", {}).get("grade")
        }
        assert sources and tamper_notes(sources) == [], path.name


def test_bound_names_are_what_a_cell_binds_at_top_level():
    source = (
        "import torch\nimport matplotlib.pyplot as plt\nfrom x import a, b as c\n"
        "target, (grid, n) = 1, (2, 3)\nif flag:\n    warm = fit()\n"
        "def helper(q):\n    inner = q\n    return inner\nfor i in range(2):\n    pass\n"
        "with open(p) as fh:\n    pass\nk = [z for z in range(3)]\n"
    )
    assert bound_names(source) == [
        "torch", "plt", "a", "c", "target", "grid", "n", "warm", "helper", "i", "fh", "k",
    ]  # fmt: skip
    assert bound_names("%matplotlib inline\nx = 1") is None


def test_guard_outputs_say_what_was_undone_or_zero_the_cell():
    from splatcourse.grading.execute import guard_outputs

    assert guard_outputs([], "") == []  # an honest submission: nothing added
    (note,) = guard_outputs(["setup value target (rebound)"], "")
    assert note["output_type"] == "stream" and note["name"] == "stdout"  # never costs points
    assert "target (rebound)" in note["text"] and "flagged for review" in note["text"]
    (error,) = guard_outputs(None, "NameError: guard")  # could not run: the checks may be forged
    assert error["output_type"] == "error" and "NameError: guard" in error["evalue"]
