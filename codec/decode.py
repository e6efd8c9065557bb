"""Decode a Promptus stream into a video file.

Example::

    python -m codec.decode out/clip/promptus_r8_n10.prmt --model ~/models/sd-turbo --out r8.mp4

``.mp4``/``.mkv`` get H.264 (``--crf``), ``.avi`` gets lossless FFV1. The stream names the receiver
it was fitted through; ``--receiver`` overrides it. A damaged or truncated stream stops with a
one-line error naming the record.
"""

from __future__ import annotations

import argparse
import sys

from abr.errors import cli_main
from abr.flags import add_progress_flag, add_torch_device_flag


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m codec.decode", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stream", help="a .prmt stream written by codec.encode")
    p.add_argument("--out", required=True, help="output video (.mp4, .mkv: H.264; .avi: lossless FFV1)")
    p.add_argument("--model", default="stabilityai/sd-turbo", help="SD-Turbo folder or hub id (as for encoding)")
    p.add_argument("--taesd", default="madebyollin/taesd", help="TAESD folder or hub id (default: MODEL/taesd)")
    p.add_argument("--receiver", help="receiver spec to play with (default: the one in the stream)")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="decode even if the stream was made with other generator weights")
    p.add_argument("--crf", type=int, default=12, help="H.264 quality of the output file (default 12)")
    add_torch_device_flag(p)
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"),
                   help="generator weights' dtype (default: fp16 on CUDA, fp32 on CPU)")
    add_progress_flag(p, dest="quiet")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pathlib import Path

    from abr.errors import InputError
    from abr.io import check_output

    if Path(args.out).suffix.lower() not in (".mp4", ".mkv", ".avi"):
        raise InputError("--out must end in .mp4, .mkv (H.264) or .avi (FFV1)", path=args.out)
    check_output(args.out)
    import torch

    from codec.promptus.bitstream import read_stream
    from codec.promptus.generator import PromptusGenerator
    from codec.promptus.pipeline import decode_stream

    read_stream(args.stream)  # fail on a damaged file before loading a model
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype] if args.dtype else None
    gen = PromptusGenerator.from_pretrained(args.model, args.taesd, device=args.device, dtype=dtype)
    n = decode_stream(args.stream, args.out, gen, receiver=args.receiver, strict=not args.allow_mismatch,
                      progress=not args.quiet)
    print(f"{n} frames -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
