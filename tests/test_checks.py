import sys

import pytest
import torch

from splatcourse import checks, toy2d
from splatcourse.grading.nbgrader_ext import REDACTED, RedactHiddenTests, strip_hidden_tests


def test_check_tensor_messages():
    with pytest.raises(AssertionError, match=r"should be a torch\.Tensor, got list"):
        checks.check_tensor("x", [1, 2])
    with pytest.raises(AssertionError, match=r"shape \[2, 3\], expected \[2, \*, 4\]"):
        checks.check_tensor("x", torch.zeros(2, 3), (2, None, 4))
    with pytest.raises(AssertionError, match="NaN or inf"):
        checks.check_tensor("x", torch.tensor([float("nan")]))
    assert checks.check_tensor("x", torch.zeros(2, 5), (2, None)).shape == (2, 5)


def test_check_close_reports_worst_entry_and_hint():
    want = torch.zeros(3, 3)
    got = want.clone()
    got[1, 2] = 0.5
    with pytest.raises(AssertionError) as err:
        checks.check_close("image", got, want, hint="look here")
    msg = str(err.value)
    assert "1 of 9 entries" in msg and "[1, 2]" in msg and "got 0.5" in msg and "look here" in msg
    checks.check_close("image", want + 1e-7, want)
    checks.check_close("scalar", 1.0, torch.tensor(1.0))


def test_check_number():
    assert checks.check_number("n", "2.5", 0, 3) == 2.5
    with pytest.raises(AssertionError, match="outside the expected range"):
        checks.check_number("n", 5, 0, 3)
    with pytest.raises(AssertionError, match="should be a number"):
        checks.check_number("n", None)


def test_forbid_catches_imported_names_and_restores():
    from splatcourse.toy2d import render_splats as imported

    grid = toy2d.pixel_grid(4)
    args = (torch.zeros(1, 2), torch.zeros(1), torch.ones(1), grid)
    before = imported(*args)
    with (
        checks.forbid(toy2d.render_splats),
        pytest.raises(AssertionError, match="reference implementation"),
    ):
        imported(*args)
    assert torch.equal(imported(*args), before)


def test_functions_of_lists_private_and_decorated_functions_that_forbid_can_close():
    from splatcourse.splat3d import backend, gaussians, projection

    found = checks.functions_of(gaussians, projection, backend)
    names = {f.__name__ for f in found}
    # private helpers, a @torch.no_grad() one (unwrapped) and an lru_cache'd one
    assert {"_rotmat_entries", "quat_to_rotmat", "_screen_radii", "gsplat_available"} <= names
    assert "Tensor" not in names and "dataclass" not in names  # imported names are not theirs
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    with checks.forbid(*found), pytest.raises(AssertionError, match="reference implementation"):
        gaussians.quat_to_rotmat(quats)
    assert torch.equal(gaussians.quat_to_rotmat(quats)[0], torch.eye(3))


def test_loaded_gsplat_references_include_the_renderer_helpers():
    pytest.importorskip("gsplat.cuda._torch_impl")
    import gsplat.utils

    found = checks.loaded_gsplat_references()
    names = {f.__name__ for f in found}
    assert {"_quat_to_rotmat", "_spherical_harmonics", "_rasterize_to_pixels"} <= names
    assert gsplat.utils.normalized_quat_to_rotmat in found


def test_feedback_redacts_hidden_tests():
    import nbformat

    src = "assert visible\n### BEGIN HIDDEN TESTS\nassert secret == 42\n### END HIDDEN TESTS\n"
    assert "secret" not in strip_hidden_tests(src) and "assert visible" in strip_hidden_tests(src)
    cell = nbformat.v4.new_code_cell(src)
    cell.outputs = [
        nbformat.v4.new_output(
            "error",
            ename="AssertionError",
            evalue="off by one",
            traceback=["line 3: assert secret == 42"],
        )
    ]
    nb = nbformat.v4.new_notebook(cells=[cell])
    out, _ = RedactHiddenTests()(nb, {})  # called as nbconvert calls it, so it must be enabled
    assert "secret" not in out.cells[0].source
    assert out.cells[0].outputs[0]["traceback"] == ["AssertionError: off by one"]


def test_forbid_catches_a_copy_made_from_the_code_object():
    import types

    grid = toy2d.pixel_grid(4)
    args = (torch.zeros(1, 2), torch.zeros(1), torch.ones(1), grid)
    ref = toy2d.render_splats
    copy = types.FunctionType(ref.__code__, ref.__globals__, "mine")
    renamed = types.FunctionType(ref.__code__.replace(co_name="mine"), ref.__globals__)

    def caught_and_hidden(*a):
        try:
            return ref(*a)
        except AssertionError:
            return copy(*a)  # the refusal caught, then the copy run

    for cheat in (copy, renamed, caught_and_hidden):
        with (
            pytest.raises(AssertionError, match="copy of the course's reference"),
            checks.forbid(ref),
        ):
            cheat(*args)
    before = sys.gettrace()
    with checks.forbid(ref):  # honest code in the block still runs, and nothing is left behind
        mine = toy2d.render_splats_separable(*args[:3], 4)
    assert sys.gettrace() is before
    assert torch.allclose(mine, ref(*args)) and torch.equal(copy(*args), ref(*args))


def test_feedback_redacts_hidden_source_printed_anywhere():
    import nbformat

    hidden = (
        "### BEGIN HIDDEN TESTS\n_want = secret_reference(seed=1234)\ntry:\n### END HIDDEN TESTS\n"
    )
    test = nbformat.v4.new_code_cell("assert visible\n" + hidden)
    printed = "### BEGIN HIDDEN TESTS\n_want = secret_reference(seed=1234)\ntry:\n"
    test.outputs = [  # the student's code, called from the test, printed its caller's source
        nbformat.v4.new_output("stream", name="stdout", text="fitting\n" + printed + "done\n")
    ]
    later = nbformat.v4.new_code_cell("print(stash)")
    later.outputs = [
        nbformat.v4.new_output(
            "execute_result",
            data={"text/plain": "  12 |     _want = secret_reference(seed=1234)  # stolen"},
            execution_count=3,
        ),
        nbformat.v4.new_output("stream", name="stdout", text="I will try: this\ntry:\n"),
    ]
    nb = nbformat.v4.new_notebook(cells=[test, later])
    out, _ = RedactHiddenTests()(nb, {})
    text = nbformat.writes(out)
    assert "secret_reference" not in text and "BEGIN HIDDEN" not in text
    assert (
        "fitting\n" in out.cells[0].outputs[0]["text"] and "done" in out.cells[0].outputs[0]["text"]
    )
    # a short hidden line (`try:`) is dropped only where a whole line equals it
    assert out.cells[1].outputs[1]["text"] == "I will try: this\n" + REDACTED + "\n"
