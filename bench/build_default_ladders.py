"""Rebuild the embedded ladders ``abr/data/{h265,h264}-measured.json`` and the Promptus model ladders.

    nice -n 10 python bench/build_default_ladders.py [--videos ../shared/data/videos] [--work DIR]

Measures H.265 and H.264 ladders with :func:`codec.ladder.build_ladder` on the clips below
(Promptus operating point: centred square crop resized to 512x512, 2-s chunks, each chunk one
closed GOP, capped-VBR rate control, LPIPS(alex) on every second frame), chains the chunks of
all clips into one ladder per codec (:func:`abr.concat_ladders`; ``metadata["parts"]``
says which chunks came from which clip, its SHA-256, the encoder build and every setting), and
derives the Promptus model ladders (``promptus-paper-model``, ``promptus-wide-model``:
:data:`abr.promptus_model.MODEL_LADDERS`) from the H.265 one (:func:`abr.promptus_model.promptus_paper_model`).
No video goes into the repository, only these figures. Per-chunk results are kept in ``--work``,
so an interrupted run resumes. It took 36 minutes of wall time (25 for H.265, 11 for H.264) on a busy
two-core machine. ``--model-only`` re-derives the model ladders from the committed ``h265-measured.json``
(how the committed model files were made, so the test that re-derives them matches to 1e-9); rerun
it whenever ``h265-measured.json`` changes::

    python bench/build_default_ladders.py --model-only

Clips (see ../shared/data/videos/PROVENANCE.md): the four with a permissive licence and more
than a few frames. ``openpose_video.avi`` is left out (non-commercial licence), and
``CiscoVT2people_320x192_12fps.yuv`` (9 frames) is too short for a 2-s chunk.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from abr import concat_ladders  # noqa: E402
from abr.errors import cli_main  # noqa: E402
from abr.ladder import load_ladder, save_ladder  # noqa: E402
from abr.promptus_model import MODEL_LADDERS, promptus_paper_model  # noqa: E402
from codec.ladder import LadderBuildConfig, build_ladder  # noqa: E402

CLIPS = (
    ("carphone_pristine.mp4", "talking head in a car (176x144 source, upscaled)"),
    ("bigbuckbunny.mp4", "animation"),
    ("bikes.mp4", "urban street, motion and hard cuts"),
    ("video_with_failing_audio.mp4", "outdoor landscape, slow pan"),
)
#: Rung targets in kbit/s. H.265 covers SPEC section 1's anchors (75/110/190/370/750) plus 280 kbit/s, the
#: rate the Promptus model's floor is defined at, and 50 kbit/s; H.264 sits about 1.5x higher.
KBPS = {
    "h265": (50.0, 75.0, 110.0, 190.0, 280.0, 370.0, 750.0),
    "h264": (75.0, 110.0, 190.0, 280.0, 370.0, 750.0, 1500.0),
}
LPIPS_STRIDE = 2


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "data" / "videos")
    ap.add_argument("--work", type=Path, default=Path("/tmp/promptabr-default-ladders"), help="per-chunk results")
    ap.add_argument("--out", type=Path, default=ROOT / "abr" / "data", help="where the ladder files go")
    ap.add_argument("--codecs", default="h265,h264", help="comma-separated codecs to build (default h265,h264)")
    ap.add_argument("--model-only", action="store_true",
                    help="only re-derive the Promptus model ladders from the committed h265-measured.json")  # fmt: skip
    args = ap.parse_args(argv)
    codecs = [c for c in args.codecs.split(",") if c]
    if args.model_only:
        _write_models(load_ladder(args.out / "h265-measured.json"), args.out)
        return 0
    for codec in codecs:
        parts = []
        for clip, _ in CLIPS:
            cfg = LadderBuildConfig(codec=codec, kbps=KBPS[codec], chunk_s=2.0, lpips_stride=LPIPS_STRIDE)
            t0 = time.perf_counter()
            stem = Path(clip).stem
            lad = build_ladder(args.videos / clip, args.work / codec / stem, cfg, name=f"{codec}-measured:{stem}")
            print(f"{codec} {clip}: {lad.n_chunks} chunks in {time.perf_counter() - t0:.0f} s", flush=True)
            parts.append(lad)
        ladder = concat_ladders(*parts, name=f"{codec}-measured")
        ladder.metadata.update(
            source=f"measured {codec.upper()} ladders of {len(parts)} clips from ../shared/data/videos "
            "(bench/build_default_ladders.py)",
            clips={clip: note for clip, note in CLIPS},
            built_by="bench/build_default_ladders.py",
        )
        save_ladder(ladder, args.out / f"{codec}-measured.json")
        print(f"wrote {args.out / f'{codec}-measured.json'}", flush=True)
        if codec == "h265":
            _write_models(ladder, args.out)
    return 0


def _write_models(h265, out: Path) -> None:
    for cfg in MODEL_LADDERS.values():
        model = promptus_paper_model(h265, cfg)
        save_ladder(model, out / f"{model.name}.json")
        print(f"wrote {out / f'{model.name}.json'}: kbit/s {', '.join(f'{k:g}' for k in model.kbps)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
