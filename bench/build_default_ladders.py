"""Rebuild the embedded ladders ``abr/data/{h265,h264}-measured.json`` and the Promptus model ladders.

    nice -n 10 python bench/build_default_ladders.py [--videos ../shared/data/videos] [--work DIR]

Measures H.265 and H.264 ladders (and ``h265-hd-measured``: H.265 at each clip's native size, see
:data:`NATIVE`) with :func:`codec.ladder.build_ladder` on the clips below
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from abr import concat_ladders  # noqa: E402
from abr.errors import cli_main  # noqa: E402
from abr.io import read_json  # noqa: E402
from abr.ladder import load_ladder, save_ladder  # noqa: E402
from abr.promptus_model import MODEL_LADDERS, promptus_paper_model  # noqa: E402
from codec.ladder import ChunkResult, LadderBuildConfig, build_ladder  # noqa: E402

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
    "h265-hd": (1100.0, 2000.0, 3000.0, 4500.0),
}
#: ``h265-hd``: H.265 at each clip's native size (1280x720 down to 176x144, no crop, no resize) at the
#: HD rates of Apple's HLS authoring ladder (1.1-4.5 Mbit/s, its 432p-720p rungs), scored on the same
#: 512x512 centred-square view as every other rung (``LadderBuildConfig.display``), so a mixed ladder
#: compares like with like. The classic top of ``generative-fallback``.
NATIVE = {"h265-hd": dict(crop_square=False, resize=None, display=512)}
LPIPS_STRIDE = 2


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "data" / "videos")
    ap.add_argument("--work", type=Path, default=Path("/tmp/promptabr-default-ladders"), help="per-chunk results")
    ap.add_argument("--out", type=Path, default=ROOT / "abr" / "data", help="where the ladder files go")
    ap.add_argument("--codecs", default="h265,h264,h265-hd",
                    help="comma-separated ladders to build: h265, h264, h265-hd (default all three)")  # fmt: skip
    ap.add_argument("--report", type=Path, default=None, metavar="MD",
                    help="after building, write MD: every rebuilt ladder against the one committed in abr/data "
                         "(rate error and LPIPS per rung; key-frame LPIPS from --work)")  # fmt: skip
    ap.add_argument("--model-only", action="store_true",
                    help="only re-derive the Promptus model ladders from the committed h265-measured.json")  # fmt: skip
    args = ap.parse_args(argv)
    codecs = [c for c in args.codecs.split(",") if c]
    if args.model_only:
        _write_models(load_ladder(args.out / "h265-measured.json"), args.out)
        return 0
    built = {}
    for codec in codecs:
        parts = []
        for clip, _ in CLIPS:
            family = codec.split("-")[0]
            cfg = LadderBuildConfig(
                codec=family, kbps=KBPS[codec], chunk_s=2.0, lpips_stride=LPIPS_STRIDE, **NATIVE.get(codec, {})
            )
            t0 = time.perf_counter()
            stem = Path(clip).stem
            lad = build_ladder(args.videos / clip, args.work / codec / stem, cfg, name=f"{codec}-measured:{stem}")
            print(f"{codec} {clip}: {lad.n_chunks} chunks in {time.perf_counter() - t0:.0f} s", flush=True)
            parts.append(lad)
        ladder = concat_ladders(*parts, name=f"{codec}-measured")
        ladder.metadata.update(
            source=f"measured {family.upper()} ladders of {len(parts)} clips from ../shared/data/videos "
            + ("at their native sizes, scored on a 512x512 centred-square view " if codec in NATIVE else "")
            + "(bench/build_default_ladders.py)",
            clips={clip: note for clip, note in CLIPS},
            built_by="bench/build_default_ladders.py",
        )
        save_ladder(ladder, args.out / f"{codec}-measured.json")
        built[codec] = ladder
        print(f"wrote {args.out / f'{codec}-measured.json'}", flush=True)
        if codec == "h265":
            _write_models(ladder, args.out)
    if args.report is not None:
        from abr.io import write_text_atomic

        write_text_atomic(args.report, report(built, ROOT / "abr" / "data", args.work))
        print(f"wrote {args.report}")
    return 0


def _key_frame_lpips(work: Path, codec: str) -> np.ndarray:
    """Mean LPIPS of every chunk's first (key) frame per rung, from the per-chunk records of a build."""
    files = sorted((work / codec).glob("*/chunks/chunk-*.json"))
    rows = [ChunkResult.from_dict(read_json(f, "chunk result")).lpips for f in files]
    return np.mean([[rung[0] for rung in row] for row in rows], axis=0)


def _rate_control(ladder) -> str:
    return str(ladder.metadata["parts"][0]["metadata"]["settings"].get("rate_control"))


def _err(e: np.ndarray) -> str:
    return f"{e.mean():+.1%} ({e[np.argmax(np.abs(e))]:+.1%})"


def report(built: dict, committed: Path, work: Path) -> str:
    """Markdown: each rebuilt ladder per rung against the committed file of the same name (if any).

    Rate error = actual / target - 1 over a chunk (mean and worst chunk); LPIPS = mean over chunks
    of the per-chunk mean; key frame = LPIPS of the chunk's IDR frame (new build only: the old
    per-frame records were not kept)."""
    out = ["# Rebuilt classic ladders against the committed ones", "",
           "Generated by `bench/build_default_ladders.py --report`. Rate error = actual / target - 1 per chunk "
           "(mean over chunks, and the worst chunk). LPIPS (alex) = mean over chunks.", ""]  # fmt: skip
    for codec, new in built.items():
        old_file = committed / f"{codec}-measured.json"
        old = load_ladder(old_file) if old_file.is_file() else None
        rc_new = _rate_control(new)
        rc_old = _rate_control(old) if old is not None else "none committed"
        out += [f"## `{codec}-measured`: {rc_new} (committed file: {rc_old})", "",
                "| target kbit/s | rate error, committed: mean (worst) | rebuilt: mean (worst) | LPIPS committed "
                "| rebuilt | rebuilt - committed | key-frame LPIPS, rebuilt |",
                "|---|---|---|---|---|---|---|"]  # fmt: skip
        key = _key_frame_lpips(work, codec)
        err_new = new.measured_kbps / new.kbps - 1
        for j, k in enumerate(new.kbps):
            lp_new = float(new.lpips_mean[:, j].mean())
            lp_old, err_cell = float("nan"), "-"
            if old is not None and k in list(old.kbps):
                i = list(old.kbps).index(k)
                lp_old = float(old.lpips_mean[:, i].mean())
                err_cell = _err(old.measured_kbps[:, i] / k - 1)
            cells = [f"{k:g}", err_cell, _err(err_new[:, j]), f"{lp_old:.4f}", f"{lp_new:.4f}",
                     f"{lp_new - lp_old:+.4f}", f"{key[j]:.4f}"]  # fmt: skip
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def _write_models(h265, out: Path) -> None:
    for cfg in MODEL_LADDERS.values():
        model = promptus_paper_model(h265, cfg)
        save_ladder(model, out / f"{model.name}.json")
        print(f"wrote {out / f'{model.name}.json'}: kbit/s {', '.join(f'{k:g}' for k in model.kbps)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
