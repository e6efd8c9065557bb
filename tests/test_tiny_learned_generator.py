"""The shipped tiny learned generator: loads as package data and represents a held-out real frame.

A short version of ``bench/bench_tiny_generator.py`` (figures about the tiny model only).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from codec.promptus.train_tiny import HELD_OUT, TINY_LEARNED, VIDEOS, load_clip, load_tiny_learned, rank_sweep  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_shipped_model_is_small_and_documented():
    if not TINY_LEARNED.is_dir():
        pytest.skip("codec/data/tiny-generator not present")
    size = sum(p.stat().st_size for p in TINY_LEARNED.rglob("*") if p.is_file())
    assert size < 2_000_000
    rec = json.loads((TINY_LEARNED / "train_config.json").read_text())
    assert HELD_OUT not in rec["config"]["clips"] and rec["steps"] > 0
    gen = load_tiny_learned()
    assert gen.config.name == "tiny-learned" and gen.config.prompt_shape == (77, 32)


def test_learned_generator_represents_a_held_out_frame():
    """A prompt fitted through it beats flat grey on a held-out frame by > 1.5 dB (the random tiny generators
    stay below flat grey). Rank does not yet buy quality on this model (bench/results/tiny_generator.json)."""
    if not TINY_LEARNED.is_dir():
        pytest.skip("codec/data/tiny-generator not present")
    if not (VIDEOS / HELD_OUT).is_file():
        pytest.skip(f"../shared/data/videos/{HELD_OUT} not present")
    gen = load_tiny_learned()
    clip = load_clip(HELD_OUT, gen.config.resolution, max_frames=11)
    x = torch.from_numpy(clip[10:11]).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    res = rank_sweep(gen, x, ranks=(8,), iters=40)
    grey = float(10 * np.log10(4.0 / float(x.square().mean())))
    assert res["psnr_db"][8][0] > grey + 1.5
