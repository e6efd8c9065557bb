"""Ladder build time per chunk: encode, decode and LPIPS cost of one 2-s chunk at 512x512.

Run: ``python bench/bench_ladder_build.py [--codec h265] [--video ../shared/data/videos/bikes.mp4]``.
Measures one chunk (``--chunk`` seconds, default 2) of the clip (or a synthetic moving texture when
the clip is absent) at the rungs of ``--kbps``, with the same code as ``python -m codec.ladder``
(:func:`codec.ladder.measure_chunk`), and reports wall seconds per chunk and their split: encoding,
decoding and LPIPS (every frame, and every second frame as the embedded ladders use). Results go to
``bench/results/ladder_build.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abr.flags import add_chunk_flag  # noqa: E402
from codec.classic import decode_chunk, encode_chunk  # noqa: E402
from codec.ladder import LadderBuildConfig, measure_chunk  # noqa: E402
from codec.metrics.lpips import LPIPS  # noqa: E402
from codec.video import iter_frames, probe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _frames(video: Path, chunk_s: float) -> tuple[np.ndarray, float, str]:
    if video.is_file():
        fps = probe(video).fps
        n = int(round(chunk_s * fps))
        return np.stack(list(iter_frames(video, crop_square=True, resize=512, max_frames=n))), fps, video.name
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (64, 64, 3)).repeat(8, 0).repeat(8, 1).astype(np.uint8)
    n = int(round(chunk_s * 25))
    return np.stack([np.roll(base, 3 * i, axis=1) for i in range(n)]), 25.0, "synthetic texture"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--codec", default="h265")
    ap.add_argument("--kbps", default="50,75,110,190,280,370,750")
    add_chunk_flag(ap, 2.0)
    ap.add_argument("--video", type=Path, default=ROOT.parent / "shared" / "data" / "videos" / "bikes.mp4")
    args = ap.parse_args()
    kbps = tuple(float(k) for k in args.kbps.split(","))
    ref, fps, source = _frames(args.video, args.chunk_s)
    model = LPIPS("alex")
    out: dict[str, object] = {
        "codec": args.codec,
        "kbps": list(kbps),
        "frames": len(ref),
        "fps": fps,
        "source": source,
        "cpu_count": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0],
    }
    # split: encode and decode every rung once
    enc_s = dec_s = 0.0
    decoded = []
    for k in kbps:
        enc = encode_chunk(ref, args.codec, k, fps)
        frames, t = decode_chunk(enc.packets, args.codec)
        enc_s += enc.encode_s
        dec_s += t
        decoded.append(frames)
    out["encode_s_per_chunk"] = enc_s
    out["decode_s_per_chunk"] = dec_s
    for stride in (1, 2):
        t0 = time.perf_counter()
        model.distance_frames_many(ref[::stride], [d[::stride] for d in decoded])
        out[f"lpips_s_per_chunk_stride{stride}"] = time.perf_counter() - t0
    # end to end, as codec.ladder runs it
    for stride in (1, 2):
        cfg = LadderBuildConfig(codec=args.codec, kbps=kbps, lpips_stride=stride)
        t0, c0 = time.perf_counter(), _cpu_s()
        measure_chunk(ref, cfg, fps, model)
        out[f"build_s_per_chunk_stride{stride}"] = time.perf_counter() - t0
        out[f"build_cpu_s_per_chunk_stride{stride}"] = _cpu_s() - c0
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ladder_build.json").write_text(json.dumps(out, indent=1) + "\n")
    for k, v in out.items():
        print(f"{k:34s} {v:.2f}" if isinstance(v, float) else f"{k:34s} {v}")


if __name__ == "__main__":
    main()
