"""The shipped measured rank ladder of the tiny learned generator (``codec/data/tiny-ladder``).

Built by ``bench/build_tiny_ladder.py``; labelled: tiny generator, not Promptus quality. Every byte of every
stream is in the ladder, and a decoded stream reproduces the ladder's LPIPS.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from abr.registry import available_ladders, embedded_ladder_file, get_ladder

NAME = "tiny-promptus-measured"
FOLDER = Path(__file__).resolve().parents[1] / "codec" / "data" / "tiny-ladder"

pytestmark = pytest.mark.skipif(not (FOLDER / "ladder.json").is_file(), reason="codec/data/tiny-ladder not built")


def test_registered_labelled_and_small():
    assert NAME in available_ladders() and embedded_ladder_file(NAME) == FOLDER / "ladder.json"
    lad = get_ladder(NAME)
    assert lad.name == NAME and not lad.is_synthetic
    assert lad.metadata["label"] == "tiny generator, not Promptus quality"
    assert lad.metadata["quality_metric"].startswith("lpips-alex (32x32 frames upsampled")
    assert sorted(r.rank for r in lad.rungs) == list(range(1, 9))
    assert sum(p.stat().st_size for p in FOLDER.iterdir()) < 300_000


def test_every_stream_byte_is_in_the_ladder():
    from codec.promptus.bitstream import read_stream

    lad = get_ladder(NAME)
    for j, rung in enumerate(lad.rungs):
        path = FOLDER / lad.metadata["streams"][str(rung.rank)]
        size = path.stat().st_size
        assert lad.size_bytes[:, j].sum() == size  # header, frame-0 latent, keyframe and end records
        stream = read_stream(path)
        assert stream.header.rank == rung.rank and stream.total_bytes == size
        seconds = stream.header.n_frames / stream.header.fps
        assert rung.kbps == pytest.approx(size * 8 / seconds / 1000)


def test_a_decoded_stream_reproduces_the_ladders_lpips(shared_data):
    """Decode the rank-1 stream through the shipped tiny generator and score chunk 0 against the source.

    Tolerance 2e-3 LPIPS: decoding is float32 and deterministic on one machine (here it matches to 1e-9);
    another BLAS may order sums differently, which moves a few decoded pixels by one uint8 level, and one
    level on a few pixels of a 32x32 frame moves its LPIPS by well under 1e-3.
    """
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    import torch

    from abr.errors import InputError
    from codec.promptus.bitstream import read_stream
    from codec.promptus.pipeline import FrameScorer, decode_frames, load_video
    from codec.promptus.train_tiny import HELD_OUT, load_tiny_learned

    video = shared_data / "videos" / HELD_OUT
    if not video.is_file():
        pytest.skip(f"{video} not present")
    try:
        scorer = FrameScorer("alex", None)
    except InputError as exc:
        pytest.skip(f"LPIPS weights unavailable here: {exc}")
    lad = get_ladder(NAME)
    j = [r.rank for r in lad.rungs].index(1)
    n = int(lad.frames[0])
    gen = load_tiny_learned()
    torch.set_num_threads(1)
    stream = read_stream(FOLDER / lad.metadata["streams"]["1"])
    decoded = []
    for _, seg in decode_frames(stream, gen):
        decoded.append(seg)
        if sum(len(s) for s in decoded) >= n:
            break
    decoded = np.concatenate(decoded)[:n]
    ref, _ = load_video(video, gen.config.resolution, max_frames=n)
    lp = scorer(ref, decoded)
    assert float(lp.mean()) == pytest.approx(float(lad.lpips_mean[0, j]), abs=2e-3)
    meta = json.loads((FOLDER / "ladder.json").read_text())["metadata"]
    assert meta["per_rank"]["1"]["total_bytes"] == stream.total_bytes
