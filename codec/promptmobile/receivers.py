"""PromptMobile receiver variants, registered in :data:`codec.receivers.RECEIVERS`.

=========================  =========  ================  =====================  ============================
name                       UNet size  K/V + head cache  deep-feature reuse     meaning
=========================  =========  ================  =====================  ============================
``promptmobile-lowres``    half       no                no                     two-stage generation only
``promptmobile-lossless``  full       yes               no                     output = ``promptus``
``promptmobile-lossy``     full       yes               1 full frame in 5      lossless + lossy caching
``promptmobile``           half       yes               1 full frame in 5      everything (the fast one)
=========================  =========  ================  =====================  ============================

Every variant takes the options ``lowres``, ``kv_cache``, ``threshold`` (relative prompt change
below which a frame may reuse a reference frame's deep features; 0 = never), ``full_every``
(0: as few full frames as the threshold allows; F: ``ceil(N / F)`` reference frames per segment
placed to minimise the prompt change, frames beyond the threshold still run in full),
``depth`` (shallow levels recomputed by a reusing frame), ``upsampler`` (weights file) and ``stitch``
(k > 1: two-stage generation with k x k low-resolution frames generated as one canvas,
:mod:`.stitching`; without the caches, so ``promptmobile-lowres:stitch=2``). So
``promptmobile:threshold=0`` is two-stage generation with lossless caching only, and
``promptmobile:full_every=0,threshold=0.2`` is pure threshold-driven reuse. The default lossy
setting (``full_every=5``, ``threshold=1.0``) fixes the compute per segment, so decode time is
predictable for a player, while the threshold still keeps frames whose prompt changed by more
than 100% from reusing anything (a fired guard adds full frames, so compute is then higher).
Because a receiver is chosen by spec string, the encoder fits prompts *through* the variant that
will play them (``codec.promptus.fit``), and the bitstream records the spec. Reuse decisions are
a deterministic function of the dequantized factors, so sender and receiver agree (up to a
prompt distance landing within float rounding of the threshold).

Output change: ``promptmobile-lossless`` equals ``promptus`` up to float rounding (tests state the
bound: 1e-5 in frames); the lossy and low-resolution variants differ, and fitting through them
lets the prompts compensate. System-level optimisations (dtype, channels-last, compilation) are applied to the
generator by :func:`codec.promptmobile.system.optimize`.
"""

from __future__ import annotations

import math

import torch

from codec.promptmobile.caching import DenseKV, FactorKV, ReusePlan, SegmentUNet, plan_reuse
from codec.promptmobile.lowres import TwoStage
from codec.promptmobile.upsampler import load_upsampler
from codec.promptus.generator import PromptusGenerator
from codec.promptus.prompt import aligned_factors
from codec.promptus.receiver import Receiver, ReceiverOutput, Segment
from codec.receivers import register_receiver

__all__ = [
    "DEFAULT_THRESHOLD",
    "DEFAULT_FULL_EVERY",
    "PromptMobileReceiver",
    "LowResReceiver",
    "LosslessReceiver",
    "LossyReceiver",
    "segment_factors",
]

#: Default lossy setting: one reference frame per 5 frames, reuse only within 100% prompt change.
DEFAULT_THRESHOLD = 1.0
DEFAULT_FULL_EVERY = 5


def segment_factors(seg: Segment) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor, torch.Tensor, float]:
    """``(u0, v0, u1, v1, norm)`` with ``c(w) = ((1-w) u0 + w u1)((1-w) v0 + w v1) * norm``.

    The same factors as :func:`codec.promptus.prompt.interpolate_prompts` uses (rank-aligned when
    the two keyframes have different ranks); ``u0 = v0 = None`` for frame 0's segment.
    """
    nxt, prev = seg.next, seg.prev
    if prev is None:
        return None, None, nxt.u, nxt.v, 1.0 / math.sqrt(nxt.rank)
    if prev.rank == nxt.rank:
        return prev.u.to(nxt.u.dtype), prev.v.to(nxt.v.dtype), nxt.u, nxt.v, 1.0 / math.sqrt(nxt.rank)
    r = max(prev.rank, nxt.rank)
    (u0, v0), (u1, v1) = aligned_factors(prev, r), aligned_factors(nxt, r)
    return u0.to(u1.dtype), v0.to(v1.dtype), u1, v1, 1.0


@register_receiver("promptmobile")
class PromptMobileReceiver(Receiver):
    """The PromptMobile receiver; the registered variants differ only in their defaults.

    :param lowres: two-stage generation (UNet at 1/scale latent side, TAESD, learned upsampler).
    :param kv_cache: cross-attention K/V from cached projections of the keyframe factors, and the
        prompt-independent head of the UNet once per segment (lossless).
    :param threshold: relative prompt change below which a frame reuses a reference frame's deep
        UNet features (lossy); 0 disables reuse.
    :param full_every: 0: threshold mode (fewest reference frames); F >= 1: ``ceil(N / F)``
        reference frames per segment (fixed budget), see :func:`~codec.promptmobile.caching.plan_reuse`.
    :param depth: shallow levels a reusing frame recomputes (1 .. levels - 1).
    :param upsampler: upsampler weights file (default: the committed ``codec/data/upsampler-x2.pt``).
    :param stitch: 1: off; k > 1: generate the low-resolution frames k x k to a canvas
        (:mod:`~codec.promptmobile.stitching`); needs ``lowres`` and no caches (not implemented together).
    """

    def __init__(
        self,
        generator: PromptusGenerator,
        *,
        lowres: bool = True,
        kv_cache: bool = True,
        threshold: float = DEFAULT_THRESHOLD,
        full_every: int = DEFAULT_FULL_EVERY,
        depth: int = 1,
        upsampler: str | None = None,
        stitch: int = 1,
    ):
        super().__init__(generator)
        if stitch < 1:
            raise ValueError(f"stitch must be >= 1, got {stitch}")
        if stitch > 1 and (not lowres or kv_cache or threshold > 0):
            raise ValueError("stitch > 1 needs lowres=True, kv_cache=False and threshold=0 (stitching with the "
                             "caches is not implemented)")
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        if full_every < 0:
            raise ValueError(f"full_every must be >= 0, got {full_every}")
        levels = len(generator.unet.up_blocks)
        if threshold > 0 and not 1 <= depth < levels:
            raise ValueError(f"depth must be in 1..{levels - 1} for this UNet, got {depth}")
        self.lowres, self.kv_cache = bool(lowres), bool(kv_cache)
        self.threshold, self.full_every, self.depth = float(threshold), int(full_every), int(depth)
        self.stitch = int(stitch)
        self.runner = SegmentUNet(generator.unet) if (self.kv_cache or self.threshold > 0) else None
        self.two_stage: TwoStage | None = None
        if self.lowres:
            ups = load_upsampler(upsampler).to(generator.device, generator.dtype)
            self.two_stage = TwoStage(generator, ups)
        #: the reuse plan of the last segment (None when reuse is off), for statistics
        self.last_plan: ReusePlan | None = None

    # ---------------------------------------------------------------- shape hooks
    def latent_shape(self, batch: int = 1) -> tuple[int, ...]:
        if self.two_stage is not None:
            return self.two_stage.latent_shape(batch)
        return super().latent_shape(batch)

    def initial_latent(self, frame0: torch.Tensor) -> torch.Tensor:
        if self.two_stage is not None:
            return self.two_stage.initial_latent(frame0)
        return super().initial_latent(frame0)

    # ---------------------------------------------------------------- generation
    def plan(self, seg: Segment, prompts: torch.Tensor | None = None) -> ReusePlan | None:
        """The deep-feature reuse plan of ``seg`` (None when reuse is off)."""
        if self.threshold <= 0:
            return None
        c = seg.prompts() if prompts is None else prompts
        return plan_reuse(c, self.threshold, self.depth, self.full_every or None)

    def latents(self, seg: Segment, plan: ReusePlan | None = None) -> torch.Tensor:
        """x0 latents ``(len(seg.steps), C, h, w)`` of the segment.

        :param plan: force a reuse plan (the cost model does, on shape-only tensors); default
            :meth:`plan`.
        """
        gen = self.generator
        cfg = gen.config
        z = seg.z_start.to(gen.device, gen.dtype)
        if z.ndim == 3:
            z = z.unsqueeze(0)
        expected = tuple(self.latent_shape(1)[1:])
        if tuple(z.shape[1:]) != expected:
            raise ValueError(f"{self.name}: start latent must be (1, {', '.join(map(str, expected))}), "
                             f"got {tuple(z.shape)}")
        if self.stitch > 1:
            from codec.promptmobile.stitching import stitched_eps

            self.last_plan = None
            sigma = cfg.sigma
            x_in = z * math.sqrt(1.0 + sigma**2)
            eps = stitched_eps(gen, x_in * cfg.c_in, seg.prompts().to(gen.device, gen.dtype), self.stitch)
            return x_in - sigma * eps
        if self.runner is None:
            self.last_plan = None
            return gen.generate_latents(seg.prompts(), z)
        if z.shape[0] != 1:
            raise ValueError(f"{self.name}: a segment has one start latent, got {z.shape[0]}")
        w = torch.as_tensor(seg.steps, dtype=seg.next.u.dtype, device=seg.next.u.device) / float(seg.length)
        prompts = None
        if self.kv_cache:
            u0, v0, u1, v1, norm = segment_factors(seg)
            kv = FactorKV(u0, v0, u1, v1, norm, w.to(gen.device))
        else:
            prompts = seg.prompts().to(gen.device, gen.dtype)
            kv = DenseKV(prompts)
        if plan is None and self.threshold > 0:
            plan = self.plan(seg, prompts)
        self.last_plan = plan
        sigma = cfg.sigma
        x_in = z * math.sqrt(1.0 + sigma**2)
        eps = self.runner.eps(x_in * cfg.c_in, cfg.timestep, kv, plan)
        return x_in - sigma * eps

    def forward(self, seg: Segment, clamp: bool = True, plan: ReusePlan | None = None) -> ReceiverOutput:
        latents = self.latents(seg, plan)
        if self.two_stage is not None:
            frames = self.two_stage.decode(latents, clamp=clamp)
        else:
            frames = self.generator.decode(latents, clamp=clamp)
        return ReceiverOutput(frames, latents)


@register_receiver("promptmobile-lowres")
class LowResReceiver(PromptMobileReceiver):
    """Two-stage generation only (no caches)."""

    def __init__(self, generator: PromptusGenerator, *, lowres: bool = True, kv_cache: bool = False,
                 threshold: float = 0.0, full_every: int = 0, depth: int = 1, upsampler: str | None = None,
                 stitch: int = 1):
        super().__init__(generator, lowres=lowres, kv_cache=kv_cache, threshold=threshold,
                         full_every=full_every, depth=depth, upsampler=upsampler, stitch=stitch)


@register_receiver("promptmobile-lossless")
class LosslessReceiver(PromptMobileReceiver):
    """Full resolution with the lossless caches: the same frames as ``promptus``, less compute."""

    def __init__(self, generator: PromptusGenerator, *, lowres: bool = False, kv_cache: bool = True,
                 threshold: float = 0.0, full_every: int = 0, depth: int = 1, upsampler: str | None = None):
        super().__init__(generator, lowres=lowres, kv_cache=kv_cache, threshold=threshold,
                         full_every=full_every, depth=depth, upsampler=upsampler)


@register_receiver("promptmobile-lossy")
class LossyReceiver(PromptMobileReceiver):
    """Full resolution with lossless and lossy caching."""

    def __init__(self, generator: PromptusGenerator, *, lowres: bool = False, kv_cache: bool = True,
                 threshold: float = DEFAULT_THRESHOLD,
                 full_every: int = DEFAULT_FULL_EVERY, depth: int = 1, upsampler: str | None = None):
        super().__init__(generator, lowres=lowres, kv_cache=kv_cache, threshold=threshold,
                         full_every=full_every, depth=depth, upsampler=upsampler)
