"""The grader's own fit of the axe (exercise 4) owns its split: what a notebook did to the
capture defaults, or which photos it trained on, cannot change what is measured."""

import dataclasses

import pytest
import torch

from splatcourse.capture import COURSE_CAPTURE, find_capture, load_capture
from splatcourse.capture import dataset as capture_dataset
from splatcourse.train import recipes


@pytest.mark.skipif(find_capture(COURSE_CAPTURE) is None, reason="the axe capture is absent")
def test_the_grading_split_ignores_what_a_notebook_changed(monkeypatch):
    """However the capture comes back from loading (a notebook that set test_every, or moved
    the module's default), the grader holds out every 8th view."""
    honest = recipes.grading_capture()
    monkeypatch.setattr(capture_dataset, "TEST_EVERY", 10**6)
    loaded = load_capture

    def moved_split(*args, **kwargs):
        return dataclasses.replace(loaded(*args, **kwargs), test_every=10**6)

    monkeypatch.setattr(recipes, "load_capture", moved_split)
    moved = recipes.grading_capture()
    assert moved.test_every == recipes.HELD_OUT_EVERY == 8
    assert moved.test_idx == honest.test_idx == [0, 8, 16, 24, 32, 40]
    assert len(moved.train_idx) == 42


def test_the_students_functions_never_see_a_held_out_photo():
    """A loss that records every target it is given: none is a held-out photo."""
    base = load_capture("default", width=32, verbose=False)
    cap = dataclasses.replace(base, test_every=recipes.HELD_OUT_EVERY)
    images = cap.images.clone()
    magenta = torch.tensor([1.0, 0.0, 1.0])
    images[cap.test_idx] = magenta  # [V, H, W, 3]: held-out photos are unmistakable
    cap = dataclasses.replace(cap, images=images)
    seen = []

    def recording_loss(render, target, ssim_lambda=0.2):
        seen.append(target.detach().clone())
        return (render - target).abs().mean()

    ev = recipes.grading_fit(
        recording_loss, None, capture=cap, steps=12, refine_start=4, refine_every=4, refine_stop=8
    )
    assert len(seen) == 12 and ev.view_ids == cap.test_idx
    for target in seen:
        is_magenta = (target - magenta).abs().amax(dim=-1) < 1e-6  # [1, h, w]
        assert not is_magenta.any(), "a held-out photo reached the student's loss"


def test_the_quality_bar_in_the_exercise_is_the_measured_one(root):
    """The hidden test carries the bar as a literal (a notebook cannot rebind it); it must be
    recipes.GRADING_BAR, which bench/ex04_grading.py measures."""
    import nbformat

    nb = nbformat.read(root / "solutions/ex04_capture_fit/ex04_capture_fit.ipynb", as_version=4)
    test = next(
        c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_axe_fit"
    )
    assert f"low={recipes.GRADING_BAR}," in test.source
    assert nb.metadata["splatcourse"]["captures"] == [COURSE_CAPTURE]
