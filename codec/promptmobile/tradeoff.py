"""Deep-feature reuse as a measured trade-off: quality, share of frames reusing features and MACs per threshold.

A stream is decoded by :func:`codec.promptus.pipeline.decode_frames` once per setting of the lossy
receiver (``promptmobile-lossy:threshold=T,full_every=F``), exactly as a player would: each segment
starts from the previous segment's last latent *as this receiver produced it*, so reuse errors
propagate through the keyframe chain as they would in playback. For each setting:

- ``reuse_fraction``: frames that reused a reference frame's deep features / all frames;
- ``macs_per_frame``: every multiply-accumulate of the decode (UNet with caches, decoder), counted
  by :func:`codec.promptmobile.cost.count_macs` while it runs, divided by the frames;
- ``psnr_db``: PSNR of the decoded uint8 frames against the source frames;
- ``psnr_db_vs_exact``: PSNR against the same stream decoded without reuse (threshold 0).

The prompts are those of the stream (fitted through whichever receiver the encoder used); only
the player's threshold changes. Figures on a tiny generator are about that model, not SD-Turbo.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["ReusePoint", "decode_with", "psnr_u8", "reuse_tradeoff"]


@dataclass(frozen=True, slots=True)
class ReusePoint:
    """One setting of the lossy cache and what it cost and saved (see the module docstring)."""

    spec: str
    threshold: float
    full_every: int
    reuse_fraction: float
    macs_per_frame: float
    psnr_db: float
    psnr_db_vs_exact: float

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("reuse_fraction", "psnr_db", "psnr_db_vs_exact"):
            d[k] = round(d[k], 4) if math.isfinite(d[k]) else None
        d["macs_per_frame"] = int(d["macs_per_frame"])
        return d


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of uint8 frames."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def decode_with(stream, generator, spec: str) -> tuple[np.ndarray, float, float]:
    """Decode ``stream`` with receiver ``spec``: uint8 frames, share of frames reusing features, MACs per frame."""
    from codec.promptmobile.cost import count_macs
    from codec.promptus.pipeline import decode_frames
    from codec.promptus.receiver import get_receiver

    rec = get_receiver(spec, generator)
    parts: list[np.ndarray] = []
    reused = [0]

    def run() -> None:
        for _, seg in decode_frames(stream, generator, receiver=rec, strict=False):
            parts.append(seg)
            plan = getattr(rec, "last_plan", None)
            reused[0] += len(plan.reused) if plan is not None else 0

    macs = count_macs(run).total
    frames = np.concatenate(parts)
    return frames, reused[0] / len(frames), macs / len(frames)


def reuse_tradeoff(stream, generator, source: np.ndarray, thresholds: Sequence[float], full_every: int = 0,
                   base: str = "promptmobile-lossy") -> list[ReusePoint]:
    """Decode ``stream`` once per threshold (plus threshold 0, the exact reference) and measure each.

    :param source: uint8 ``(T, H, W, 3)`` frames the stream was fitted to.
    :param full_every: 0: threshold mode (fewest full frames the threshold allows); F: budget mode.
    :param base: the receiver whose threshold is varied (``promptmobile`` for the two-stage variant).
    """
    exact, _, _ = decode_with(stream, generator, f"{base}:threshold=0,full_every=0")
    if exact.shape != source.shape:
        raise ValueError(f"decoded frames {exact.shape} do not match the source {source.shape}")
    points = []
    for t in sorted({0.0, *map(float, thresholds)}):
        spec = f"{base}:threshold={t:g},full_every={int(full_every)}"
        frames, frac, macs = decode_with(stream, generator, spec)
        points.append(ReusePoint(spec, t, int(full_every), frac, macs, psnr_u8(frames, source), psnr_u8(frames, exact)))
    return points
