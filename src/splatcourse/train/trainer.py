"""The training loop: photos + cameras in, fitted 3D Gaussians out.

One step (as in the 3DGS paper and gsplat's simple_trainer):

1. pick a training view (each view once per epoch, in a shuffled order);
2. render it with the current SH degree (one more band every ``sh_interval`` steps);
3. loss = 0.8 L1 + 0.2 (1 - SSIM) against the photo (both over the same background);
4. backward, one Adam step per parameter group;
5. let gsplat's ``DefaultStrategy`` clone / split / prune Gaussians from the accumulated
   screen-space gradients, and reset opacities now and then.

Everything that a resumed run needs is in the checkpoint: parameters, Adam moments, the
strategy's gradient statistics, the step, the random states and the order of the views
still to visit in this epoch. Resuming therefore continues exactly where the run stopped.

Used by: lessons 5-7 and exercise 4 (fit), the capture-fit bench.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from tqdm.auto import tqdm

from ..capture import Capture
from ..splat3d import make_strategy, resolve_backend
from .config import TrainConfig
from .densify import DecisionStrategy
from .evaluate import EvalResult, evaluate
from .loss import l1_ssim_loss, psnr
from .model import (
    PARAM_NAMES,
    Backend,
    Gaussians,
    gaussians_at,
    initial_points,
    make_optimizers,
    render,
    set_learning_rates,
)

__all__ = ["CHECKPOINT_NAME", "BudgetClock", "FitResult", "Trainer", "fit", "train_view_capture"]

#: What a time budget counts: wall-clock seconds, or this process's CPU seconds (fairer on a
#: busy machine, and what grading uses).
BudgetClock = Literal["wall", "cpu"]

CHECKPOINT_NAME = "checkpoint.pt"


def train_view_capture(capture: Capture, crop: bool = True) -> Capture:
    """The capture the loop renders: cropped to the objects' masks (less background to
    rasterize, same cameras); evaluation still uses the full frame."""
    if crop and capture.masks is not None:
        return capture.crop(*capture.mask_bbox())
    return capture


@dataclass
class FitResult:
    """What ``fit`` returns: the Gaussians plus how the fit went."""

    params: Gaussians
    config: TrainConfig
    history: list[dict[str, Any]]
    seconds: float  # training wall time (evaluation and checkpoints excluded)
    eval: EvalResult | None = None
    capture_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_gaussians(self) -> int:
        return int(self.params["means"].shape[0])

    def summary(self) -> dict[str, Any]:
        out = {
            "steps": self.config.steps,
            "fit_seconds": round(self.seconds, 2),
            "gaussians": self.n_gaussians,
        }
        if "init_points" in self.extra:  # what the Gaussians started from
            out["init_points"] = self.extra["init_points"]
        if self.eval is not None:
            out["ssim_heldout"] = round(self.eval.ssim, 4)
            out["psnr_heldout"] = round(self.eval.psnr, 2)
            out["ssim_object"] = round(self.eval.ssim_object, 4)
            out["psnr_object"] = round(self.eval.psnr_object, 2)
            iou = self.eval.alpha_iou
            out["alpha_iou"] = None if iou is None else round(iou, 4)
        return out

    def save_ply(self, path: str | Path) -> Path:
        from .export import save_ply

        return save_ply(self.params, path)


class Trainer:
    """Holds the state of one fit; ``run()`` trains to ``config.steps`` (resumable)."""

    def __init__(
        self,
        capture: Capture,
        config: TrainConfig | None = None,
        *,
        backend: Backend = None,
        checkpoint_dir: str | Path | None = None,
        progress: bool = True,
        crop: bool = True,
        loss_fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor] | None = None,
        densify_fn: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> None:
        """``loss_fn(render, target, ssim_lambda)`` and ``densify_fn`` (see
        ``densify.densify_masks``) replace the reference loss and clone/split rule."""
        self.cfg = config or TrainConfig()
        self.loss_fn = loss_fn or l1_ssim_loss
        if len(capture.train_idx) == 0:
            raise ValueError(f"capture {capture.name!r} has no training views")
        self.capture = capture
        self.train_cap = train_view_capture(capture, crop)
        self.backend = backend
        self.progress = progress
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.device = capture.images.device
        self.scene_scale = capture.scene_scale()
        self.bg = capture.background_tensor()

        torch.manual_seed(self.cfg.seed)
        init = initial_points(capture, self.cfg)
        self.init_source = init.source  # what the Gaussians started from (the fit reports it)
        self.params = gaussians_at(init, self.cfg).to(self.device)
        self.optimizers = make_optimizers(self.params, self.cfg, self.scene_scale)
        strategy_kwargs = {
            "prune_opa": self.cfg.prune_opa,
            "grow_grad2d": self.cfg.grow_grad2d,
            "grow_scale3d": self.cfg.grow_scale3d,
            "prune_scale3d": self.cfg.prune_scale3d,
            "refine_start_iter": self.cfg.refine_start_step,
            "refine_stop_iter": self.cfg.refine_stop_step if self.cfg.densify else 0,
            "refine_every": self.cfg.refine_every_steps,
            "reset_every": self.cfg.reset_every_steps,
            "prune_huge_after": self.cfg.prune_huge_after_step,
        }
        if densify_fn is None:
            self.strategy = make_strategy(**strategy_kwargs)
        else:
            self.strategy = DecisionStrategy(**strategy_kwargs)
            self.strategy.decide = densify_fn
        self.strategy.check_sanity(self.params, self.optimizers)
        self.strategy_state = self.strategy.initialize_state(scene_scale=self.scene_scale)
        self.gen = torch.Generator().manual_seed(self.cfg.seed)
        self.order: list[int] = []
        self.step = 0
        self.elapsed = 0.0
        self.cpu_elapsed = 0.0  # process CPU time: a fair clock on a machine shared with others
        self.history: list[dict[str, Any]] = []

    # ---- one step ----------------------------------------------------------------------------
    @property
    def n_gaussians(self) -> int:
        return int(self.params["means"].shape[0])

    def sh_degree_at(self, step: int) -> int:
        return min(step // self.cfg.sh_interval, self.cfg.sh_degree)

    def _next_view(self) -> int:
        if not self.order:
            train = torch.tensor(self.capture.train_idx)
            self.order = train[torch.randperm(len(train), generator=self.gen)].tolist()
        return self.order.pop()

    def _glue(self) -> contextlib.AbstractContextManager:
        """Where the compiled rasterizer renders: the step's own torch operations (loss, Adam,
        densification) on one torch thread, the compiled kernels on the caller's threads
        (:func:`.kernel.glue_on_one_torch_thread`). Each is a pass over some thousands of
        numbers: a second thread saves less than waking it costs, and OpenMP's waiting
        threads take the core the kernels want. Measured on the axe at 256 px, 2 cores: 31.4
        against 28.7 ms a step with ``OMP_WAIT_POLICY=PASSIVE``, 36.5 against 28.6 without.
        Any other renderer (the PyTorch one, a student's, gsplat) keeps torch's threads."""
        if callable(self.backend) or resolve_backend(self.backend, self.device) != "compiled":
            return contextlib.nullcontext()
        from ..splat3d.kernel import glue_on_one_torch_thread

        return glue_on_one_torch_thread()

    def train_step(self) -> dict[str, float]:
        """One optimisation step; returns its loss and the training view's PSNR."""
        with self._glue():
            return self._step()

    def _step(self) -> dict[str, float]:
        cfg, cap, step = self.cfg, self.train_cap, self.step
        i = self._next_view()
        set_learning_rates(self.optimizers, cfg, self.scene_scale, step)
        target = cap.images[i : i + 1]
        bg = self.bg
        if cfg.random_background and cap.masks is not None:
            bg = torch.rand(3, generator=self.gen).to(self.device)
            target = torch.where(cap.masks[i : i + 1, ..., None], target, bg)
        rgb, alpha, info = render(
            self.params,
            cap.viewmats[i : i + 1],
            cap.Ks[i : i + 1],
            cap.width,
            cap.height,
            self.sh_degree_at(step),
            bg,
            self.backend,
        )
        self.strategy.step_pre_backward(
            self.params, self.optimizers, self.strategy_state, step, info
        )
        loss = self.loss_fn(rgb, target, cfg.ssim_lambda)
        if cfg.mask_lambda > 0 and cap.masks is not None:
            loss = (
                loss + cfg.mask_lambda * (alpha[..., 0] - cap.masks[i : i + 1].float()).abs().mean()
            )
        loss.backward()
        for opt in self.optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        # Densify after the Adam step, as gsplat's simple_trainer does; stop growing at the cap.
        can_grow = cfg.max_gaussians is None or self.n_gaussians < cfg.max_gaussians
        self.strategy.grow_grad2d = cfg.grow_grad2d if can_grow else float("inf")
        self.strategy.step_post_backward(
            self.params,
            self.optimizers,
            self.strategy_state,
            step,
            info,
            packed=bool(info.get("packed", False)),
        )
        self.step += 1
        with torch.no_grad():
            p = psnr(rgb.detach().clamp(0, 1), target)
        return {"loss": loss.item(), "psnr": p.item()}

    # ---- the loop ----------------------------------------------------------------------------
    def evaluate(self, idx: list[int] | None = None, keep_images: bool = False) -> EvalResult:
        return evaluate(
            self.params, self.capture, idx, backend=self.backend, keep_images=keep_images
        )

    def run(
        self,
        until: int | None = None,
        callback: Callable[[Trainer, dict], None] | None = None,
        time_budget: float | None = None,
        budget_clock: BudgetClock = "wall",
    ) -> list[dict[str, Any]]:
        """Train up to step ``until`` (default ``config.steps``), checkpointing on the way.

        Held-out views are scored every ``config.eval_every`` steps. ``time_budget`` (seconds
        of training, wall clock or, with ``budget_clock="cpu"``, this process's CPU time)
        stops early; on Ctrl-C the last finished step is checkpointed before the interrupt
        propagates, so nothing is lost.
        """
        if budget_clock not in get_args(BudgetClock):
            raise ValueError(
                f"budget_clock must be one of {get_args(BudgetClock)}, got {budget_clock!r}"
            )
        until = self.cfg.steps if until is None else min(until, self.cfg.steps)
        eval_every = self.cfg.eval_every
        ckpt_every = self.cfg.checkpoint_every_steps
        bar = tqdm(
            total=until,
            initial=self.step,
            disable=not self.progress,
            desc="fit",
            unit="step",
            leave=False,
        )
        ema = None
        try:
            while self.step < until:
                used = self.cpu_elapsed if budget_clock == "cpu" else self.elapsed
                if time_budget is not None and used >= time_budget:
                    break
                t0, c0 = time.perf_counter(), time.process_time()
                out = self.train_step()
                self.elapsed += time.perf_counter() - t0
                self.cpu_elapsed += time.process_time() - c0
                ema = out if ema is None else {k: 0.9 * ema[k] + 0.1 * v for k, v in out.items()}
                record = {
                    "step": self.step,
                    "seconds": self.elapsed,
                    "cpu_seconds": self.cpu_elapsed,
                    **out,
                    "gaussians": self.n_gaussians,
                }
                if eval_every and (self.step % eval_every == 0 or self.step == until):
                    ev = self.evaluate()
                    record.update(
                        ssim_heldout=ev.ssim,
                        psnr_heldout=ev.psnr,
                        ssim_object=ev.ssim_object,
                        psnr_object=ev.psnr_object,
                        alpha_iou=ev.alpha_iou,
                    )
                self.history.append(record)
                if callback is not None:
                    callback(self, record)
                bar.update(1)
                if self.step % 10 == 0 or self.step == until:
                    bar.set_postfix(
                        loss=f"{ema['loss']:.4f}", psnr=f"{ema['psnr']:.2f}", n=self.n_gaussians
                    )
                if self.checkpoint_dir is not None and self.step % ckpt_every == 0:
                    self.save_checkpoint()
        except KeyboardInterrupt:
            if self.checkpoint_dir is not None:
                self.save_checkpoint()
            raise
        finally:
            bar.close()
        if self.checkpoint_dir is not None:
            self.save_checkpoint()
        return self.history

    # ---- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "elapsed": self.elapsed,
            "cpu_elapsed": self.cpu_elapsed,
            "config": self.cfg.to_dict(),
            "capture_name": self.capture.name,
            "params": {k: v.detach().cpu().clone() for k, v in self.params.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "strategy_state": {
                k: (v.detach().cpu().clone() if torch.is_tensor(v) else v)
                for k, v in self.strategy_state.items()
            },
            "torch_rng": torch.get_rng_state(),
            "view_rng": self.gen.get_state(),
            "order": list(self.order),
            "history": list(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        cfg = TrainConfig.from_dict(state["config"])
        if cfg != self.cfg:
            raise ValueError(
                "checkpoint was written with a different TrainConfig; "
                "build the Trainer with TrainConfig.from_dict(ckpt['config'])"
            )
        missing = set(PARAM_NAMES) - set(state["params"])
        if missing:
            raise ValueError(f"checkpoint is missing parameters {sorted(missing)}")
        self.params = torch.nn.ParameterDict(
            {k: torch.nn.Parameter(state["params"][k].to(self.device)) for k in PARAM_NAMES}
        )
        self.optimizers = make_optimizers(self.params, self.cfg, self.scene_scale)
        for k, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        self.strategy_state = {
            k: (v.to(self.device) if torch.is_tensor(v) else v)
            for k, v in state["strategy_state"].items()
        }
        torch.set_rng_state(state["torch_rng"])
        self.gen.set_state(state["view_rng"])
        self.order = list(state["order"])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        self.cpu_elapsed = float(state.get("cpu_elapsed", 0.0))
        self.history = list(state["history"])

    def checkpoint_path(self) -> Path:
        if self.checkpoint_dir is None:
            raise ValueError("this Trainer has no checkpoint_dir")
        return self.checkpoint_dir / CHECKPOINT_NAME

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write atomically (temp file + rename) so a crash never leaves a broken checkpoint."""
        path = Path(path) if path is not None else self.checkpoint_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)
        return path

    def load_checkpoint(self, path: str | Path | None = None) -> None:
        path = Path(path) if path is not None else self.checkpoint_path()
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint at {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise ValueError(f"{path}: not a readable training checkpoint ({exc})") from exc
        self.load_state_dict(state)

    def result(self, evaluate_heldout: bool = True) -> FitResult:
        ev = self.evaluate(keep_images=True) if evaluate_heldout and self.capture.test_idx else None
        return FitResult(
            params=self.params,
            config=self.cfg,
            history=self.history,
            seconds=self.elapsed,
            eval=ev,
            capture_name=self.capture.name,
            extra={"init_points": self.init_source},
        )


def fit(
    capture: Capture,
    config: TrainConfig | None = None,
    *,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    backend: Backend = None,
    progress: bool = True,
    time_budget: float | None = None,
    budget_clock: BudgetClock = "wall",
    callback: Callable[[Trainer, dict], None] | None = None,
    crop: bool = True,
    loss_fn: Callable | None = None,
    densify_fn: Callable | None = None,
    **overrides: Any,
) -> FitResult:
    """Fit 3D Gaussians to a capture and score them on its held-out views.

    ``overrides`` are TrainConfig fields (``fit(cap, steps=500, eval_every=50)``). With ``checkpoint_dir``
    the fit checkpoints every ``config.checkpoint_every`` steps and, with ``resume=True``,
    continues from a checkpoint found there instead of starting again.
    """
    cfg = (config or TrainConfig()).updated(**overrides) if overrides else (config or TrainConfig())
    trainer = Trainer(
        capture,
        cfg,
        backend=backend,
        checkpoint_dir=checkpoint_dir,
        progress=progress,
        crop=crop,
        loss_fn=loss_fn,
        densify_fn=densify_fn,
    )
    if checkpoint_dir is not None and resume and trainer.checkpoint_path().is_file():
        trainer.load_checkpoint()
    trainer.run(callback=callback, time_budget=time_budget, budget_clock=budget_clock)
    return trainer.result()
