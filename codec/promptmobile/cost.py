"""Cost model: multiply-accumulates per frame of every receiver variant on the real SD-Turbo architecture.

MACs are counted with :class:`torch.utils.flop_counter.FlopCounterMode` (FLOPs / 2) while the
receiver's own code runs on the full SD-Turbo UNet + TAESD architecture built on the ``meta``
device (shapes only: no memory, no arithmetic, seconds to run). Counted: convolutions, matrix
products and attention (``aten.convolution``, ``mm``, ``addmm``, ``bmm``, SDPA); not counted:
normalisations, activations, additions and interpolation (a few percent of the total in a UNet).
On real CPU tensors PyTorch's fused CPU attention kernel has no formula in the counter; we add
one (:data:`_EXTRA_FORMULAS`) so counts agree on every device.

A segment of ``n_frames`` frames between two keyframes of rank ``rank`` is decoded; the per-frame
figure includes the per-segment work (shared head, keyframe projections) divided by the frames.
Deep-feature reuse depends on prompt values, which the meta device does not have, so lossy
variants are counted with an explicit :class:`~codec.promptmobile.caching.ReusePlan`
(:func:`even_plan`: ``n_full`` evenly spread reference frames).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from codec.promptmobile.caching import ReusePlan

__all__ = [
    "MacCount", "count_macs", "default_plan", "even_plan", "meta_generator", "segment_for", "VariantCost",
    "variant_cost", "Timing", "time_receiver", "PAPER", "MacSplit", "mac_split",
]

#: The PromptMobile paper's compute figures (Liu et al., arXiv 2503.16112, abstract): two-stage
#: generation 8.1x less compute than Promptus, inter-frame caching 16.6% less computation, 13.6x
#: faster generation overall (a speed, with the system-level optimisations; not a MAC ratio).
PAPER = {"two_stage_ratio": 8.1, "caching_reduction": 0.166, "overall_speedup": 13.6}


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args: Any, out_shape=None, **kwargs: Any) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_EXTRA_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}


@dataclass(frozen=True, slots=True)
class MacCount:
    """Multiply-accumulates of one call, in total and per ATen operator."""

    total: int
    by_op: dict[str, int] = field(default_factory=dict)

    def __add__(self, other: MacCount) -> MacCount:
        ops = dict(self.by_op)
        for k, v in other.by_op.items():
            ops[k] = ops.get(k, 0) + v
        return MacCount(self.total + other.total, ops)


def count_macs(fn: Callable[[], Any]) -> MacCount:
    """MACs of ``fn()`` (FLOPs / 2 as counted by torch's flop counter)."""
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS) as counter:
        fn()
    ops = {str(k).replace("aten.", ""): int(v) // 2 for k, v in counter.get_flop_counts().get("Global", {}).items()}
    return MacCount(int(counter.get_total_flops()) // 2, ops)


def even_plan(n: int, n_full: int, depth: int = 1) -> ReusePlan:
    """``n_full`` reference frames at the centres of ``n_full`` equal groups; the others reuse their group's."""
    if not 1 <= n_full <= n:
        raise ValueError(f"n_full must be in 1..{n}, got {n_full}")
    bounds = [round(g * n / n_full) for g in range(n_full + 1)]
    source = []
    for g in range(n_full):
        lo, hi = bounds[g], bounds[g + 1]
        source += [(lo + hi - 1) // 2] * (hi - lo)
    return ReusePlan(tuple(source), depth)


def default_plan(receiver, n_frames: int) -> ReusePlan | None:
    """A plan with as many full frames as ``receiver``'s budget gives a segment of ``n_frames`` frames.

    MACs depend only on how many frames run in full, not on which; the budget mode places
    ``ceil(n / full_every)`` references (more only if the threshold guard fires, which depends on
    the prompts). None for receivers without reuse; ValueError for threshold-only reuse, whose
    count depends on prompt values.
    """
    if getattr(receiver, "threshold", 0) <= 0:
        return None
    every = getattr(receiver, "full_every", 0)
    if not every:
        raise ValueError(f"{receiver.spec}: threshold-only reuse has no fixed plan; pass one explicitly")
    return even_plan(n_frames, -(-n_frames // every), receiver.depth)


def meta_generator(sample_size: int = 64):
    """SD-Turbo UNet + TAESD (real architecture) on the meta device: shapes without weights."""
    from dataclasses import replace

    from diffusers import AutoencoderTiny, UNet2DConditionModel

    from codec.promptus.generator import SD_TURBO, PromptusGenerator
    from codec.promptus.testing import sd_turbo_unet_config, taesd_config

    with torch.device("meta"):
        unet = UNet2DConditionModel(**{**sd_turbo_unet_config(), "sample_size": sample_size})
        vae = AutoencoderTiny(**taesd_config())
    return PromptusGenerator(unet, vae, replace(SD_TURBO, name="sd-turbo-meta", sample_size=sample_size))


def segment_for(receiver, n_frames: int = 10, rank: int = 8, device: torch.device | str | None = None):
    """A segment of ``n_frames`` frames between two random rank-``rank`` keyframes, shaped for ``receiver``."""
    from codec.promptus.prompt import Factors
    from codec.promptus.receiver import Segment

    gen = receiver.generator
    device = gen.device if device is None else device
    cfg = gen.config
    g = torch.Generator().manual_seed(1)

    def fac() -> Factors:
        return Factors(torch.rand(cfg.prompt_len, rank, generator=g).to(device) * 2 - 1,
                       torch.rand(rank, cfg.prompt_dim, generator=g).to(device) * 2 - 1)

    z = torch.randn(receiver.latent_shape(1), generator=g).to(device)
    return Segment(fac(), fac(), n_frames, z)


@dataclass(frozen=True, slots=True)
class VariantCost:
    """MACs per frame of a receiver, split into UNet (with caches), decoder and upsampler."""

    spec: str
    n_frames: int
    unet: MacCount
    decode: MacCount
    upsampler: int

    @property
    def total_per_frame(self) -> float:
        return (self.unet.total + self.decode.total) / self.n_frames

    @property
    def unet_per_frame(self) -> float:
        return self.unet.total / self.n_frames

    @property
    def decode_per_frame(self) -> float:
        return (self.decode.total - self.upsampler) / self.n_frames

    @property
    def upsampler_per_frame(self) -> float:
        return self.upsampler / self.n_frames


def variant_cost(spec: str, generator=None, n_frames: int = 10, rank: int = 8, plan: ReusePlan | None = None,
                 **opts: Any) -> VariantCost:
    """MACs per frame of receiver ``spec`` decoding one segment (meta-device SD-Turbo unless ``generator``).

    :param plan: reuse plan for lossy variants (required when the receiver reuses features and the
        generator is on the meta device, whose tensors have no values).
    """
    from codec.promptus.receiver import get_receiver

    gen = meta_generator() if generator is None else generator
    rec = get_receiver(spec, gen, **opts)
    seg = segment_for(rec, n_frames, rank)
    if getattr(rec, "threshold", 0) > 0 and plan is None and gen.device.type == "meta":
        raise ValueError(f"{spec}: a lossy receiver on the meta device needs an explicit reuse plan")
    kwargs = {"plan": plan} if plan is not None else {}
    holder: dict[str, torch.Tensor] = {}

    def run_unet() -> None:
        holder["z"] = rec.latents(seg, **kwargs) if hasattr(rec, "latents") else rec.generator.generate_latents(
            seg.prompts(), seg.z_start)

    unet = count_macs(run_unet)
    two = getattr(rec, "two_stage", None)
    decoder = two.decode if two is not None else rec.generator.decode
    decode = count_macs(lambda: decoder(holder["z"]))
    ups = 0
    if two is not None:
        h, w = rec.latent_shape(1)[2:]
        vf = rec.generator.config.vae_scale_factor
        lowres = torch.zeros(n_frames, 3, h * vf, w * vf, device=gen.device, dtype=gen.dtype)
        ups = count_macs(lambda: two.upsampler(lowres)).total
    return VariantCost(rec.spec, n_frames, unet, decode, ups)


@dataclass(frozen=True, slots=True)
class MacSplit:
    """How much of PromptMobile's compute ratio comes from two-stage generation and how much from caching.

    All four are MACs per frame of the same segment (length, rank) on the same architecture:

    :param promptus: the Promptus receiver.
    :param two_stage: two-stage generation alone (``promptmobile-lowres``).
    :param lossless: two-stage + the lossless caches (``promptmobile:threshold=0``).
    :param full: two-stage + lossless + lossy caching (``promptmobile``).

    ``total_ratio == two_stage_ratio / (1 - caching_reduction)``: the two contributions multiply.
    """

    promptus: float
    two_stage: float
    lossless: float
    full: float

    def __post_init__(self) -> None:
        for name in ("promptus", "two_stage", "lossless", "full"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"MacSplit.{name} must be a finite positive MAC count, got {v}")

    @property
    def two_stage_ratio(self) -> float:
        """Promptus MACs / two-stage MACs (the paper's 8.1x)."""
        return self.promptus / self.two_stage

    @property
    def lossless_reduction(self) -> float:
        """Share of the two-stage MACs the lossless caches remove."""
        return 1.0 - self.lossless / self.two_stage

    @property
    def lossy_reduction(self) -> float:
        """Share of the remaining MACs deep-feature reuse removes."""
        return 1.0 - self.full / self.lossless

    @property
    def caching_reduction(self) -> float:
        """Share of the two-stage MACs both caches remove (the paper's 16.6%)."""
        return 1.0 - self.full / self.two_stage

    @property
    def total_ratio(self) -> float:
        """Promptus MACs / PromptMobile MACs."""
        return self.promptus / self.full

    def report(self, paper: dict[str, float] = PAPER) -> dict[str, float]:
        """The split next to the paper's figures, and what each mix of ours and the paper's would give."""
        return {
            "two_stage_ratio": round(self.two_stage_ratio, 2),
            "paper_two_stage_ratio": paper["two_stage_ratio"],
            "caching_reduction": round(self.caching_reduction, 4),
            "lossless_reduction": round(self.lossless_reduction, 4),
            "lossy_reduction_after_lossless": round(self.lossy_reduction, 4),
            "paper_caching_reduction": paper["caching_reduction"],
            "total_ratio": round(self.total_ratio, 2),
            "total_ratio_with_paper_caching": round(self.two_stage_ratio / (1 - paper["caching_reduction"]), 2),
            "paper_total_ratio_from_its_two_figures": round(
                paper["two_stage_ratio"] / (1 - paper["caching_reduction"]), 2),
            "share_of_log_ratio_from_two_stage": round(math.log(self.two_stage_ratio) / math.log(self.total_ratio), 3),
        }


def mac_split(generator=None, n_frames: int = 10, rank: int = 8, spec: str = "promptmobile", **opts: Any) -> MacSplit:
    """The :class:`MacSplit` of receiver ``spec`` (default options: its own) on ``generator`` (default: meta SD-Turbo).

    The three reference points are ``spec`` with caches off, with only the lossless caches, and as
    given; all with the same upsampler and reuse budget (:func:`default_plan`).
    """
    from codec.promptus.receiver import get_receiver

    gen = meta_generator() if generator is None else generator

    def per_frame(s: str, **kw: Any) -> float:
        plan = default_plan(get_receiver(s, gen, **kw), n_frames)
        return variant_cost(s, gen, n_frames=n_frames, rank=rank, plan=plan, **kw).total_per_frame

    return MacSplit(
        promptus=per_frame("promptus"),
        two_stage=per_frame(spec, **{**opts, "kv_cache": False, "threshold": 0.0}),
        lossless=per_frame(spec, **{**opts, "threshold": 0.0}),
        full=per_frame(spec, **opts),
    )


@dataclass(frozen=True, slots=True)
class Timing:
    """Wall time of repeated receiver calls on one segment.

    :param runs_s: seconds of each timed call (after ``warmup`` untimed calls).
    :param n_frames: frames per call.
    """

    runs_s: tuple[float, ...]
    n_frames: int
    warmup: int

    @property
    def median_ms_per_frame(self) -> float:
        import statistics

        return 1000.0 * statistics.median(self.runs_s) / self.n_frames


def time_receiver(receiver, seg, reps: int = 2, warmup: int = 0, plan: ReusePlan | None = None) -> Timing:
    """Time ``receiver(seg)`` (frames out, clamped) ``reps`` times under ``torch.inference_mode``."""
    import time

    kwargs = {"plan": plan} if plan is not None else {}
    runs = []
    with torch.inference_mode():
        for i in range(warmup + reps):
            t0 = time.perf_counter()
            receiver(seg, **kwargs)
            dt = time.perf_counter() - t0
            if i >= warmup:
                runs.append(dt)
    return Timing(tuple(runs), len(seg.steps), warmup)
