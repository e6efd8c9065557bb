"""The ``promptus-paper-model`` ladder: Promptus rungs modelled from a measured H.265 ladder.

Measuring Promptus needs the SD-Turbo weights; until a user builds a measured Promptus ladder,
this module derives one from the published result (SPEC section 1, "Modelling Promptus
quality"): Promptus at rate R looks like H.265 at ``k R`` on the same chunk, down to a quality
floor the generator cannot beat at any rank. Per chunk c:

    LPIPS_model(R) = max(LPIPS_h265,c(k R), floor_c),  floor_c = LPIPS_h265,c(280 kbit/s) - 0.016

with ``k = 4`` (equal LPIPS at about a quarter of H.265's bitrate, AAAI version) and the 0.016
gap of PromptMobile at 280 kbit/s. The floor is clamped at ``floor_min`` (default 0): on easy
chunks, where H.265 is already below LPIPS 0.016 at 280 kbit/s, the formula leaves no floor, and
the model never loses to H.265 there (``metadata["chunks_without_floor"]`` counts them).

``LPIPS_h265,c`` interpolates the chunk's measured points (real bitrate from bytes, mean LPIPS)
linearly in log-rate; beyond the measured range it
continues the end segment as a power law (straight in log-log), so it stays positive. Measured
curves are made non-increasing in rate first (a running minimum), which only matters where the
encoder's rate control wobbles.

The 95th percentile and the severe-frame fraction of a Promptus rung are those of H.265 at the
equivalent rate ``R_eq = min(k R, R_floor,c)``, where ``R_floor,c`` is the H.265 rate whose mean
LPIPS equals the floor (so mean, p95 and severe fraction describe the same equivalent H.265
encoding; p95 is kept >= the mean).

Rate knobs: a rung is a pair (rank r, keyframe interval N). Its quality comes from Promptus's
payload rate on that chunk, ``R_c = 8 (1101 r + 16) fps_c / N`` (:func:`abr.synthetic.promptus_kbps`,
the rate the published anchors are stated in). Its bytes count everything our own bitstream
(``codec.encode``, :mod:`codec.promptus.bitstream`) carries, one stream per clip of the H.265
ladder (``metadata["parts"]``):

* every keyframe record: the payload ``1101 r + 16`` plus :data:`KEYFRAME_RECORD_OVERHEAD` = 18 B
  (record tag and length 5, CRC 4, frame index 4, segment length 2, rank 2, coder id 1);
* keyframes at frames 0, N, 2N, ... and the clip's last frame, each charged to the chunk of the
  frame before it (frame 0's to chunk 0), as :func:`codec.promptus.pipeline.chunk_bytes` does;
* on the clip's first chunk: the file header and header record (:data:`STREAM_HEADER_BYTES`) and
  the first-frame latent, 4 x 64 x 64 uint8 plus framing (:data:`FIRST_LATENT_BYTES` = 16,410 B);
* on its last chunk: the end record (:data:`END_RECORD_BYTES`).

Factors and the latent are counted raw (uint8, uncoded). The writer keeps the smallest of its
lossless coders, so a real stream is at most this size. A rung's nominal ``kbps`` is its
average over the whole ladder, so the latent is spread over the content (what a rate-based
policy compares with throughput).

What the quality model can and cannot say about N: it is rate-based. Two rungs with the same
payload rate have the same modelled LPIPS whatever their split between r and N, because the
published anchors are rate-distortion points and no published figure isolates the effect of
interpolating the prompt over N frames. So the model cannot say that long intervals smear
motion (they likely do on fast content) nor that a low rank fails on detail; it only says what
the rate buys. A ladder that trades r against N is therefore a what-if on the bitrate axis.

Every number here is a model of Promptus, not a measurement of it: the ladder says so in its
name, ``metadata["synthetic"] = True`` and ``metadata["derivation"]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from abr.errors import InputError
from abr.ladder import Ladder, RungInfo
from abr.synthetic import promptus_kbps, promptus_keyframe_bytes

__all__ = [
    "END_RECORD_BYTES",
    "FIRST_LATENT_BYTES",
    "KEYFRAME_RECORD_OVERHEAD",
    "MODEL_LADDERS",
    "STREAM_HEADER_BYTES",
    "WIDE_RUNGS",
    "PromptusModelConfig",
    "log_rate_curve",
    "promptus_chunk_bytes",
    "promptus_paper_model",
]

#: Bytes per keyframe record beyond SPEC's payload ``1101 r + 16`` (codec/promptus/bitstream.py:
#: tag u8 + length u32 + CRC u32 framing, frame u32, segment length u16, rank u16, coder id u8).
KEYFRAME_RECORD_OVERHEAD = 18
#: The first-frame latent record: framing 9, shape 4 x u16 + scale f32 + zero point f32 (16),
#: coder id 1, and the uint8 latent of SD-Turbo, 4 x 64 x 64 = 16,384 bytes (counted uncoded).
FIRST_LATENT_BYTES = 9 + 16 + 1 + 4 * 64 * 64
#: Magic and version (6) plus the header record for generator ``sd-turbo`` and receiver
#: ``promptus``: framing 9, name 1 + 8, fingerprint 8, receiver 2 + 8, fixed fields 41.
STREAM_HEADER_BYTES = 6 + 9 + (1 + 8) + 8 + (2 + 8) + 41
#: The end record: framing 9 and the keyframe count u32.
END_RECORD_BYTES = 9 + 4

#: The ``promptus-wide-model`` rungs, (rank, interval): about 8 to 360 kbit/s of keyframe records
#: at the clips' 25.7 fps (plus the first-frame latent, about 16 kbit/s over the 32-s content).
WIDE_RUNGS: tuple[tuple[int, int], ...] = ((1, 30), (1, 15), (2, 15), (2, 10), (4, 10), (8, 10), (8, 5))


@dataclass(frozen=True, slots=True)
class PromptusModelConfig:
    """Parameters of the model (SPEC section 1 defaults).

    :param efficiency: k; Promptus at R looks like H.265 at k R.
    :param floor_offset: floor = LPIPS_h265(floor_ref_kbps) - floor_offset, per chunk.
    :param floor_ref_kbps: the rate of the published PromptMobile-vs-H.265 comparison, kbit/s.
    :param floor_min: lower bound of the floor. On easy content ``LPIPS_h265(280) < floor_offset`` and the
        floor formula goes negative; it is clamped to ``floor_min`` (default 0: no floor on such chunks).
    :param ranks: prompt ranks r of the rungs (all at ``interval``), unless ``rungs`` is given.
    :param interval: keyframe interval N in frames for ``ranks``.
    :param rungs: ``(rank, interval)`` pairs of the rungs; empty = ``ranks`` at ``interval``.
    :param name: ladder name.
    """

    efficiency: float = 4.0
    floor_offset: float = 0.016
    floor_ref_kbps: float = 280.0
    floor_min: float = 0.0
    ranks: tuple[int, ...] = (1, 2, 3, 4, 6, 8)
    interval: int = 10
    rungs: tuple[tuple[int, int], ...] = ()
    name: str = "promptus-paper-model"

    def __post_init__(self) -> None:
        if not self.efficiency > 0:
            raise InputError(f"efficiency must be > 0, got {self.efficiency}")
        if not self.floor_min >= 0:
            raise InputError(f"floor_min must be >= 0, got {self.floor_min}")
        if not self.floor_ref_kbps > 0:
            raise InputError(f"floor_ref_kbps must be > 0, got {self.floor_ref_kbps}")
        if not self.ranks or min(self.ranks) < 1:
            raise InputError(f"ranks must be >= 1, got {self.ranks}")
        if self.interval < 1:
            raise InputError(f"interval must be >= 1, got {self.interval}")
        object.__setattr__(self, "ranks", tuple(sorted(set(int(r) for r in self.ranks))))
        pairs = tuple((int(r), int(n)) for r, n in self.rungs)
        if any(r < 1 or n < 1 for r, n in pairs):
            raise InputError(f"rungs must be (rank >= 1, interval >= 1) pairs, got {self.rungs}")
        if len(set(pairs)) != len(pairs):
            raise InputError(f"rungs repeat a (rank, interval) pair: {self.rungs}")
        object.__setattr__(self, "rungs", pairs)

    @property
    def rung_pairs(self) -> tuple[tuple[int, int], ...]:
        """``(rank, interval)`` of every rung, in the order given."""
        return self.rungs or tuple((r, self.interval) for r in self.ranks)

    def to_dict(self) -> dict:
        return {f.name: (_listed(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}


def _listed(value: tuple) -> list:
    return [_listed(v) if isinstance(v, tuple) else v for v in value]


def promptus_chunk_bytes(
    frames: np.ndarray, parts: list[int] | tuple[int, ...], rank: int, interval: int
) -> np.ndarray:
    """On-wire bytes of every chunk of a Promptus stream at ``(rank, interval)``, uncoded (module docstring).

    :param frames: frames of every chunk.
    :param parts: chunks of every separate stream (clip), in order; they must add up to ``len(frames)``.
    """
    frames = np.asarray(frames, dtype=np.int64)
    if sum(parts) != frames.size or min(parts, default=1) < 1:
        raise InputError(f"stream parts {list(parts)} do not add up to the {frames.size} chunks")
    record = promptus_keyframe_bytes(rank) + KEYFRAME_RECORD_OVERHEAD
    out = np.zeros(frames.size, dtype=np.float64)
    start = 0
    for n in parts:
        f = frames[start : start + n]
        total = int(f.sum())
        pos = np.arange(0, total, interval)
        if pos[-1] != total - 1:
            pos = np.append(pos, total - 1)  # the clip's last frame closes a shorter segment
        chunk = np.searchsorted(np.cumsum(f), np.maximum(pos - 1, 0), side="right")
        seg = out[start : start + n]
        seg += np.bincount(chunk, minlength=n) * float(record)
        seg[0] += STREAM_HEADER_BYTES + FIRST_LATENT_BYTES
        seg[-1] += END_RECORD_BYTES
        start += n
    return out


def _stream_parts(ladder: Ladder) -> list[int]:
    """Chunks per clip (each clip is its own stream); the whole ladder if it does not say."""
    parts = ladder.metadata.get("parts")
    if isinstance(parts, list) and parts and all(isinstance(p, dict) and "chunks" in p for p in parts):
        counts = [int(p["chunks"]) for p in parts]
        if sum(counts) == ladder.n_chunks:
            return counts
    return [ladder.n_chunks]


@dataclass(frozen=True, slots=True)
class _Curve:
    """One chunk's measured H.265 curve: log-rates ascending, values non-increasing."""

    log_kbps: np.ndarray
    mean: np.ndarray
    p95: np.ndarray
    severe: np.ndarray


def _monotone(values: np.ndarray) -> np.ndarray:
    return np.minimum.accumulate(values)


def log_rate_curve(log_kbps: np.ndarray, values: np.ndarray, at_log_kbps: np.ndarray | float) -> np.ndarray:
    """Interpolate ``values`` linearly in log-rate; beyond the ends continue the end segment as a power law.

    :param log_kbps: ascending natural-log rates (at least two).
    :param values: positive values at those rates.
    """
    x, y = np.asarray(log_kbps, float), np.asarray(values, float)
    q = np.asarray(at_log_kbps, float)
    out = np.interp(q, x, y)
    ly = np.log(np.maximum(y, 1e-12))
    for end, nb, mask in ((0, 1, q < x[0]), (-1, -2, q > x[-1])):
        if np.any(mask):
            slope = (ly[end] - ly[nb]) / (x[end] - x[nb]) if x[end] != x[nb] else 0.0
            out = np.where(mask, np.exp(ly[end] + slope * (q - x[end])), out)
    return out


def _rate_for_value(curve: _Curve, target: float) -> float:
    """log-rate at which the (non-increasing) mean curve reaches ``target``; +inf if it never does."""
    x, y = curve.log_kbps, curve.mean
    below = np.nonzero(y <= target)[0]
    if below.size:
        i = int(below[0])
        if i == 0:
            return float(x[0])
        t = (y[i - 1] - target) / (y[i - 1] - y[i])
        return float(x[i - 1] + t * (x[i] - x[i - 1]))
    # beyond the last point: the power-law continuation of the last segment
    slope = (math.log(y[-1]) - math.log(y[-2])) / (x[-1] - x[-2]) if x[-1] != x[-2] else 0.0
    if slope >= 0 or target <= 0:
        return math.inf
    return float(x[-1] + (math.log(target) - math.log(y[-1])) / slope)


def _chunk_curve(h265: Ladder, c: int) -> _Curve:
    rate = h265.measured_kbps[c]
    order = np.argsort(rate, kind="stable")
    return _Curve(
        log_kbps=np.log(rate[order]),
        mean=_monotone(h265.lpips_mean[c, order]),
        p95=_monotone(h265.lpips_p95[c, order]),
        severe=_monotone(h265.severe_frac[c, order]),
    )


def _provenance(meta: object) -> object:
    """``meta`` without the bulky per-chunk ``measurements`` tables (kept in the H.265 ladder itself)."""
    if isinstance(meta, dict):
        return {k: _provenance(v) for k, v in meta.items() if k != "measurements"}
    if isinstance(meta, list):
        return [_provenance(v) for v in meta]
    return meta


def promptus_paper_model(h265: Ladder, cfg: PromptusModelConfig | None = None) -> Ladder:
    """Derive the Promptus model ladder from a measured H.265 ladder of the same chunks (see module docstring).

    :raises InputError: ``h265`` is not a measured H.265 ladder with at least two rungs.
    """
    cfg = cfg or PromptusModelConfig()
    if h265.n_rungs < 2:
        raise InputError(f"ladder {h265.name!r}: the model needs at least two H.265 rungs per chunk")
    families = {r.family for r in h265.rungs}
    if families != {"h265"}:
        raise InputError(f"ladder {h265.name!r} has rung families {sorted(families)}; the model needs H.265 rungs only")
    if h265.is_synthetic:
        raise InputError(f"ladder {h265.name!r} is synthetic; the model is derived from a measured H.265 ladder")
    pairs = sorted(cfg.rung_pairs, key=lambda rn: promptus_kbps(*rn, 1.0))
    fps_c = h265.frames / h265.duration_s
    parts = _stream_parts(h265)
    size = np.stack([promptus_chunk_bytes(h265.frames, parts, r, n) for r, n in pairs], axis=1)
    # quality follows the payload rate of the published anchors, R_c = 8 (1101 r + 16) fps_c / N
    rate = np.stack([promptus_kbps(r, n, 1.0) * fps_c for r, n in pairs], axis=1)
    shape = (h265.n_chunks, len(pairs))
    mean, p95, severe = np.empty(shape), np.empty(shape), np.empty(shape)
    floors, r_floor = np.empty(h265.n_chunks), np.empty(h265.n_chunks)
    for c in range(h265.n_chunks):
        curve = _chunk_curve(h265, c)
        floor = float(log_rate_curve(curve.log_kbps, curve.mean, math.log(cfg.floor_ref_kbps))) - cfg.floor_offset
        floor = max(floor, cfg.floor_min)
        floors[c] = floor
        log_floor_rate = _rate_for_value(curve, floor)
        r_floor[c] = math.exp(log_floor_rate) if log_floor_rate < 50 else math.inf
        log_eq = np.minimum(np.log(cfg.efficiency * rate[c]), log_floor_rate)
        mean[c] = np.maximum(log_rate_curve(curve.log_kbps, curve.mean, np.log(cfg.efficiency * rate[c])), floor)
        p95[c] = np.maximum(log_rate_curve(curve.log_kbps, curve.p95, log_eq), mean[c])
        severe[c] = np.clip(np.interp(log_eq, curve.log_kbps, curve.severe), 0.0, 1.0)
    avg_kbps = size.sum(axis=0) * 8.0 / h265.total_duration_s / 1000.0
    rungs = tuple(
        RungInfo(family="promptus", decoder="promptus", kbps=round(float(k), 3), rank=r, interval=n)
        for (r, n), k in zip(pairs, avg_kbps)
    )
    derivation = (
        f"Promptus MODEL, not measured: LPIPS(R) = max(LPIPS_h265(k R), LPIPS_h265({cfg.floor_ref_kbps:g}) - "
        f"{cfg.floor_offset:g}, {cfg.floor_min:g}) per chunk with k = {cfg.efficiency:g}, from the measured "
        f"H.265 ladder {h265.name!r} (log-rate interpolation) at the payload rate 8 (1101 r + 16) fps / N; "
        f"bytes: every record of one uncoded Promptus stream per clip (keyframes 1101 r + 16 + "
        f"{KEYFRAME_RECORD_OVERHEAD} B, first-frame latent {FIRST_LATENT_BYTES} B, header and end); "
        f"(r, N) = {', '.join(f'({r}, {n})' for r, n in pairs)}"
    )
    return Ladder(
        name=cfg.name,
        rungs=rungs,
        duration_s=h265.duration_s,
        frames=h265.frames,
        size_bytes=size,
        lpips_mean=mean,
        lpips_p95=p95,
        severe_frac=severe,
        severe_lpips=h265.severe_lpips,
        metadata={
            "synthetic": True,
            "model": "promptus-paper-model",
            "source": "model of Promptus derived from measured H.265 figures (abr.promptus_model), not measured",
            "derivation": derivation,
            "parameters": cfg.to_dict(),
            "anchors": "SPEC section 1: equal LPIPS at ~1/4 of H.265's bitrate (Promptus, AAAI 2026); "
            "PromptMobile 0.016 LPIPS better than H.265 at ~280 kbit/s (arXiv 2503.16112)",
            "nominal_fps": float(h265.frames.sum() / h265.duration_s.sum()),
            "quality_vs_interval": "rate-based: equal payload rate, equal LPIPS, whatever r and N (no published "
            "figure isolates the effect of interpolating over N frames)",
            "floor_lpips": np.round(floors, 6).tolist(),
            "floor_h265_kbps": [round(float(v), 3) if math.isfinite(v) else None for v in r_floor],
            "chunks_without_floor": int(np.sum(floors <= 0)),
            "h265_ladder": {"name": h265.name, "metadata": _provenance(h265.metadata)},
        },
    )


#: The embedded model ladders (``abr/data/<name>.json``), rebuilt by ``bench/build_default_ladders.py``:
#: ``promptus-paper-model`` (ranks 1-8 at N = 10, the default) and ``promptus-wide-model``
#: (:data:`WIDE_RUNGS`: rank and interval both vary, to reach low-band links).
MODEL_LADDERS: dict[str, PromptusModelConfig] = {
    c.name: c for c in (PromptusModelConfig(), PromptusModelConfig(rungs=WIDE_RUNGS, name="promptus-wide-model"))
}
