"""Build the shipped measured rank ladder of the tiny learned generator (``codec/data/tiny-ladder``).

    nice -n 10 python bench/build_tiny_ladder.py [--iters 20] [--work out/tiny-ladder-work]

Encodes the first ``--max-frames`` frames of the held-out clip ``../shared/data/videos/carphone_pristine.mp4``
(29.97 fps, centre square at 32x32) with ``codec.encode`` through ``codec/data/tiny-generator`` at ranks 1..8, keyframe
interval 10, nested ranks (rank r+1 starts from rank r's keyframes), the ``reference`` preset with its
perceptual term off (0.8 MSE + 0.1 prompt L1), ``--iters`` iterations per keyframe (``--iters-first``
for rank 1's frame 0), 1-s chunks. Every byte of every stream is counted in the ladder and every chunk's
LPIPS measured on the decoded stream (AlexNet, frames upsampled bilinearly to 64x64). The fit runs in
``--work`` (resumable checkpoints); the streams and the relabelled ladder are then copied to the
package folder. Label: tiny generator, not Promptus quality. ``python -m sim.run --ladder
tiny-promptus-measured`` plays it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from abr.ladder import load_ladder, save_ladder  # noqa: E402

LABEL = "tiny generator, not Promptus quality"
NAME = "tiny-promptus-measured"


def main(argv: list[str] | None = None) -> int:
    from codec.encode import main as encode
    from codec.promptus.train_tiny import HELD_OUT, TINY_LEARNED, VIDEOS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=20, help="iterations per keyframe and rank (default 20, as shipped)")
    ap.add_argument("--iters-first", type=int, default=100, help="iterations for rank 1's frame 0 (default 100)")
    ap.add_argument("--max-frames", type=int, default=60, help="frames of the clip to encode (default 60: 2 chunks)")
    ap.add_argument("--work", type=Path, default=ROOT / "out" / "tiny-ladder-work", help="encode folder")
    ap.add_argument("--out", type=Path, default=ROOT / "codec" / "data" / "tiny-ladder", help="package folder")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    rc = encode([str(VIDEOS / HELD_OUT), "--model", str(TINY_LEARNED), "--ranks", "1,2,3,4,5,6,7,8",
                 "--interval", "10", "--nested", "--preset", "reference", "--perceptual", "off",
                 "--iters", str(args.iters), "--iters-first", str(args.iters_first), "--chunk-s", "1",
                 "--max-frames", str(args.max_frames),
                 "--lpips", "alex", "--device", "cpu", "--quiet", "--out", str(args.work)])
    if rc:
        return rc
    args.out.mkdir(parents=True, exist_ok=True)
    ladder = load_ladder(args.work / "ladder.json")
    meta = {**ladder.metadata, "label": LABEL, "source": f"../shared/data/videos/{HELD_OUT}",
            "built_by": "bench/build_tiny_ladder.py", "model": "codec/data/tiny-generator",
            "streams": {str(r.rank): f"promptus_r{r.rank}_n10.prmt" for r in ladder.rungs}}
    for r in ladder.rungs:
        shutil.copyfile(args.work / f"promptus_r{r.rank}_n10.prmt", args.out / f"promptus_r{r.rank}_n10.prmt")
    save_ladder(replace(ladder, name=NAME, metadata=meta), args.out / "ladder.json")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
