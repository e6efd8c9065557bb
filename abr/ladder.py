"""The ladder: what a policy can choose from, chunk by chunk.

A :class:`Ladder` holds, for every chunk of a video (its duration and frame count) and
every rung, the bytes on the wire, the mean and 95th-percentile LPIPS of its frames and the
fraction of severely distorted frames (LPIPS above ``severe_lpips``). Each rung also says
which decoder variant plays it (``decoder``, a key into the simulator's device profiles) and
how much work that is per frame. Rungs are ordered by nominal bitrate, lowest first.

Units: seconds, bytes, kbit/s, GMAC. LPIPS is dimensionless (0 = identical).

On disk a ladder is one JSON document (``format: promptabr-ladder``, ``version: 1``); see
:func:`save_ladder` and :func:`load_ladder`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from abr.errors import InputError
from abr.io import read_json, write_json_atomic

__all__ = [
    "FORMAT",
    "VERSION",
    "DEFAULT_SEVERE_LPIPS",
    "frame_lpips_stats",
    "Ladder",
    "RungInfo",
    "load_ladder",
    "save_ladder",
    "combine_ladders",
    "concat_ladders",
]

FORMAT = "promptabr-ladder"
VERSION = 1
#: A frame is "severely distorted" above this LPIPS (our choice; the papers do not state theirs).
DEFAULT_SEVERE_LPIPS = 0.25

_CHUNK_RUNG_FIELDS = ("size_bytes", "lpips_mean", "lpips_p95", "severe_frac")


def frame_lpips_stats(values: Sequence[np.ndarray], severe: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-chunk LPIPS statistics of a ladder from per-frame LPIPS: for each array of ``values``
    (the frames of one chunk at one rung) its mean, 95th percentile and share of frames above
    ``severe``. Every ladder builder (``codec.ladder``, ``codec.encode``) computes them here."""
    mean = np.array([np.mean(v) for v in values], dtype=np.float64)
    p95 = np.array([np.percentile(v, 95) for v in values], dtype=np.float64)
    frac = np.array([float(np.mean(np.asarray(v) > severe)) for v in values], dtype=np.float64)
    return mean, p95, frac


@dataclass(frozen=True, slots=True)
class RungInfo:
    """Metadata of one rung.

    :param family: codec family (``promptus``, ``promptmobile``, ``h265``, ``h264``, ``av1``...).
    :param decoder: decoder variant that plays it; a key of the device profiles.
    :param kbps: nominal bitrate in kbit/s (used by bitrate-based QoE presets).
    :param rank: prompt rank r for prompt codecs, else None.
    :param interval: keyframe interval N in frames for prompt codecs, else None.
    :param gmacs_per_frame: decode work per frame in GMAC, when known.
    :param label: short human-readable name, e.g. ``promptus-r8``.
    """

    family: str
    decoder: str
    kbps: float
    rank: int | None = None
    interval: int | None = None
    gmacs_per_frame: float | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if not self.family or not self.decoder:
            raise ValueError("RungInfo needs a family and a decoder")
        if not (self.kbps > 0 and math.isfinite(self.kbps)):
            raise ValueError(f"RungInfo.kbps must be positive, got {self.kbps!r}")
        if not self.label:
            tag = f"r{self.rank}" if self.rank is not None else f"{self.kbps:g}k"
            object.__setattr__(self, "label", f"{self.family}-{tag}")


@dataclass(frozen=True, eq=False)
class Ladder:
    """Per-chunk, per-rung sizes and qualities of one video.

    Arrays of shape ``(chunks,)``: ``duration_s``, ``frames``. Arrays of shape
    ``(chunks, rungs)``: ``size_bytes``, ``lpips_mean``, ``lpips_p95``, ``severe_frac``.
    ``metadata`` says where the numbers came from (measured, synthetic model, derivation).
    """

    name: str
    rungs: tuple[RungInfo, ...]
    duration_s: np.ndarray
    frames: np.ndarray
    size_bytes: np.ndarray
    lpips_mean: np.ndarray
    lpips_p95: np.ndarray
    severe_frac: np.ndarray
    severe_lpips: float = DEFAULT_SEVERE_LPIPS
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("rungs", tuple(self.rungs))
        set_("duration_s", _array(self.duration_s, "duration_s", np.float64, 1))
        set_("frames", _array(self.frames, "frames", np.int64, 1))
        n_chunks, n_rungs = len(self.duration_s), len(self.rungs)
        if n_chunks == 0 or n_rungs == 0:
            raise ValueError("a ladder needs at least one chunk and one rung")
        if self.frames.shape != (n_chunks,):
            raise ValueError(f"frames has shape {self.frames.shape}, expected ({n_chunks},)")
        for name in _CHUNK_RUNG_FIELDS:
            arr = _array(getattr(self, name), name, np.float64, 2)
            if arr.shape != (n_chunks, n_rungs):
                raise ValueError(f"{name} has shape {arr.shape}, expected ({n_chunks}, {n_rungs})")
            arr.setflags(write=False)
            set_(name, arr)
        self.duration_s.setflags(write=False)
        self.frames.setflags(write=False)
        if np.any(self.duration_s <= 0):
            raise ValueError("duration_s must be positive")
        if np.any(self.frames <= 0):
            raise ValueError("frames must be positive")
        if np.any(self.size_bytes <= 0):
            raise ValueError("size_bytes must be positive")
        for name in ("lpips_mean", "lpips_p95"):
            if np.any(getattr(self, name) < 0):
                raise ValueError(f"{name} must be non-negative")
        if np.any((self.severe_frac < 0) | (self.severe_frac > 1)):
            raise ValueError("severe_frac must lie in [0, 1]")
        kbps = np.array([r.kbps for r in self.rungs])
        if np.any(np.diff(kbps) < 0):
            raise ValueError(f"rungs must be ordered by kbps, lowest first; got {kbps.tolist()}")

    # ------------------------------------------------------------------ views
    @property
    def n_chunks(self) -> int:
        return len(self.duration_s)

    @property
    def n_rungs(self) -> int:
        return len(self.rungs)

    @property
    def kbps(self) -> np.ndarray:
        """Nominal bitrate of every rung, kbit/s, shape ``(rungs,)``."""
        return np.array([r.kbps for r in self.rungs], dtype=np.float64)

    @property
    def measured_kbps(self) -> np.ndarray:
        """Actual bitrate of every chunk and rung, kbit/s, shape ``(chunks, rungs)``."""
        return self.size_bytes * 8.0 / self.duration_s[:, None] / 1000.0

    @property
    def decoders(self) -> tuple[str, ...]:
        return tuple(r.decoder for r in self.rungs)

    @property
    def total_duration_s(self) -> float:
        return float(self.duration_s.sum())

    @property
    def is_synthetic(self) -> bool:
        return bool(self.metadata.get("synthetic", False))

    def select(self, rungs: list[int] | tuple[int, ...], name: str | None = None) -> Ladder:
        """A ladder with only the given rung indices (kept in kbps order)."""
        idx = sorted(set(int(i) for i in rungs))
        if not idx or idx[0] < 0 or idx[-1] >= self.n_rungs:
            raise InputError(f"rung indices {list(rungs)} out of range 0..{self.n_rungs - 1}")
        return replace(
            self,
            name=name or f"{self.name}[{','.join(map(str, idx))}]",
            rungs=tuple(self.rungs[i] for i in idx),
            **{k: getattr(self, k)[:, idx] for k in _CHUNK_RUNG_FIELDS},
        )

    def head(self, n_chunks: int) -> Ladder:
        """The first ``n_chunks`` chunks."""
        if not 1 <= n_chunks <= self.n_chunks:
            raise InputError(f"n_chunks must be in 1..{self.n_chunks}, got {n_chunks}")
        return replace(
            self,
            duration_s=self.duration_s[:n_chunks],
            frames=self.frames[:n_chunks],
            **{k: getattr(self, k)[:n_chunks] for k in _CHUNK_RUNG_FIELDS},
        )

    def with_decoder(self, decoder: str, family: str | None = None, name: str | None = None) -> Ladder:
        """The same rungs played by another decoder variant (e.g. Promptus prompts on PromptMobile)."""
        rungs = tuple(
            replace(r, decoder=decoder, family=family or r.family, label=r.label.replace(r.family, family or r.family))
            for r in self.rungs
        )
        meta = {**self.metadata, "decoder": decoder}
        return replace(self, name=name or f"{self.name}:{decoder}", rungs=rungs, metadata=meta)

    def repeat(self, times: int) -> Ladder:
        """The video played ``times`` times in a row (longer sessions from a short measured clip)."""
        if times < 1:
            raise InputError(f"a ladder can be repeated 1 or more times, got {times}")
        if times == 1:
            return self
        return replace(
            self,
            name=f"{self.name}*{times}",
            duration_s=np.tile(self.duration_s, times),
            frames=np.tile(self.frames, times),
            metadata={**self.metadata, "repeated": times},
            **{k: np.tile(getattr(self, k), (times, 1)) for k in _CHUNK_RUNG_FIELDS},
        )

    # ------------------------------------------------------------- conversion
    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON-ready document."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "severe_lpips": self.severe_lpips,
            "metadata": self.metadata,
            "rungs": [asdict(r) for r in self.rungs],
            "chunks": {
                "duration_s": self.duration_s.tolist(),
                "frames": self.frames.tolist(),
            },
            **{k: np.round(getattr(self, k), 9).tolist() for k in _CHUNK_RUNG_FIELDS},
        }

    @classmethod
    def from_dict(cls, doc: Any, source: object = "<ladder>") -> Ladder:
        """Parse and validate a ladder document; errors name ``source`` and the field."""
        if not isinstance(doc, dict):
            raise InputError("a ladder file must hold a JSON object", path=source)
        if doc.get("format") != FORMAT:
            raise InputError(f"field 'format' must be {FORMAT!r}, got {doc.get('format')!r}", path=source)
        if doc.get("version") != VERSION:
            raise InputError(
                f"field 'version' is {doc.get('version')!r}; this promptabr reads version {VERSION}",
                path=source,
            )
        known = {"format", "version", "name", "severe_lpips", "metadata", "rungs", "chunks", *_CHUNK_RUNG_FIELDS}
        extra = sorted(set(doc) - known)
        if extra:
            raise InputError(f"unknown field(s) {extra}", path=source)
        for key in ("name", "rungs", "chunks", *_CHUNK_RUNG_FIELDS):
            if key not in doc:
                raise InputError(f"missing field {key!r}", path=source)
        rung_keys = {f.name for f in fields(RungInfo)}
        rungs = []
        if not isinstance(doc["rungs"], list):
            raise InputError("field 'rungs' must be a list", path=source)
        for i, r in enumerate(doc["rungs"]):
            if not isinstance(r, dict):
                raise InputError(f"field 'rungs[{i}]' must be an object", path=source)
            bad = sorted(set(r) - rung_keys)
            if bad:
                raise InputError(f"field 'rungs[{i}]' has unknown key(s) {bad}", path=source)
            try:
                rungs.append(RungInfo(**r))
            except (TypeError, ValueError) as exc:
                raise InputError(f"field 'rungs[{i}]': {exc}", path=source) from None
        chunks = doc["chunks"]
        if not isinstance(chunks, dict) or set(chunks) != {"duration_s", "frames"}:
            raise InputError("field 'chunks' must be an object with 'duration_s' and 'frames'", path=source)
        arrays: dict[str, np.ndarray] = {}
        for key, value, ndim in [
            ("chunks.duration_s", chunks["duration_s"], 1),
            ("chunks.frames", chunks["frames"], 1),
            *[(k, doc[k], 2) for k in _CHUNK_RUNG_FIELDS],
        ]:
            try:
                arr = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                raise InputError(f"field {key!r} must be a numeric array", path=source) from None
            if arr.ndim != ndim:
                raise InputError(f"field {key!r} must be {ndim}-D, got {arr.ndim}-D", path=source)
            if not np.all(np.isfinite(arr)):
                raise InputError(f"field {key!r} holds NaN or infinite values", path=source)
            arrays[key] = arr
        try:
            return cls(
                name=str(doc["name"]),
                rungs=tuple(rungs),
                duration_s=arrays["chunks.duration_s"],
                frames=arrays["chunks.frames"].astype(np.int64),
                severe_lpips=float(doc.get("severe_lpips", DEFAULT_SEVERE_LPIPS)),
                metadata=dict(doc.get("metadata") or {}),
                **{k: arrays[k] for k in _CHUNK_RUNG_FIELDS},
            )
        except ValueError as exc:
            raise InputError(str(exc), path=source) from None


def _array(value: Any, name: str, dtype: type, ndim: int) -> np.ndarray:
    arr = np.array(value, dtype=dtype)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    return arr


def save_ladder(ladder: Ladder, path: str | os.PathLike[str]) -> Path:
    """Write ``ladder`` as JSON atomically (a temporary file renamed into place)."""
    return write_json_atomic(path, ladder.to_dict())


def load_ladder(path: str | os.PathLike[str]) -> Ladder:
    """Read a ladder file written by :func:`save_ladder`; raise :class:`InputError` if broken."""
    path = Path(path)
    return Ladder.from_dict(read_json(path, "ladder"), source=path)


def combine_ladders(*ladders: Ladder, name: str | None = None) -> Ladder:
    """Merge the rungs of several ladders of the same chunks into one, ordered by kbps.

    Lets a policy switch codec family (e.g. Promptus rungs below H.265 rungs); every rung
    keeps its own decoder and so its own decode cost.
    """
    if not ladders:
        raise InputError("combine_ladders needs at least one ladder")
    first = ladders[0]
    for lad in ladders[1:]:
        if lad.n_chunks != first.n_chunks or not np.allclose(lad.duration_s, first.duration_s):
            raise InputError(f"ladders {first.name!r} and {lad.name!r} have different chunks")
        if not np.array_equal(lad.frames, first.frames):
            raise InputError(f"ladders {first.name!r} and {lad.name!r} have different frame counts")
    rungs = [(r.kbps, i, j) for i, lad in enumerate(ladders) for j, r in enumerate(lad.rungs)]
    rungs.sort()
    cat = {k: np.concatenate([getattr(lad, k) for lad in ladders], axis=1) for k in _CHUNK_RUNG_FIELDS}
    offsets = np.cumsum([0] + [lad.n_rungs for lad in ladders])
    order = [offsets[i] + j for _, i, j in rungs]
    return Ladder(
        name=name or "+".join(lad.name for lad in ladders),
        rungs=tuple(ladders[i].rungs[j] for _, i, j in rungs),
        duration_s=first.duration_s,
        frames=first.frames,
        severe_lpips=first.severe_lpips,
        metadata={
            "combined_from": [lad.name for lad in ladders],
            "synthetic": any(lad.is_synthetic for lad in ladders),
            "parts": {lad.name: lad.metadata for lad in ladders},
        },
        **{k: v[:, order] for k, v in cat.items()},
    )


def concat_ladders(*ladders: Ladder, name: str) -> Ladder:
    """Chain the chunks of several ladders with identical rungs (e.g. measured on several clips).

    ``metadata["parts"]`` lists each part's name, first chunk and metadata.
    """
    if not ladders:
        raise InputError("concat_ladders needs at least one ladder")
    first = ladders[0]
    for lad in ladders[1:]:
        if lad.rungs != first.rungs:
            raise InputError(f"ladders {first.name!r} and {lad.name!r} have different rungs")
        if lad.severe_lpips != first.severe_lpips:
            raise InputError(f"ladders {first.name!r} and {lad.name!r} use different severe thresholds")
    starts = np.cumsum([0] + [lad.n_chunks for lad in ladders])[:-1]
    cat = {
        k: np.concatenate([getattr(lad, k) for lad in ladders]) for k in ("duration_s", "frames", *_CHUNK_RUNG_FIELDS)
    }
    parts = [{"name": lad.name, "first_chunk": int(s), "chunks": lad.n_chunks, "metadata": lad.metadata}
             for lad, s in zip(ladders, starts)]  # fmt: skip
    return replace(
        first,
        name=name,
        metadata={"synthetic": any(lad.is_synthetic for lad in ladders), "concatenated": True, "parts": parts},
        **cat,
    )
