"""A second, independent measurement of the committed ``h265-measured`` ladder.

    nice -n 5 python bench/check_ladder_independent.py [--work DIR]   # -> bench/results/ladder_independent.{json,md}

Issue 19 asks for the classic ladders to be checked against an independent H.265 ladder built with
the same settings (x265, 2-s closed-GOP chunks, 512x512 centred square, bicubic resize, LPIPS alex)
at the same rate. Clips nobody on the team has cannot be used here, so this is the second method
on the same four clips: every step but LPIPS is done by another tool chain, the ``ffmpeg``
command-line program of the Debian package (its own libavcodec, libswscale and libx265 builds,
not PyAV's bundled ones):

- decode, crop and resize with ffmpeg's filters (``crop``, ``scale=...:flags=bicubic``), in YUV,
  where ``codec.ladder`` converts to RGB first and resizes with PyAV;
- cut into chunks of ``round(2 s x fps)`` frames and encode each chunk twice (two-pass ABR,
  ``keyint = min-keyint = chunk``, no scene cut, closed GOP, no info SEI: the settings
  ``codec.ladder`` records) with ``ffmpeg -c:v libx265``;
- decode each stream with ffmpeg to RGB, and measure LPIPS (our AlexNet LPIPS, checked against
  the published reference values by ``tests/test_metrics.py::test_published_lpips_values``) on every second frame
  against ffmpeg's own RGB reference frames.

It reports, per rung, the mean actual rate and the mean LPIPS of both measurements over the same
chunks, and the largest LPIPS difference. Per-chunk results are kept in ``--work`` (a rerun
resumes). Needs ``ffmpeg`` on the PATH (``apt-get install ffmpeg``) and ``../shared/data/videos``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from abr.errors import InputError, cli_main  # noqa: E402
from abr.io import read_json, write_json_atomic, write_text_atomic  # noqa: E402
from abr.ladder import load_ladder  # noqa: E402

SIDE = 512
CHUNK_S = 2.0
STRIDE = 2
TOLERANCE = 0.01  # issue 19's target: mean LPIPS within +-0.01 at every rung from 50 kbit/s up


def _run(cmd: list[str], stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:6])}... failed: {proc.stderr.decode(errors='replace')[-400:]}")
    return proc.stdout


def _frames(path: Path, pix_fmt: str, fps: float | None = None) -> np.ndarray:
    """The clip's centred square resized to 512x512 by ffmpeg, as ``(N, 512, 512, C)`` uint8 (yuv420p: bytes)."""
    vf = f"crop='min(iw,ih)':'min(iw,ih)',scale={SIDE}:{SIDE}:flags=bicubic"
    raw = _run(["ffmpeg", "-v", "error", "-i", str(path), "-an", "-vf", vf, "-pix_fmt", pix_fmt, "-f", "rawvideo", "-"])
    per = SIDE * SIDE * 3 if pix_fmt == "rgb24" else SIDE * SIDE * 3 // 2
    return np.frombuffer(raw, np.uint8).reshape(-1, per).copy()


def _encode(yuv: np.ndarray, fps: float, kbps: float, tmp: Path) -> bytes:
    """Two-pass ABR x265 at ``kbps`` of one chunk (one closed GOP), through the ffmpeg CLI."""
    n = len(yuv)
    params = f"keyint={n}:min-keyint={n}:scenecut=0:open-gop=0:info=0:log-level=error"
    base = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{SIDE}x{SIDE}",
            "-r", repr(fps), "-i", "-", "-c:v", "libx265", "-b:v", f"{kbps:g}k"]  # fmt: skip
    stats = tmp / "x265.stats"
    _run(base + ["-x265-params", f"{params}:pass=1:stats={stats}", "-f", "hevc", "/dev/null"], yuv.tobytes())
    out = tmp / "chunk.hevc"
    _run(base + ["-x265-params", f"{params}:pass=2:stats={stats}", "-f", "hevc", str(out)], yuv.tobytes())
    return out.read_bytes()


def _decode(stream: bytes, tmp: Path) -> np.ndarray:
    src = tmp / "in.hevc"
    src.write_bytes(stream)
    raw = _run(["ffmpeg", "-v", "error", "-i", str(src), "-pix_fmt", "rgb24", "-f", "rawvideo", "-"])
    return np.frombuffer(raw, np.uint8).reshape(-1, SIDE, SIDE, 3).copy()


def _fps(path: Path) -> float:
    out = _run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=avg_frame_rate",
                "-of", "csv=p=0", str(path)]).decode().strip()  # fmt: skip
    num, _, den = out.partition("/")
    return float(num) / float(den or 1)


def measure_clip(path: Path, kbps: tuple[float, ...], n_chunks: int, work: Path, lpips) -> list[dict]:
    """Per chunk: actual kbit/s and mean LPIPS per rung, measured by the ffmpeg tool chain."""
    fps = _fps(path)
    cf = int(round(CHUNK_S * fps))
    rgb = _frames(path, "rgb24").reshape(-1, SIDE, SIDE, 3)
    yuv = _frames(path, "yuv420p")
    rows = []
    for c in range(n_chunks):
        rec = work / path.stem / f"chunk-{c:05d}.json"
        if rec.is_file():
            rows.append(read_json(rec, "chunk result"))
            continue
        sl = slice(c * cf, min((c + 1) * cf, len(rgb)))
        ref, frames = rgb[sl], yuv[sl]
        sizes, decoded = [], []
        with tempfile.TemporaryDirectory() as t:
            for k in kbps:
                stream = _encode(frames, fps, k, Path(t))
                sizes.append(len(stream))
                dec = _decode(stream, Path(t))
                if dec.shape != ref.shape:
                    raise RuntimeError(f"{path.name} chunk {c}: decoded {dec.shape}, expected {ref.shape}")
                decoded.append(dec)
        lp = lpips.distance_frames_many(ref[::STRIDE], [d[::STRIDE] for d in decoded])
        dur = len(ref) / fps
        row = {"chunk": c, "frames": len(ref), "kbps": [8 * s / dur / 1000 for s in sizes],
               "lpips": [float(v) for v in lp.mean(axis=1)]}  # fmt: skip
        write_json_atomic(rec, row)
        rows.append(row)
    return rows


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "data" / "videos")
    ap.add_argument("--ladder", type=Path, default=ROOT / "abr" / "data" / "h265-measured.json")
    ap.add_argument("--work", type=Path, default=Path("/tmp/promptabr-ladder-check"), help="per-chunk results")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ladder_independent")
    args = ap.parse_args(argv)
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        raise InputError("needs the ffmpeg command-line tools on the PATH (apt-get install ffmpeg)")
    import torch

    from codec.metrics.lpips import LPIPS

    torch.set_grad_enabled(False)
    ladder = load_ladder(args.ladder)
    kbps = tuple(float(k) for k in ladder.kbps)
    lpips = LPIPS("alex")
    ours_lp, ours_kbps, ind_lp, ind_kbps, clips = [], [], [], [], []
    for part in ladder.metadata["parts"]:
        clip = part["metadata"]["video"]["file"]
        first, n = part["first_chunk"], part["chunks"]
        rows = measure_clip(args.videos / clip, kbps, n, args.work, lpips)
        ind_lp += [r["lpips"] for r in rows]
        ind_kbps += [r["kbps"] for r in rows]
        ours_lp.append(ladder.lpips_mean[first : first + n])
        ours_kbps.append(ladder.measured_kbps[first : first + n])
        clips.append(clip)
        print(f"{clip}: {n} chunks", flush=True)
    a_lp, a_kbps = np.concatenate(ours_lp), np.concatenate(ours_kbps)
    b_lp, b_kbps = np.asarray(ind_lp), np.asarray(ind_kbps)
    diff = a_lp.mean(axis=0) - b_lp.mean(axis=0)
    doc = {
        "ladder": str(args.ladder.relative_to(ROOT)) if args.ladder.is_relative_to(ROOT) else str(args.ladder),
        "rate_control": ladder.metadata["parts"][0]["metadata"]["settings"].get("rate_control"),
        "clips": clips, "chunks": len(a_lp), "target_kbps": list(kbps),
        "ours_kbps": a_kbps.mean(axis=0).tolist(), "independent_kbps": b_kbps.mean(axis=0).tolist(),
        "ours_lpips": a_lp.mean(axis=0).tolist(), "independent_lpips": b_lp.mean(axis=0).tolist(),
        "lpips_diff": diff.tolist(), "largest_abs_diff": float(np.abs(diff).max()),
        "within_tolerance": bool(np.all(np.abs(diff) <= TOLERANCE)),
        "independent_tool": _run(["ffmpeg", "-version"]).decode().splitlines()[0],
    }  # fmt: skip
    write_json_atomic(args.out.with_suffix(".json"), doc)
    lines = ["# `h265-measured` against an independent measurement (ffmpeg CLI + its own libx265)", "",
             f"Generated by `bench/check_ladder_independent.py`: {len(a_lp)} chunks of {len(clips)} clips, "
             f"{doc['rate_control']} rate control, {doc['independent_tool']}. Same chunks, same targets; "
             f"LPIPS (alex) mean over chunks, every second frame. Target: |difference| <= {TOLERANCE}.", "",
             "| target kbit/s | ours: kbit/s | independent: kbit/s | ours: LPIPS | independent: LPIPS "
             "| ours - independent |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for j, k in enumerate(kbps):
        lines.append(f"| {k:g} | {doc['ours_kbps'][j]:.1f} | {doc['independent_kbps'][j]:.1f} | "
                     f"{doc['ours_lpips'][j]:.4f} | {doc['independent_lpips'][j]:.4f} | {diff[j]:+.4f} |")  # fmt: skip
    lines += ["", f"Largest |difference|: {doc['largest_abs_diff']:.4f} "
              f"({'within' if doc['within_tolerance'] else 'OUTSIDE'} +-{TOLERANCE})."]  # fmt: skip
    write_text_atomic(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
