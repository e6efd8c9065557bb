"""Upsampler trained on the generator's own low-resolution frames, alternating with prompt fitting.

The committed upsampler (:mod:`.train_upsampler`) learns from area-downsampled real frames, a
proxy: at run time its input is TAESD's decoding of a low-resolution latent, which has the
generator's own errors. Where a generator exists (here the tiny learned one), the real input can
be produced, so the upsampler can be trained on it. The paper fits prompts through the
accelerated receiver and trains its parts for it; we do the two alternately (block-coordinate):

1. fit the prompts of training clips through the two-stage receiver with the current upsampler;
2. record each decoded frame's low-resolution TAESD output (the upsampler's input) and pair it
   with the source frame (:func:`generated_pairs`);
3. train the upsampler on those pairs (:func:`train_on_pairs`, L1, Adam, full batch);
4. optionally refit the prompts through the new upsampler and repeat.

This is not back-propagation through prompts and upsampler at once (the prompts of a stream are
fitted per stream at encode time; the upsampler is shared by all streams, so it is trained on
many streams' frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["generated_pairs", "JointConfig", "train_on_pairs"]


def generated_pairs(stream, generator, receiver, source: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(low-resolution inputs, targets)`` of ``receiver``'s upsampler when it decodes ``stream``.

    :param receiver: a two-stage receiver (``receiver.two_stage`` set); its upsampler's inputs are recorded.
    :param source: uint8 ``(T, H, W, 3)`` frames the stream was fitted to (the targets).
    :returns: float tensors in [-1, 1]: ``(T, 3, h, w)`` and ``(T, 3, H, W)``.
    """
    from codec.promptus.pipeline import decode_frames

    if getattr(receiver, "two_stage", None) is None:
        raise ValueError(f"{receiver.spec} is not a two-stage receiver")
    seen: list[torch.Tensor] = []
    hook = receiver.two_stage.upsampler.register_forward_hook(lambda m, a, o: seen.append(a[0].detach().float().cpu()))
    try:
        for _ in decode_frames(stream, generator, receiver=receiver, strict=False):
            pass
    finally:
        hook.remove()
    low = torch.cat(seen)
    target = torch.from_numpy(np.ascontiguousarray(source)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    if low.shape[0] != target.shape[0]:
        raise ValueError(f"decoded {low.shape[0]} frames, the source has {target.shape[0]}")
    return low, target


@dataclass(frozen=True, slots=True)
class JointConfig:
    """Upsampler training on generated pairs.

    :param steps: full-batch Adam steps; ``lr``: learning rate (cosine decay to lr / 100); ``seed``: init seed.
    """

    steps: int = 400
    lr: float = 2e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or not self.lr > 0:
            raise ValueError(f"JointConfig needs steps >= 1 and lr > 0, got {self.steps}, {self.lr}")


def train_on_pairs(upsampler: torch.nn.Module, low: torch.Tensor, target: torch.Tensor,
                   cfg: JointConfig = JointConfig(), val: tuple[torch.Tensor, torch.Tensor] | None = None,
                   ) -> dict[str, list[float] | int]:
    """Train ``upsampler`` in place (float32, CPU) on ``(low, target)`` pairs with an L1 loss.

    :param val: held-out pairs; when given, the weights of the step with the lowest validation L1
        are kept (early stopping: a few dozen generated frames are easily memorised).
    :returns: ``{"train": losses per step, "val": validation L1 per step (before it), "best_step": ...}``
        (``best_step`` counts steps taken, 0 = the starting weights).
    """
    torch.manual_seed(cfg.seed)
    upsampler.float().train().requires_grad_(True)
    opt = torch.optim.Adam(upsampler.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps, eta_min=cfg.lr / 100)
    train: list[float] = []
    vals: list[float] = []
    best = (float("inf"), 0, None)

    def check(step: int) -> None:
        nonlocal best
        with torch.no_grad():
            v = float(F.l1_loss(upsampler(val[0]), val[1]))
        vals.append(v)
        if v < best[0]:
            best = (v, step, {k: t.detach().clone() for k, t in upsampler.state_dict().items()})

    for step in range(cfg.steps):
        if val is not None:
            check(step)
        loss = F.l1_loss(upsampler(low), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        train.append(float(loss.detach()))
    best_step = cfg.steps
    if val is not None:
        check(cfg.steps)
        upsampler.load_state_dict(best[2])
        best_step = best[1]
    upsampler.eval().requires_grad_(False)
    return {"train": train, "val": vals, "best_step": best_step}
