"""Synthetic (parametric) ladders for what-if work: a documented rate-distortion model.

Nothing here is measured. Every ladder built by this module is named ``synthetic:...`` and
carries ``metadata["synthetic"] = True`` with the formula and parameters that produced it.

H.265 reference curve (power law through the measured anchors of SPEC section 1, H.265 on
a 512x512 crop of real footage, LPIPS(alex)):

    LPIPS_h265(R) = lpips_ref * (R / ref_kbps) ** -exponent,   defaults 0.17, 75 kbit/s, 1.06

which gives 0.17 / 0.063 / 0.031 / 0.015 at 75 / 190 / 370 / 750 kbit/s (anchors: 0.15-0.19,
0.05-0.07, 0.03-0.04, ~0.015).

Promptus model (SPEC section 1, "Modelling Promptus quality"): Promptus at rate R looks like
H.265 at k*R, down to a floor that the generator cannot beat at any rank:

    LPIPS_promptus(R) = max(LPIPS_h265(k * R), floor),   k = 4,
    floor = LPIPS_h265(280 kbit/s) - 0.016

and Promptus's exact bitrate per rank r, keyframe interval N and frame rate fps:

    R = 8 * (1101 r + 16) * fps / N   bit/s.

Chunk-to-chunk variation: a chunk of complexity c (log-normal AR(1) series, seeded) looks
like the model at rate R / c. Frame-level LPIPS within a chunk is log-normal with shape
``frame_sigma``, which gives the 95th percentile and the severe-frame fraction in closed form.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from abr.errors import InputError
from abr.ladder import DEFAULT_SEVERE_LPIPS, Ladder, RungInfo
from abr.options import parse_options

__all__ = [
    "H265Curve",
    "SyntheticConfig",
    "promptus_kbps",
    "promptus_keyframe_bytes",
    "synthetic_ladder",
    "SYNTHETIC_FAMILIES",
]

_Z95 = 1.6448536269514722


def promptus_keyframe_bytes(rank: int) -> int:
    """Payload of one Promptus keyframe: uint8 U (77 x r) and V (r x 1024) plus 16 bytes."""
    return (77 + 1024) * int(rank) + 16


def promptus_kbps(rank: int, interval: int, fps: float) -> float:
    """Promptus bitrate in kbit/s: R = 8 (1101 r + 16) fps / N."""
    return 8.0 * promptus_keyframe_bytes(rank) * fps / interval / 1000.0


@dataclass(frozen=True, slots=True)
class H265Curve:
    """Power-law LPIPS(rate) of H.265 on 512x512 content (see module docstring)."""

    lpips_ref: float = 0.17
    ref_kbps: float = 75.0
    exponent: float = 1.06

    def lpips(self, kbps: np.ndarray | float) -> np.ndarray:
        kbps = np.asarray(kbps, dtype=np.float64)
        return np.minimum(self.lpips_ref * (kbps / self.ref_kbps) ** -self.exponent, 0.9)


@dataclass(frozen=True, slots=True)
class SyntheticConfig:
    """Parameters of a synthetic ladder; every field can be overridden from a spec string.

    :param family: ``promptus``, ``h265`` or ``pensieve`` (H.264 rungs of the Pensieve paper).
    :param ranks: prompt ranks (promptus only).
    :param interval: keyframe interval N in frames (promptus only).
    :param kbps: rung bitrates for the classic families (defaults per family if empty).
    :param efficiency: k, Promptus at R looks like H.265 at k R.
    :param floor_offset: floor = LPIPS_h265(280 kbit/s) - floor_offset.
    :param chunk_s: chunk duration; ``chunks``: number of chunks; ``fps``: frame rate.
    :param complexity_sigma: log-std of chunk complexity; ``complexity_rho``: its lag-1 correlation.
    :param frame_sigma: log-std of frame LPIPS within a chunk.
    :param seed: seed of the complexity series.
    """

    family: str = "promptus"
    ranks: tuple[int, ...] = (1, 2, 3, 4, 6, 8)
    interval: int = 10
    kbps: tuple[float, ...] = ()
    efficiency: float = 4.0
    floor_offset: float = 0.016
    chunk_s: float = 2.0
    chunks: int = 60
    fps: float = 30.0
    complexity_sigma: float = 0.25
    complexity_rho: float = 0.8
    frame_sigma: float = 0.3
    seed: int = 0
    curve: H265Curve = field(default_factory=H265Curve)

    def __post_init__(self) -> None:
        if self.family not in SYNTHETIC_FAMILIES:
            raise InputError(
                f"unknown synthetic family {self.family!r}; valid: {', '.join(SYNTHETIC_FAMILIES)}"
            )
        for name in ("interval", "chunks"):
            if getattr(self, name) < 1:
                raise InputError(f"synthetic ladder: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("chunk_s", "fps", "efficiency"):
            if not getattr(self, name) > 0:
                raise InputError(f"synthetic ladder: {name} must be > 0, got {getattr(self, name)}")
        if self.family == "promptus" and (not self.ranks or min(self.ranks) < 1):
            raise InputError(f"synthetic ladder: ranks must be >= 1, got {self.ranks}")
        if not 0 <= self.complexity_rho < 1:
            raise InputError(f"synthetic ladder: complexity_rho must be in [0, 1), got {self.complexity_rho}")


SYNTHETIC_FAMILIES = ("promptus", "h265", "pensieve")
_DEFAULT_KBPS = {
    "h265": (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0),
    "pensieve": (300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0),
}
_FAMILY_DEFAULTS = {"pensieve": {"chunk_s": 4.0, "chunks": 48}}


def _complexity(cfg: SyntheticConfig) -> np.ndarray:
    rng = np.random.default_rng(cfg.seed)
    eps = rng.standard_normal(cfg.chunks)
    x = np.empty(cfg.chunks)
    x[0] = eps[0]
    for i in range(1, cfg.chunks):
        x[i] = cfg.complexity_rho * x[i - 1] + math.sqrt(1 - cfg.complexity_rho**2) * eps[i]
    return np.exp(cfg.complexity_sigma * x - cfg.complexity_sigma**2 / 2)


def _frame_stats(mean: np.ndarray, sigma: float, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """p95 and P(L > threshold) for log-normal frame LPIPS with the given mean."""
    mu = np.log(np.maximum(mean, 1e-9)) - sigma**2 / 2
    p95 = np.exp(mu + _Z95 * sigma)
    z = (math.log(threshold) - mu) / (sigma * math.sqrt(2))
    severe = 0.5 * np.vectorize(math.erfc)(z)
    return p95, severe


def synthetic_ladder(cfg: SyntheticConfig | None = None) -> Ladder:
    """Build the ladder of ``cfg`` (see the module docstring for the model)."""
    cfg = cfg or SyntheticConfig()
    c = _complexity(cfg)[:, None]
    frames = np.full(cfg.chunks, int(round(cfg.chunk_s * cfg.fps)))
    duration = frames / cfg.fps
    if cfg.family == "promptus":
        ranks = sorted(set(cfg.ranks))
        kbps = np.array([promptus_kbps(r, cfg.interval, cfg.fps) for r in ranks])
        keyframes = np.ceil(frames / cfg.interval)[:, None]
        size = keyframes * np.array([promptus_keyframe_bytes(r) for r in ranks])[None, :]
        floor = float(cfg.curve.lpips(280.0)) - cfg.floor_offset
        mean = np.maximum(cfg.curve.lpips(cfg.efficiency * kbps[None, :] / c), floor)
        rungs = tuple(
            RungInfo(family="promptus", decoder="promptus", kbps=float(k), rank=r, interval=cfg.interval)
            for r, k in zip(ranks, kbps)
        )
        formula = "LPIPS = max(LPIPS_h265(k R / c), LPIPS_h265(280) - floor_offset); R = 8(1101 r + 16) fps / N"
    else:
        kbps = np.array(sorted(cfg.kbps or _DEFAULT_KBPS[cfg.family]), dtype=np.float64)
        size = np.round(kbps[None, :] * 1000.0 / 8.0 * duration[:, None] * c**0.15)
        mean = cfg.curve.lpips(kbps[None, :] / c)
        decoder = "h264" if cfg.family == "pensieve" else "h265"
        rungs = tuple(RungInfo(family=decoder, decoder=decoder, kbps=float(k)) for k in kbps)
        formula = "LPIPS = LPIPS_h265(R / c); size = R * duration * c^0.15"
    p95, severe = _frame_stats(mean, cfg.frame_sigma, DEFAULT_SEVERE_LPIPS)
    params = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name != "curve"}
    params["curve"] = asdict(cfg.curve)
    return Ladder(
        name=f"synthetic:{cfg.family}",
        rungs=rungs,
        duration_s=duration,
        frames=frames,
        size_bytes=size,
        lpips_mean=mean,
        lpips_p95=p95,
        severe_frac=severe,
        metadata={
            "synthetic": True,
            "source": "synthetic rate-distortion model (abr.synthetic), not measured",
            "formula": formula,
            "parameters": _jsonable(params),
        },
    )


def _jsonable(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def parse_synthetic(spec: str) -> SyntheticConfig:
    """``synthetic:FAMILY[:key=value,...]`` -> config, e.g. ``synthetic:promptus:efficiency=2``."""
    parts = spec.split(":", 2)
    if len(parts) < 2 or parts[0] != "synthetic" or not parts[1]:
        raise InputError(f"synthetic ladder spec must look like synthetic:FAMILY[:k=v,...], got {spec!r}")
    family = parts[1]
    kwargs: dict = dict(_FAMILY_DEFAULTS.get(family, {}))
    options = parts[2] if len(parts) == 3 else ""
    kwargs.update(parse_options(SyntheticConfig, options, f"synthetic ladder {spec!r}", skip=("family", "curve")))
    return SyntheticConfig(family=family, **kwargs)
