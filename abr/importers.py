"""Ladders from other simulators' inputs: Pensieve's ``video_size_*`` folder, Sabre's ``movie.json``.

Neither source has perceptual quality, so the imported ladders carry NaN LPIPS and
``metadata["lpips"] = "none"``: the perceptual QoE refuses them (:meth:`abr.qoe.QoE.chunk_quality`)
and a bitrate QoE (``pensieve-linear``, ``pensieve-log``, ``pensieve-hd``, ``sabre``) must be used.
Rungs are played by the ``h264`` decoder (use device ``none`` for the peers' zero decode time).

``abr.registry.get_ladder`` resolves both by content: a folder holding ``video_size_0``, or a
JSON file with ``segment_sizes_bits``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from abr.errors import InputError
from abr.io import read_json, read_text
from abr.ladder import Ladder, RungInfo

__all__ = [
    "PENSIEVE_CHUNKS",
    "PENSIEVE_CHUNK_S",
    "PENSIEVE_KBPS",
    "import_pensieve_sizes",
    "import_sabre_movie",
    "is_pensieve_sizes",
    "is_sabre_movie",
]

#: Pensieve's ``VIDEO_BIT_RATE`` (kbit/s), ``VIDEO_CHUNCK_LEN`` (4 s) and ``TOTAL_VIDEO_CHUNCK``
#: of its simulator (the size files have one more line, which its simulator never plays).
PENSIEVE_KBPS = (300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0)
PENSIEVE_CHUNK_S = 4.0
PENSIEVE_CHUNKS = 48
_FPS = 25.0  # frames per chunk only matter for decode time; neither peer states a frame rate


def is_pensieve_sizes(path: str | Path) -> bool:
    """Whether ``path`` is a folder of Pensieve ``video_size_<rung>`` files."""
    return Path(path).is_dir() and (Path(path) / "video_size_0").is_file()


def is_sabre_movie(path: str | Path) -> bool:
    """Whether ``path`` is a Sabre manifest (a JSON object with ``segment_sizes_bits``)."""
    p = Path(path)
    if not p.is_file() or p.suffix != ".json":
        return False
    head = read_text(p, "Sabre movie")[:4096]
    return "segment_sizes_bits" in head and '"format"' not in head[:200]


def _no_lpips(n_chunks: int, n_rungs: int) -> dict[str, np.ndarray]:
    nan = np.full((n_chunks, n_rungs), np.nan)
    return {"lpips_mean": nan, "lpips_p95": nan, "severe_frac": nan}


def import_pensieve_sizes(
    folder: str | Path,
    *,
    kbps: tuple[float, ...] | None = PENSIEVE_KBPS,
    chunks: int | None = PENSIEVE_CHUNKS,
    chunk_s: float = PENSIEVE_CHUNK_S,
) -> Ladder:
    """A Pensieve ``video_size_0..R-1`` folder (bytes per chunk, one line each) as a ladder.

    :param kbps: nominal bitrate of each rung (Pensieve's ``VIDEO_BIT_RATE`` by default), used
        by bitrate QoEs; None takes each rung's mean measured bitrate instead.
    :param chunks: chunks kept (Pensieve plays 48 of the 49 lines); None keeps every line.
    :param chunk_s: chunk duration, seconds.
    """
    root = Path(folder)
    files = []
    while (root / f"video_size_{len(files)}").is_file():
        files.append(root / f"video_size_{len(files)}")
    if not files:
        raise InputError("no video_size_0 file (not a Pensieve video-size folder)", path=root)
    cols = []
    for f in files:
        try:
            col = np.array([float(x) for x in read_text(f, "Pensieve video-size").split()], dtype=np.float64)
        except ValueError:
            raise InputError("expected one chunk size in bytes per line", path=f) from None
        if col.size == 0 or not np.all(np.isfinite(col)) or np.any(col <= 0):
            raise InputError("chunk sizes must be positive finite numbers", path=f)
        cols.append(col)
    n = min(len(c) for c in cols)
    if chunks is not None:
        if chunks < 1 or chunks > n:
            raise InputError(f"asked for {chunks} chunks but the shortest file has {n}", path=root)
        n = chunks
    size = np.stack([c[:n] for c in cols], axis=1)
    if not (math.isfinite(chunk_s) and chunk_s > 0):
        raise InputError(f"chunk_s must be positive, got {chunk_s}")
    measured = size.sum(axis=0) * 8.0 / (n * chunk_s) / 1000.0
    if kbps is None:
        rates, which = measured, "mean measured bitrate of each rung"
    else:
        if len(kbps) != len(files):
            raise InputError(f"{len(kbps)} nominal bitrates for {len(files)} rungs", path=root)
        rates, which = np.asarray(kbps, dtype=np.float64), "nominal (Pensieve's VIDEO_BIT_RATE)"
    rungs = tuple(RungInfo(family="h264", decoder="h264", kbps=float(k), label=f"pensieve-{k:g}k") for k in rates)
    return Ladder(
        name=f"pensieve:{root.name}",
        rungs=rungs,
        duration_s=np.full(n, float(chunk_s)),
        frames=np.full(n, int(round(chunk_s * _FPS))),
        size_bytes=size,
        **_no_lpips(n, len(files)),
        metadata={
            "source": f"imported from Pensieve video sizes {root} ({len(files)} rungs, first {n} lines)",
            "importer": "pensieve-sizes",
            "path": str(root),
            "kbps": which,
            "measured_kbps": [round(float(x), 3) for x in measured],
            "lpips": "none",
        },
    )


def import_sabre_movie(path: str | Path) -> Ladder:
    """A Sabre manifest ``{segment_duration_ms, bitrates_kbps, segment_sizes_bits}`` as a ladder.

    Rungs carry Sabre's nominal bitrates (its BOLA utilities and throughput rule use them);
    sizes are converted from bits to bytes.
    """
    p = Path(path)
    doc = read_json(p, "Sabre movie")
    keys = ("segment_duration_ms", "bitrates_kbps", "segment_sizes_bits")
    if not isinstance(doc, dict) or any(k not in doc for k in keys):
        raise InputError(f"a Sabre movie needs the keys {', '.join(keys)}", path=p)
    try:
        seg_ms = float(doc["segment_duration_ms"])
        kbps = np.array(doc["bitrates_kbps"], dtype=np.float64)
        bits = np.array(doc["segment_sizes_bits"], dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("segment_duration_ms, bitrates_kbps and segment_sizes_bits must be numbers", path=p) from None
    if not (math.isfinite(seg_ms) and seg_ms > 0):
        raise InputError(f"segment_duration_ms must be positive, got {doc['segment_duration_ms']!r}", path=p)
    if kbps.ndim != 1 or kbps.size == 0 or bits.ndim != 2 or bits.shape[1] != kbps.size or bits.shape[0] == 0:
        raise InputError(f"segment_sizes_bits must be segments x {kbps.size} bitrates, got {bits.shape}", path=p)
    if not (np.all(np.isfinite(kbps)) and np.all(kbps > 0) and np.all(np.isfinite(bits)) and np.all(bits > 0)):
        raise InputError("bitrates and segment sizes must be positive finite numbers", path=p)
    if np.any(np.diff(kbps) < 0):
        raise InputError("bitrates_kbps must be sorted lowest first", path=p)
    n, chunk_s = bits.shape[0], seg_ms / 1000.0
    return Ladder(
        name=f"sabre:{p.stem}",
        rungs=tuple(RungInfo(family="h264", decoder="h264", kbps=float(k), label=f"sabre-{k:g}k") for k in kbps),
        duration_s=np.full(n, chunk_s),
        frames=np.full(n, max(int(round(chunk_s * _FPS)), 1)),
        size_bytes=bits / 8.0,
        **_no_lpips(n, kbps.size),
        metadata={
            "source": f"imported from Sabre movie {p} ({kbps.size} bitrates, {n} segments of {seg_ms:g} ms)",
            "importer": "sabre-movie",
            "path": str(p),
            "kbps": "nominal (Sabre's bitrates_kbps)",
            "lpips": "none",
        },
    )
