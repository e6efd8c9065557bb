"""Prompt inversion: fitting quantized low-rank prompts to the frames of a video (SPEC section 1).

For each keyframe ``k`` (frames 0, N, 2N, ..., and the last frame) we fit factors ``U`` (L x r)
and ``V`` (r x D) so that the receiver's frames of the segment ending at ``k`` (frames
``k-N+1 .. k``, interpolated from the frozen previous keyframe) match the source frames:

- loss per frame ``w_mse * MSE + w_perc * perceptual + w_l1 * mean|c|`` on images in [-1, 1]
  (reference weights 0.8 / 0.2 / 0.1, perceptual = VGG feature MSE);
- quantization-aware: the receiver sees ``Q(U), Q(V)`` (uint8 fake quantization, straight-through
  gradient), exactly what the bitstream will carry;
- Adam at ``lr``; every ``patience`` iterations without a new best loss the rate halves (floor
  ``lr_min``) and Adam restarts; the best iterate (lowest mean loss) is kept;
- worst-frame emphasis: the frame with the highest loss in the previous iteration counts
  ``1 + worst_extra`` times in the next (the reference takes ``worst_extra`` extra optimizer steps on
  it; a batched step with that weight has the gradient of a batch holding it that many more times);
- frames are judged as displayed, clamped to [-1, 1], with a straight-through gradient for the
  clamp (the reference scores the raw decoder output, which penalises overshoot that display hides);
- the segment's frames go through the receiver as one batch: one optimizer step per iteration
  (the reference takes one step per frame, so equal iteration counts are not equal work).

:data:`OFFICIAL` (``steps="per-frame"``, :func:`fit_segment_official`) instead reproduces the official
loop exactly (``../shared/PROMPTUS_OFFICIAL.md``): per-frame Adam steps, its plateau counting, the VGG19
content loss on unclamped frames (:mod:`codec.promptus.vgg`), the running-range quantizer and the float32
frame-0 anchor. :class:`Precision` runs either loop in fp16 with loss scaling or in bf16, factors float32.

Improvements over the reference schedule, all off in :data:`REFERENCE` and on in :data:`FAST`:

- ``warm_start``: keyframe ``k`` starts from keyframe ``k-N``'s factors instead of uniform noise;
- ``target_loss``: stop a keyframe once its best loss reaches this value;
- ``stall_stop``: stop when the rate is at its floor and a whole patience window brought nothing;
- :func:`derive_rank`: lower rungs of the ladder from one high-rank fit (truncated SVD of the
  product, then ``FitConfig.iters`` of fine-tuning) instead of fitting each rank from scratch;
- :func:`nested_init` (``codec.encode --nested``): the other direction, rank ``r'`` starts from rank
  ``r``'s fitted keyframes grown by :func:`grow_rank` (same prompt, plus a tiny new component), so the
  higher rung starts where the lower one ended instead of from uniform noise.

Checkpoints: with ``checkpoint_dir`` every fitted keyframe is written atomically
(``kf_000010.pt``) together with the fit configuration; a rerun with the same configuration
resumes after the last keyframe found.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from abr.errors import InputError
from abr.io import write_atomic
from codec.promptus.prompt import Factors, interpolate_prompts
from codec.promptus.quant import QParams, QuantFactors, RunningQuant, dequantize, fake_quant, quantize
from codec.promptus.receiver import Receiver, Segment

__all__ = [
    "LossConfig",
    "FitConfig",
    "OFFICIAL",
    "REFERENCE",
    "FAST",
    "Precision",
    "fit_segment_official",
    "FIT_PRESETS",
    "KeyframeFit",
    "VideoFit",
    "keyframe_positions",
    "quantize_latent",
    "dequantize_latent",
    "PromptLoss",
    "fit_segment",
    "fit_video",
    "derive_rank",
    "svd_factors",
    "grow_rank",
    "nested_init",
]


# ---------------------------------------------------------------------------- configs
_PERCEPTUAL = ("vgg", "lpips-vgg", "lpips-alex", "vgg19", "vgg16")
_PRECISIONS = ("fp32", "fp16", "bf16", "fp16-noscale")


@dataclass(frozen=True, slots=True)
class LossConfig:
    """Weights of the fitting loss.

    :param mse: weight of the pixel MSE.
    :param perceptual: weight of the perceptual term (0 disables it and never loads a network).
    :param perceptual_kind: ``vgg19`` is the official term (:class:`codec.promptus.vgg.VGGContentLoss`:
        VGG19 pre-ReLU content loss over 16 convs, needs torchvision's ImageNet weights); ``vgg16`` the same
        arithmetic on LPIPS's ImageNet VGG16 (offline substitute, 13 convs); ``vgg`` our light term (mean
        feature MSE of LPIPS-VGG's five channel-normalised layers, about 1000x smaller than the official
        one, so the loss is MSE-dominated); ``lpips-vgg`` / ``lpips-alex`` the LPIPS distance itself.
    :param l1_prompt: weight of ``mean |c|`` (keeps prompts small, like the reference).
    :param clamp: judge frames clamped to [-1, 1] as displayed (straight-through gradient); the official
        loss scores the raw decoder output (False).
    """

    mse: float = 0.8
    perceptual: float = 0.2
    perceptual_kind: str = "vgg"
    l1_prompt: float = 0.1
    clamp: bool = True

    def __post_init__(self) -> None:
        for name in ("mse", "perceptual", "l1_prompt"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"LossConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.perceptual_kind not in _PERCEPTUAL:
            raise ValueError(f"LossConfig.perceptual_kind must be one of {sorted(_PERCEPTUAL)}, "
                             f"got {self.perceptual_kind!r}")


@dataclass(frozen=True, slots=True)
class FitConfig:
    """How keyframes are fitted (defaults: the reference schedule of SPEC section 1).

    :param rank: prompt rank r.
    :param interval: keyframe interval N in frames.
    :param iters_first: iterations for frame 0 (10,000 in the reference).
    :param iters: iterations for later keyframes (1,500), and fine-tuning iterations in :func:`derive_rank`.
    :param lr: initial Adam learning rate (0.1).
    :param lr_min: floor of the halved rate (0.001).
    :param patience_first: plateau window for frame 0 (300 iterations).
    :param patience: plateau window for later keyframes (20).
    :param worst_extra: extra weight of the previous iteration's worst frame (2).
    :param warm_start: start keyframe k from keyframe k-N (reference: uniform random start).
    :param target_loss: stop a keyframe when its best loss is at or below this (None: never).
    :param stall_stop: stop when the rate is at ``lr_min`` and a patience window brought no new best.
    :param noise_seed: seed of the shared noise (88 in the reference release).
    :param init_seed: seed of the uniform [0, 1) factor initialisation.
    :param loss: the loss weights.
    :param steps: ``batched`` (one Adam step per iteration on the weighted mean over the segment) or
        ``per-frame`` (official: one Adam step per frame of the segment, in ascending order, plus
        ``worst_extra`` more on the previous iteration's worst frame; iteration 0 has no extra steps).
    :param quantizer: ``range`` (:func:`~codec.promptus.quant.fake_quant`, the current tensor's range) or
        ``running`` (official :class:`~codec.promptus.quant.RunningQuant`, a range that only grows).
    :param first_latent: ``uint8`` (frame 0's anchor latent, quantized, in an ``L`` record) or ``float32``
        (official: the unquantized latent, in an ``F`` record, 4 bytes per element); either way the encoder
        anchors on exactly what the stream carries.
    :param precision: ``fp32``; ``fp16`` (fp16 compute, fp32 master factors, dynamic loss scaling);
        ``bf16`` (bf16 compute, fp32 master factors, no scaling needed); ``fp16-noscale`` (the official
        code: autocast fp16 without a GradScaler, whose small gradients underflow to zero).
    """

    rank: int = 8
    interval: int = 10
    iters_first: int = 10_000
    iters: int = 1_500
    lr: float = 0.1
    lr_min: float = 0.001
    patience_first: int = 300
    patience: int = 20
    worst_extra: int = 2
    warm_start: bool = False
    target_loss: float | None = None
    stall_stop: bool = False
    noise_seed: int = 88
    init_seed: int = 0
    loss: LossConfig = field(default_factory=LossConfig)
    steps: str = "batched"
    quantizer: str = "range"
    first_latent: str = "uint8"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        for name, allowed in (("steps", ("batched", "per-frame")), ("quantizer", ("range", "running")),
                              ("first_latent", ("uint8", "float32")), ("precision", _PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"FitConfig.{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        for name in ("rank", "interval", "patience_first", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"FitConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("iters_first", "iters", "worst_extra"):
            if getattr(self, name) < 0:
                raise ValueError(f"FitConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.lr_min <= self.lr:
            raise ValueError(f"FitConfig needs 0 < lr_min <= lr, got lr={self.lr}, lr_min={self.lr_min}")
        if isinstance(self.loss, dict):
            object.__setattr__(self, "loss", LossConfig(**self.loss))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        """Hash of everything that changes a fit (checkpoints from another configuration are not reused)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


#: The official code's semantics (``PROMPTUS_OFFICIAL.md``): per-frame Adam steps (17,998 per keyframe
#: for N = 10), plateau windows of 300 / 20 iterations, the VGG19 content loss on unclamped frames,
#: the running-range quantizer and the float32 frame-0 anchor. Pair it with the receiver
#: ``promptus:noise=numpy`` (NumPy ``RandomState(88)`` noise, as upstream); ``codec.encode --preset
#: official`` does. ``fp16-noscale`` is upstream's precision on CUDA; use ``precision="fp16"`` to fix it.
OFFICIAL = FitConfig(steps="per-frame", quantizer="running", first_latent="float32",
                     loss=LossConfig(perceptual_kind="vgg19", clamp=False))
#: The official iteration counts and loss weights with our batched step (one Adam step per iteration on
#: the worst-frame-weighted segment mean: about 12x fewer steps than :data:`OFFICIAL`), our light
#: perceptual term (``vgg``), clamped frames, range-spanning quantizer and uint8 frame-0 anchor.
REFERENCE = FitConfig()
#: :data:`REFERENCE` plus warm start, stop at the rate floor and a shorter frame-0 plateau window.
FAST = FitConfig(warm_start=True, stall_stop=True, patience_first=50)
FIT_PRESETS: dict[str, FitConfig] = {"official": OFFICIAL, "reference": REFERENCE, "fast": FAST}


# ---------------------------------------------------------------------------- records
@dataclass(frozen=True, eq=False)
class KeyframeFit:
    """One fitted keyframe.

    :param frame: index of the keyframe in the video.
    :param length: length of the segment it closes (1 for frame 0).
    :param factors: its quantized factors.
    :param latent: x0 latent of the keyframe (``z_prev`` of the next segment), float32 CPU.
    :param loss: best mean fitting loss over the segment.
    :param frame_mse: final pixel MSE of each frame of the segment (frames in [-1, 1]).
    :param iterations: iterations run.
    :param seconds: wall time of the fit.
    :param steps: optimizer steps taken (0 when resumed from a checkpoint).
    """

    frame: int
    length: int
    factors: QuantFactors
    latent: torch.Tensor
    loss: float
    frame_mse: np.ndarray
    iterations: int
    seconds: float
    steps: int = 0


@dataclass(frozen=True, eq=False)
class VideoFit:
    """All keyframes of one rank, plus frame 0's side information and summary figures.

    ``first_latent`` is uint8 with ``first_latent_q``, or float32 with ``first_latent_q = None`` when
    ``config.first_latent == "float32"`` (the stream then carries it as a float32 record, like upstream).
    """

    config: FitConfig
    receiver: str
    n_frames: int
    first_latent: np.ndarray
    first_latent_q: QParams | None
    keyframes: tuple[KeyframeFit, ...]

    @property
    def rank(self) -> int:
        return self.config.rank

    @property
    def seconds(self) -> float:
        return float(sum(k.seconds for k in self.keyframes))

    @property
    def iterations(self) -> int:
        return int(sum(k.iterations for k in self.keyframes))

    @property
    def mean_loss(self) -> float:
        """Mean fitting loss over keyframes, weighted by segment length."""
        w = np.array([k.length for k in self.keyframes], dtype=float)
        return float(np.average([k.loss for k in self.keyframes], weights=w))

    @property
    def frame_mse(self) -> np.ndarray:
        """Final MSE of every frame of the video, in order."""
        return np.concatenate([k.frame_mse for k in self.keyframes])


def keyframe_positions(n_frames: int, interval: int) -> list[int]:
    """Keyframes 0, N, 2N, ... and the last frame (its segment is then shorter than N)."""
    if n_frames < 1:
        raise InputError("a video needs at least one frame")
    pos = list(range(0, n_frames, interval))
    if pos[-1] != n_frames - 1:
        pos.append(n_frames - 1)
    return pos


def quantize_latent(z: torch.Tensor) -> tuple[np.ndarray, QParams]:
    """Frame 0's latent as uint8 with per-tensor parameters (its error is damped 20x by the 0.05 anchor)."""
    return quantize(z.detach().float().cpu())


def dequantize_latent(q: np.ndarray, qp: QParams, device: torch.device | str = "cpu") -> torch.Tensor:
    return dequantize(q, qp, device)


# ---------------------------------------------------------------------------- loss
def _lpips_net(kind: str) -> str:
    return "alex" if kind == "lpips-alex" else "vgg"


class PromptLoss(torch.nn.Module):
    """Per-frame loss ``(n,)`` of generated frames against targets, plus the prompt L1 term.

    The perceptual network is loaded on first use only when the perceptual weight is positive:
    :class:`codec.metrics.lpips.LPIPS` for ``vgg`` / ``lpips-*``, :class:`codec.promptus.vgg.VGGContentLoss`
    for ``vgg19`` / ``vgg16``. ``perceptual_net`` injects a ready network (tests use random VGG weights).
    """

    def __init__(self, cfg: LossConfig, lpips_weights: str | os.PathLike[str] | None = None, *,
                 vgg_weights: str | os.PathLike[str] | None = None, perceptual_net: torch.nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        self._weights = lpips_weights
        self._vgg_weights = vgg_weights
        self._net: torch.nn.Module | None = perceptual_net

    def _perceptual_net(self, device: torch.device) -> torch.nn.Module:
        if self._net is None:
            if self.cfg.perceptual_kind in ("vgg19", "vgg16"):
                from codec.promptus.vgg import VGGContentLoss

                weights = self._vgg_weights if self.cfg.perceptual_kind == "vgg19" else self._weights
                self._net = VGGContentLoss(self.cfg.perceptual_kind, weights)  # type: ignore[arg-type]
            else:
                from codec.metrics.lpips import LPIPS

                self._net = LPIPS(_lpips_net(self.cfg.perceptual_kind), weights=self._weights)
        return self._net.to(device)

    def forward(self, frames: torch.Tensor, targets: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        x = frames.float()
        if self.cfg.clamp:
            x = x + (x.clamp(-1.0, 1.0) - x).detach()  # judged as displayed (clamped), straight-through gradient
        y = targets.to(x.device, torch.float32)
        out = self.cfg.mse * (x - y).square().mean(dim=(1, 2, 3))
        if self.cfg.perceptual > 0:
            net = self._perceptual_net(x.device)
            if self.cfg.perceptual_kind in ("vgg19", "vgg16"):
                p = net(x, y).float()
            elif self.cfg.perceptual_kind == "vgg":
                fx, fy = net.features(x), net.features(y)
                p = sum((a - b).square().mean(dim=(1, 2, 3)) for a, b in zip(fx, fy)) / len(fx)
            else:
                p = net(x, y)
            out = out + self.cfg.perceptual * p
        if self.cfg.l1_prompt > 0:
            out = out + self.cfg.l1_prompt * prompts.float().abs().mean(dim=(1, 2))
        return out


class Precision:
    """Forward precision and backward scaling of a fit; the factors stay float32 masters.

    ``fp32``: nothing. ``bf16``: autocast to bf16 (bf16 has fp32's exponent range: no underflow).
    ``fp16``: autocast to fp16 where the weights are float32, and dynamic loss scaling (GradScaler):
    the loss is multiplied by 2^16 before the backward pass so that small gradients stay above
    fp16's smallest subnormal (6e-8), then unscaled in float32 before Adam; steps with inf/NaN
    gradients are skipped and the scale backs off. ``fp16-noscale``: the official code (autocast,
    no scaling): once the residual is small most gradients underflow to exactly zero.
    """

    def __init__(self, mode: str, device: torch.device):
        if mode not in _PRECISIONS:
            raise ValueError(f"precision must be one of {list(_PRECISIONS)}, got {mode!r}")
        self.mode = mode
        self.device = device
        self.dtype = {"fp16": torch.float16, "fp16-noscale": torch.float16, "bf16": torch.bfloat16}.get(mode)
        self.scaler = torch.amp.GradScaler(device.type, init_scale=2.0**16, enabled=mode == "fp16")

    def autocast(self) -> Any:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        """Backward pass; afterwards the parameters' ``.grad`` hold the true (unscaled) float32 gradients."""
        self.scaler.scale(loss).backward()
        if self.scaler.is_enabled():
            self.scaler.unscale_(opt)

    def step(self, opt: torch.optim.Optimizer) -> None:
        self.scaler.step(opt)
        self.scaler.update()
        opt.zero_grad(set_to_none=True)


# ---------------------------------------------------------------------------- fitting
def _init_factors(cfg: FitConfig, shape: tuple[int, int], key: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    g = torch.Generator(device="cpu").manual_seed(cfg.init_seed * 1_000_003 + key)
    L, D = shape
    u = torch.rand((L, cfg.rank), generator=g)
    v = torch.rand((cfg.rank, D), generator=g)
    return u.to(device), v.to(device)


def fit_segment(
    receiver: Receiver,
    targets: torch.Tensor,
    prev: Factors | None,
    z_start: torch.Tensor,
    cfg: FitConfig,
    *,
    init: tuple[torch.Tensor, torch.Tensor],
    iters: int,
    patience: int,
    loss_fn: PromptLoss,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[QuantFactors, float, int]:
    """Fit one keyframe so the receiver's segment matches ``targets`` ``(n, 3, H, W)``.

    ``n = 1`` with ``prev = None`` is frame 0. Returns ``(quantized best factors, best loss, iterations run)``.
    """
    device = receiver.generator.device
    n = targets.shape[0]
    targets = targets.to(device, torch.float32)
    u = init[0].detach().clone().float().to(device).requires_grad_(True)
    v = init[1].detach().clone().float().to(device).requires_grad_(True)
    lr = cfg.lr
    opt = torch.optim.Adam([u, v], lr=lr)
    best = (math.inf, u.detach().clone(), v.detach().clone())
    checkpoint_best = math.inf
    weights = torch.ones(n, device=device)
    since_check = 0
    it = 0
    prec = Precision(cfg.precision, device)
    for it in range(1, iters + 1):
        nxt = Factors(fake_quant(u), fake_quant(v))
        seg = Segment(prev, nxt, n, z_start)
        with prec.autocast():
            frames, _ = receiver(seg, clamp=False)
            per = loss_fn(frames, targets, interpolate_prompts(prev, nxt, n, seg.steps))
        mean_loss = float(per.detach().mean())
        if mean_loss < best[0]:
            best = (mean_loss, u.detach().clone(), v.detach().clone())
        loss = (per * weights).sum() / weights.sum()
        opt.zero_grad(set_to_none=True)
        prec.backward(loss, opt)
        prec.step(opt)
        if n > 1 and cfg.worst_extra:
            weights = torch.ones(n, device=device)
            weights[int(per.detach().argmax())] += cfg.worst_extra
        if progress is not None:
            progress(it, best[0])
        if cfg.target_loss is not None and best[0] <= cfg.target_loss:
            break
        since_check += 1
        if since_check >= patience:
            since_check = 0
            if best[0] >= checkpoint_best:  # no new best within the window
                if cfg.stall_stop and lr <= cfg.lr_min:
                    break
                lr = max(lr * 0.5, cfg.lr_min)
                opt = torch.optim.Adam([u, v], lr=lr)
            checkpoint_best = best[0]
    if not math.isfinite(best[0]):  # zero iterations: the initial factors, evaluated below
        best = (math.nan, u.detach().clone(), v.detach().clone())
    return QuantFactors.from_factors(best[1], best[2]), best[0], it if iters else 0


def fit_segment_official(
    receiver: Receiver,
    targets: torch.Tensor,
    prev: Factors | None,
    z_start: torch.Tensor,
    cfg: FitConfig,
    *,
    init: tuple[torch.Tensor, torch.Tensor],
    iters: int,
    patience: int,
    loss_fn: PromptLoss,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[QuantFactors, float, int, int]:
    """One keyframe with the official loop's step semantics (``PROMPTUS_OFFICIAL.md`` sections 3 and 5).

    - Steps: iteration 0 takes one Adam step per frame ``s = 1..n`` in ascending order; later ones
      take ``sorted([1..n] + [w] * worst_extra)``, ``w`` being the frame whose *first* loss in the
      previous iteration was highest (ties: the lowest frame). Frame 0 (``prev is None``): one step
      per iteration. Each step is a forward of that frame alone, its own backward and Adam step.
    - Iteration loss: the mean of the frames' first losses (n different parameter states). A strictly
      lower one saves the fake-quantized factors of the iteration's *last* forward (frame n, before
      its update).
    - Plateau: a counter starting at ``patience`` counts iterations down; at zero, if no new best
      appeared since the previous check, the rate halves (floor ``lr_min``) and Adam is re-created
      (even at the floor); either way the counter restarts. The first check never lowers the rate.
    - No early stop. With ``cfg.quantizer == "running"`` the quantization range only grows.

    Returns ``(best factors, best iteration loss, iterations run, optimizer steps taken)``.
    """
    device = receiver.generator.device
    n = targets.shape[0]
    targets = targets.to(device, torch.float32)
    u = init[0].detach().clone().float().to(device).requires_grad_(True)
    v = init[1].detach().clone().float().to(device).requires_grad_(True)
    lr = cfg.lr
    opt = torch.optim.Adam([u, v], lr=lr)
    prec = Precision(cfg.precision, device)
    running = cfg.quantizer == "running"
    qu_run, qv_run = RunningQuant(), RunningQuant()
    best_loss, best_q = math.inf, None
    latest_min = 1e9
    counter = patience
    worst = 0
    steps_taken = 0
    it = 0
    for it in range(iters):
        extra = [worst] * cfg.worst_extra if it > 0 and prev is not None else []  # frame 0: one step per iteration
        plan = sorted(list(range(1, n + 1)) + extra)
        first: dict[int, float] = {}
        last_q: QuantFactors | None = None
        for s in plan:
            if running:
                fu, cu, pu = qu_run.fake_quant(u)
                fv, cv, pv = qv_run.fake_quant(v)
                last_q = QuantFactors(cu, cv, pu, pv)
            else:
                fu, fv = fake_quant(u), fake_quant(v)
                last_q = None
            nxt = Factors(fu, fv)
            seg = Segment(prev, nxt, n, z_start, steps=(s,))
            with prec.autocast():
                frames, _ = receiver(seg, clamp=False)
                loss = loss_fn(frames, targets[s - 1 : s], interpolate_prompts(prev, nxt, n, seg.steps))[0]
            first.setdefault(s, float(loss.detach()))
            if last_q is None:
                last_q = QuantFactors.from_factors(u.detach(), v.detach())
            prec.backward(loss, opt)
            prec.step(opt)
            steps_taken += 1
        losses = np.array([first[s] for s in range(1, n + 1)])
        mean_loss = float(losses.mean())
        if mean_loss < best_loss:
            best_loss, best_q = mean_loss, last_q
        worst = int(np.argmax(losses)) + 1
        if progress is not None:
            progress(it + 1, best_loss)
        counter -= 1
        if counter == 0:
            if best_loss == latest_min:
                lr = max(lr * 0.5, cfg.lr_min)
                opt = torch.optim.Adam([u, v], lr=lr)
            latest_min = best_loss
            counter = patience
    if best_q is None:  # zero iterations: the initial factors
        best_q, best_loss = QuantFactors.from_factors(u.detach(), v.detach()), math.nan
    return best_q, best_loss, it + 1 if iters else 0, steps_taken


@torch.no_grad()
def _evaluate(
    receiver: Receiver, q: QuantFactors, prev: Factors | None, length: int, z_start: torch.Tensor,
    targets: torch.Tensor, loss_fn: PromptLoss,
) -> tuple[Factors, torch.Tensor, float, np.ndarray]:
    """Decoder-side reconstruction of one segment: factors, end latent, loss and per-frame MSE."""
    device = receiver.generator.device
    fac = q.factors(device)
    seg = Segment(prev, fac, length, z_start)
    frames, latents = receiver(seg, clamp=True)
    y = targets.to(device, torch.float32)
    per = loss_fn(frames, y, seg.prompts())
    mse = (frames.float() - y).square().mean(dim=(1, 2, 3))
    return fac, latents[-1:].detach(), float(per.mean()), mse.double().cpu().numpy()


def _atomic_save(obj: Any, path: Path) -> None:
    write_atomic(path, lambda p: torch.save(obj, p))


def _ckpt_doc(kf: KeyframeFit, digest: str) -> dict[str, Any]:
    q = kf.factors
    return {
        "digest": digest, "frame": kf.frame, "length": kf.length, "u": q.u, "v": q.v,
        "u_q": (q.u_q.scale, q.u_q.zero_point), "v_q": (q.v_q.scale, q.v_q.zero_point),
        "latent": kf.latent, "loss": kf.loss, "frame_mse": kf.frame_mse,
        "iterations": kf.iterations, "seconds": kf.seconds,
    }  # fmt: skip


def _load_ckpt(path: Path, digest: str) -> KeyframeFit | None:
    """A checkpoint of :func:`_ckpt_doc`, or None if it is partial, foreign or for other input.

    Read with ``weights_only=True``: tensors, numbers, containers and plain numpy arrays only, so
    a planted file cannot run code (``weights_only=False`` would unpickle anything).
    """
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    dtypes = [type(np.dtype(t)) for t in (np.uint8, np.float32, np.float64, np.int64)]
    try:
        with torch.serialization.safe_globals([_reconstruct, np.ndarray, np.dtype, *dtypes]):
            doc = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(doc, dict) or doc.get("digest") != digest:
            return None
        q = QuantFactors(doc["u"], doc["v"], QParams(*doc["u_q"]), QParams(*doc["v_q"]))
        return KeyframeFit(doc["frame"], doc["length"], q, doc["latent"], doc["loss"], doc["frame_mse"],
                           doc["iterations"], doc["seconds"])  # fmt: skip
    except Exception:  # noqa: BLE001 - a partial, foreign or unsafe file is simply not reused
        return None


def _frames_tensor(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 ``(T, H, W, 3)`` -> a uint8 ``(T, 3, H, W)`` view; float ``(T, 3, H, W)`` in [-1, 1] as it is.

    A long video stays uint8 in memory; segments become float one at a time (:func:`_as_float`).
    """
    if isinstance(frames, np.ndarray):
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise InputError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
        return torch.from_numpy(frames).permute(0, 3, 1, 2)
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise InputError(f"frames must be (T, 3, H, W), got {tuple(frames.shape)}")
    return frames.detach().cpu()


def _as_float(frames: torch.Tensor) -> torch.Tensor:
    """Frames in [-1, 1] as float32."""
    return frames.float().div(127.5).sub(1.0) if frames.dtype == torch.uint8 else frames.float()


def fit_video(
    receiver: Receiver,
    frames: torch.Tensor | np.ndarray,
    cfg: FitConfig,
    *,
    init: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    lpips_weights: str | os.PathLike[str] | None = None,
    vgg_weights: str | os.PathLike[str] | None = None,
    loss_fn: PromptLoss | None = None,
    progress: bool = True,
) -> VideoFit:
    """Fit every keyframe of a video at one rank.

    :param receiver: the receiver the prompts are fitted through (its generator fixes the resolution).
    :param frames: ``(T, 3, H, W)`` floats in [-1, 1] or uint8 ``(T, H, W, 3)``, at the generator's resolution.
    :param cfg: the fitting schedule.
    :param init: initial factors per keyframe (e.g. from :func:`svd_factors`); overrides warm start.
    :param checkpoint_dir: folder for per-keyframe checkpoints; an interrupted fit resumes from it.
    :param vgg_weights: torchvision VGG19 weights for the official perceptual term (``perceptual_kind="vgg19"``).
    :param loss_fn: a ready loss (overrides ``cfg.loss`` and the weight paths; tests inject random VGG weights).
    :param progress: show tqdm bars.
    """
    from tqdm.auto import tqdm

    gen = receiver.generator
    x = _frames_tensor(frames)
    side = gen.config.resolution
    if tuple(x.shape[2:]) != (side, side):
        raise InputError(f"frames are {x.shape[3]}x{x.shape[2]}, the generator makes {side}x{side}")
    T = x.shape[0]
    pos = keyframe_positions(T, cfg.interval)
    if init is not None and len(init) != len(pos):
        raise ValueError(f"init has {len(init)} keyframes, the video {len(pos)}")
    digest = hashlib.sha256(
        f"{cfg.digest()}|{receiver.spec}|{gen.fingerprint()}|{T}|".encode()
        + _as_float(x[:: max(1, T // 8)]).numpy().round(3).tobytes()
        + (b"".join(np.asarray(a.detach().cpu()).round(4).tobytes() for pair in init for a in pair) if init else b"")
    ).hexdigest()[:16]
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    loss_fn = loss_fn if loss_fn is not None else PromptLoss(cfg.loss, lpips_weights, vgg_weights=vgg_weights)

    with torch.no_grad():
        z0 = receiver.initial_latent(_as_float(x[:1]).to(gen.device))
    if cfg.first_latent == "float32":  # official: frame 0 anchors on the float32 latent, which the stream carries
        q0, q0p = z0.detach().float().cpu().numpy(), None
        z_prev = z0.float()
    else:
        q0, q0p = quantize_latent(z0)
        z_prev = dequantize_latent(q0, q0p, gen.device)
    noise = receiver.noise(cfg.noise_seed)
    prev: Factors | None = None
    fits: list[KeyframeFit] = []
    bar = tqdm(total=len(pos), desc=f"rank {cfg.rank}", unit="kf", disable=not progress, leave=False)
    for i, k in enumerate(pos):
        length = 1 if i == 0 else k - pos[i - 1]
        first = k - length + 1
        targets = _as_float(x[first : k + 1])
        z_start = receiver.start_latent(z_prev, noise)
        path = ckpt / f"kf_{k:06d}.pt" if ckpt is not None else None
        kf = _load_ckpt(path, digest) if path is not None and path.is_file() else None
        if kf is None:
            if init is not None:
                start = init[i]
            elif cfg.warm_start and prev is not None:
                start = (prev.u, prev.v)
            else:
                start = _init_factors(cfg, gen.config.prompt_shape, k, gen.device)
            iters = cfg.iters_first if i == 0 and init is None else cfg.iters
            patience = cfg.patience_first if i == 0 and init is None else cfg.patience
            t0 = time.perf_counter()
            inner = tqdm(total=iters, desc=f"  frame {k}", unit="it", disable=not progress, leave=False)

            def report(it: int, best: float, inner: Any = inner) -> None:
                inner.update(1)
                if it % 10 == 0:
                    inner.set_postfix(loss=f"{best:.4g}")

            kwargs = dict(init=start, iters=iters, patience=patience, loss_fn=loss_fn, progress=report)
            if cfg.steps == "per-frame":
                q, _, iters_run, steps = fit_segment_official(receiver, targets, prev, z_start, cfg, **kwargs)
            else:
                q, _, iters_run = fit_segment(receiver, targets, prev, z_start, cfg, **kwargs)
                steps = iters_run
            inner.close()
            fac, z_end, loss, mse = _evaluate(receiver, q, prev, length, z_start, targets, loss_fn)
            kf = KeyframeFit(k, length, q, z_end.float().cpu(), loss, mse, iters_run, time.perf_counter() - t0, steps)
            if path is not None:
                _atomic_save(_ckpt_doc(kf, digest), path)
        else:
            fac = kf.factors.factors(gen.device)
        fits.append(kf)
        prev = fac
        z_prev = kf.latent.to(gen.device)
        bar.update(1)
        bar.set_postfix(loss=f"{kf.loss:.4g}")
    bar.close()
    return VideoFit(cfg, receiver.spec, T, q0, q0p, tuple(fits))


# ---------------------------------------------------------------------------- rank derivation
def svd_factors(fac: Factors, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-``rank`` factors whose prompt ``U V / sqrt(rank)`` is the best approximation of ``fac``'s prompt.

    Truncated SVD ``c = A S B^T``: ``U = A_r sqrt(S_r) r^1/4``, ``V = sqrt(S_r) B_r^T r^1/4``.
    """
    c = fac.prompt().double()
    a, s, bt = torch.linalg.svd(c, full_matrices=False)
    root = s[:rank].sqrt() * rank**0.25
    return (a[:, :rank] * root).float(), (root[:, None] * bt[:rank]).float()


def derive_rank(
    receiver: Receiver,
    frames: torch.Tensor | np.ndarray,
    high: VideoFit,
    rank: int,
    *,
    iters: int | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    lpips_weights: str | os.PathLike[str] | None = None,
    vgg_weights: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> VideoFit:
    """A lower rung from a high-rank fit: SVD-truncate each keyframe's prompt, then fine-tune.

    Fine-tuning runs ``iters`` (default ``high.config.iters``) iterations per keyframe along the new
    rank's own chain (its own previous keyframes and latents), with the high fit's schedule otherwise.
    """
    if not 1 <= rank <= high.rank:
        raise ValueError(f"derived rank must be in 1..{high.rank}, got {rank}")
    init = [svd_factors(kf.factors.factors(), rank) for kf in high.keyframes]
    cfg = replace(high.config, rank=rank, iters=high.config.iters if iters is None else iters)
    return fit_video(receiver, frames, cfg, init=init, checkpoint_dir=checkpoint_dir,
                     lpips_weights=lpips_weights, vgg_weights=vgg_weights, progress=progress)


# ---------------------------------------------------------------------------- nested (growing) ranks
def grow_rank(fac: Factors, rank: int, *, eps: float = 1e-3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-``rank`` factors whose prompt ``U V / sqrt(rank)`` equals ``fac``'s prompt plus ``O(eps^2)``.

    The old components are scaled by ``(rank / r)^(1/4)`` (which undoes the change of the ``1/sqrt(r)``
    normalisation); the new ones are ``eps`` times a seeded standard normal, times the old factors' RMS. They
    must not be zero: a zero column of ``U`` and a zero row of ``V`` have zero gradient (a saddle), so the
    new rank would never be used.
    """
    r = fac.rank
    if rank < r:
        raise ValueError(f"grow_rank: target rank {rank} is below the factors' rank {r}")
    s = (rank / r) ** 0.25
    u, v = fac.u.detach().float() * s, fac.v.detach().float() * s
    if rank == r:
        return u, v
    g = torch.Generator(device="cpu").manual_seed(seed)
    L, D = u.shape[0], v.shape[1]
    new_u = torch.randn((L, rank - r), generator=g).to(u.device) * (eps * float(u.square().mean().sqrt()))
    new_v = torch.randn((rank - r, D), generator=g).to(v.device) * (eps * float(v.square().mean().sqrt()))
    return torch.cat([u, new_u], dim=1), torch.cat([v, new_v], dim=0)


def nested_init(low: VideoFit, rank: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Initial factors per keyframe for a fit at ``rank`` from a lower rank's fit (:func:`grow_rank`).

    Pass to :func:`fit_video` as ``init``: every keyframe, frame 0 included, then runs ``FitConfig.iters``
    iterations from the lower rank's (dequantized) solution. The fit keeps its best iterate, and the first
    iterate is (up to re-quantization) the lower rank's prompt, so frame 0's fitting loss can only fall as
    the rank grows, and a later keyframe's nearly so (its segment opens on this rank's own previous
    keyframe, which differs slightly from the lower rank's). What the extra rank buys beyond the extra
    iterations is a separate question (``bench/bench_tiny_generator.py`` measures it against a control
    that keeps the rank).
    """
    return [grow_rank(kf.factors.factors(), rank, seed=kf.frame) for kf in low.keyframes]
