"""Encode a video into Promptus prompt streams at every rung of a rank ladder, plus the measured ladder.

Example::

    python -m codec.encode clip.mp4 --ranks 2,4,8,16 --interval 10 --model ~/models/sd-turbo --out out/clip
    python -m sim.run --ladder out/clip/ladder.json ...

Writes ``promptus_r{r}_n{N}.prmt`` per rank, ``ladder.json`` (``abr`` Ladder: bytes, LPIPS per chunk
and rung), ``summary.json`` (fit time, loss, entropy-coding gain per rank) and per-keyframe
checkpoints (``checkpoints/``); rerunning the same command resumes an interrupted encode.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from abr.errors import InputError, cli_main
from abr.flags import add_chunk_flag, add_progress_flag, add_torch_device_flag


def _ranks(text: str) -> tuple[int, ...]:
    try:
        ranks = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"ranks must be comma-separated integers, got {text!r}") from None
    if not ranks or min(ranks) < 1 or max(ranks) > 4096:
        raise argparse.ArgumentTypeError(f"ranks must be in 1..4096 (the bitstream's limit), got {text!r}")
    return ranks


def _check_args(args: argparse.Namespace) -> None:
    """Numbers the fit and the bitstream cannot take, refused before the model loads."""
    import math

    from abr.io import check_output

    if not 0 <= args.seed < 2**64:
        raise InputError(f"--seed must be in [0, 2^64), got {args.seed}")
    if not 1 <= args.interval <= 65535:
        raise InputError(f"--interval must be in 1..65535 frames, got {args.interval}")
    for name, lo, hi in (("target_loss", 0.0, math.inf), ("fps", 1e-3, 1000.0), ("chunk_s", 1e-3, 3600.0)):
        v = getattr(args, name)
        if v is not None and not (math.isfinite(v) and lo <= v <= hi):
            raise InputError(f"--{name.replace('_', '-')} must be a finite number in [{lo:g}, {hi:g}], got {v}")
    for name in ("iters", "iters_first", "max_frames", "derive_iters"):
        v = getattr(args, name)
        if v is not None and not (0 if name == "derive_iters" else 1) <= v <= 10**7:
            raise InputError(f"--{name.replace('_', '-')} must be in 1..10^7, got {v}")
    check_output(args.out, folder=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m codec.encode", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", help="input video (any container PyAV reads, or raw .yuv with the size in its name)")
    p.add_argument("--ranks", type=_ranks, default=(2, 4, 8, 16), help="prompt ranks, e.g. 2,4,8,16 (default)")
    p.add_argument("--interval", type=int, default=10, help="keyframe interval N in frames (default 10)")
    p.add_argument("--model", default="stabilityai/sd-turbo",
                   help="SD-Turbo diffusers folder (with unet/, optionally taesd/) or hub id")
    p.add_argument("--taesd", default="madebyollin/taesd",
                   help="TAESD folder or hub id (default: MODEL/taesd if present)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--preset", choices=("official", "reference", "fast"), default="reference",
                   help="fitting schedule: official (upstream's loop exactly: per-frame Adam steps, VGG19 content "
                        "loss, numpy noise; about 12x the steps of reference), reference (upstream's iteration counts "
                        "and loss weights, one batched step per iteration, light VGG term) or fast (reference plus "
                        "warm start and stall stop)")
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16", "fp16-noscale"),
                   help="generator weights and fitting precision; factors are always float32 masters. fp16: loss "
                        "scaling; bf16: no scaling needed; fp16-noscale: upstream's numerics (gradients underflow). "
                        "Default: fp16 on CUDA, fp32 on CPU")
    p.add_argument("--vgg-weights", help="torchvision VGG19 ImageNet weights (vgg19-dcbb9e9d.pth) for the official "
                                         "perceptual term (default: $PROMPTABR_VGG19_WEIGHTS)")
    p.add_argument("--iters", type=int, help="iterations per later keyframe (overrides the preset)")
    p.add_argument("--iters-first", type=int, help="iterations for frame 0 (overrides the preset)")
    p.add_argument("--target-loss", type=float, help="stop a keyframe once its loss reaches this")
    p.add_argument("--derive", action="store_true",
                   help="fit only the highest rank; derive lower ranks by truncated SVD + short fine-tune")
    p.add_argument("--nested", action="store_true",
                   help="fit the ranks in ascending order, each from the previous rank's keyframes grown by one "
                        "tiny component (--iters per keyframe, frame 0 included); excludes --derive")
    p.add_argument("--derive-iters", type=int, default=200, help="fine-tune iterations per derived keyframe")
    p.add_argument("--receiver", default="promptus", help="receiver to fit through (e.g. promptus, promptmobile-...)")
    p.add_argument("--fps", type=float, help="convert the video to this frame rate first")
    p.add_argument("--max-frames", type=int, help="encode only the first frames")
    add_chunk_flag(p, 2.0, help="ladder chunk duration")
    p.add_argument("--lpips", choices=("alex", "vgg", "none"), default="alex",
                   help="LPIPS net for the ladder ('none': (1-SSIM)/2, marked in the ladder metadata)")
    p.add_argument("--lpips-weights", help="LPIPS weight file (default: codec.metrics lookup)")
    p.add_argument("--perceptual", choices=("vgg19", "vgg16", "vgg", "lpips-vgg", "lpips-alex", "off"),
                   help="perceptual term of the fitting loss (default: the preset's: vgg19 = upstream's VGG19 content "
                        "loss for official, vgg = light LPIPS-VGG feature MSE otherwise; vgg16 = upstream's arithmetic "
                        "on LPIPS's ImageNet VGG16, no extra download)")
    p.add_argument("--coder", choices=("best", "ac", "lzma", "zlib", "raw"), default="best",
                   help="entropy coder of the records (default: the smallest per record)")
    p.add_argument("--seed", type=int, default=88, help="seed of the shared noise (default 88)")
    add_torch_device_flag(p)
    add_progress_flag(p, dest="quiet", help="no progress bars")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_args(args)
    import torch

    from codec.promptus.fit import FIT_PRESETS
    from codec.promptus.generator import PromptusGenerator
    from codec.promptus.pipeline import EncodeOptions, encode_video

    fit = FIT_PRESETS[args.preset]
    device = torch.device(args.device) if args.device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = args.dtype or ("fp16" if device.type == "cuda" else "fp32")
    weight_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}.get(precision, torch.float16)
    over = {"noise_seed": args.seed, "precision": precision}
    for key in ("iters", "iters_first", "target_loss"):
        if getattr(args, key) is not None:
            over[key] = getattr(args, key)
    loss = fit.loss if args.perceptual != "off" else replace(fit.loss, perceptual=0.0)
    if args.perceptual not in ("off", None):
        loss = replace(loss, perceptual_kind=args.perceptual)
    receiver = args.receiver
    if args.preset == "official" and receiver == "promptus":
        receiver = "promptus:noise=numpy"  # upstream's RandomState(seed) noise, recorded in the stream
    try:
        fit = replace(fit, loss=loss, **over)
        options = EncodeOptions(
            ranks=args.ranks, interval=args.interval, fit=fit, derive=args.derive, derive_iters=args.derive_iters,
            nested=args.nested,
            receiver=receiver, fps=args.fps, max_frames=args.max_frames, chunk_s=args.chunk_s,
            lpips_net=args.lpips, coder=args.coder, lpips_weights=args.lpips_weights, vgg_weights=args.vgg_weights,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    gen = PromptusGenerator.from_pretrained(args.model, args.taesd, device=device, dtype=weight_dtype)
    result = encode_video(args.video, gen, args.out, options, progress=not args.quiet)
    for r, s in result.summary.items():
        print(json.dumps({"rank": r, **{k: s[k] for k in ("kbps", "lpips_mean", "psnr_db", "entropy_gain",
                                                          "fit_seconds", "fit_loss")}}))
    print(f"ladder: {result.ladder_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
