"""Checkpoints: a resumed fit ends exactly where an uninterrupted one does."""

from __future__ import annotations

import pytest
import torch

from splatcourse.capture import synthetic_capture
from splatcourse.train import CHECKPOINT_NAME, TrainConfig, Trainer, fit

# densification (clone/split uses random numbers) and an opacity reset both happen
# before and after the interruption at step 15
CFG = TrainConfig(
    steps=30,
    sh_degree=1,
    sh_degree_interval=10,
    refine_start=4,
    refine_every=6,
    refine_stop=28,
    reset_every=20,
    grow_grad2d=2e-6,
    checkpoint_every=5,
)


# tiny images: one thread avoids OpenMP hand-offs that dominate on a busy machine
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return synthetic_capture(n_views=16, width=40, n_points=200)


def _assert_same(a: Trainer, b: Trainer) -> None:
    assert a.step == b.step
    assert a.n_gaussians == b.n_gaussians
    for k in a.params:
        torch.testing.assert_close(a.params[k], b.params[k], rtol=1e-5, atol=1e-6)
    for k in a.optimizers:
        sa, sb = a.optimizers[k].state_dict()["state"], b.optimizers[k].state_dict()["state"]
        torch.testing.assert_close(sa[0]["exp_avg_sq"], sb[0]["exp_avg_sq"], rtol=1e-5, atol=1e-9)
    assert [h["step"] for h in a.history] == [h["step"] for h in b.history]


def test_resume_equals_uninterrupted(tiny, tmp_path):
    straight = Trainer(tiny, CFG, progress=False)
    straight.run()
    assert straight.n_gaussians != len(tiny.points)  # the run did densify

    first = Trainer(tiny, CFG, progress=False, checkpoint_dir=tmp_path)
    first.run(until=15)
    assert (tmp_path / CHECKPOINT_NAME).is_file()
    del first
    resumed = Trainer(tiny, CFG, progress=False, checkpoint_dir=tmp_path)
    resumed.load_checkpoint()
    assert resumed.step == 15
    resumed.run()
    _assert_same(straight, resumed)


def test_interrupt_saves_last_step_and_fit_resumes(tiny, tmp_path):
    class Stop(KeyboardInterrupt):
        pass

    def interrupt_at_13(trainer, record):
        if record["step"] == 13:
            raise Stop

    with pytest.raises(Stop):
        fit(tiny, CFG, checkpoint_dir=tmp_path, progress=False, callback=interrupt_at_13)
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=False)
    assert state["step"] == 13  # step 13 was finished before the interrupt: nothing lost

    resumed = fit(tiny, CFG, checkpoint_dir=tmp_path, progress=False)
    straight = Trainer(tiny, CFG, progress=False)
    straight.run()
    assert resumed.history[-1]["step"] == CFG.steps
    for k in straight.params:
        torch.testing.assert_close(resumed.params[k], straight.params[k], rtol=1e-5, atol=1e-6)


def test_checkpoint_from_other_config_is_refused(tiny, tmp_path):
    tr = Trainer(tiny, CFG, progress=False, checkpoint_dir=tmp_path)
    tr.run(until=5)
    other = Trainer(tiny, CFG.updated(steps=31), progress=False, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="different TrainConfig"):
        other.load_checkpoint()
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"junk\.pt"):
        other.load_checkpoint(tmp_path / "junk.pt")
