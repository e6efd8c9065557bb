"""Nested rank fitting: rank r' starts from rank r's prompt (``grow_rank``, ``codec.encode --nested``),
and the small-frame LPIPS scorer (frames under 64x64 are upsampled before LPIPS)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from abr.errors import InputError  # noqa: E402
from codec.promptus.fit import REFERENCE, LossConfig, fit_video, grow_rank, nested_init  # noqa: E402
from codec.promptus.pipeline import LPIPS_MIN_SIDE, EncodeOptions, FrameScorer, encode_video  # noqa: E402
from codec.promptus.prompt import Factors  # noqa: E402
from codec.promptus.receiver import get_receiver  # noqa: E402
from codec.promptus.testing import tiny_generator  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
MSE_ONLY = LossConfig(mse=1.0, perceptual=0.0, l1_prompt=0.0)


def _frames(n: int, side: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side]
    return np.stack([np.stack([(xx * 4 + 9 * t) % 256, (yy * 4) % 256, ((xx + yy) * 2 + 5 * t) % 256], axis=-1)
                     for t in range(n)]).astype(np.uint8)


def test_grow_rank_keeps_the_prompt_and_adds_live_components():
    g = torch.Generator().manual_seed(3)
    fac = Factors(torch.randn(8, 2, generator=g), torch.randn(2, 32, generator=g))
    u, v = grow_rank(fac, 5, eps=1e-3)
    assert u.shape == (8, 5) and v.shape == (5, 32)
    c, c5 = fac.prompt(), u @ v / math.sqrt(5)
    # the old block alone reproduces the prompt exactly; the new block adds about eps^2 of it
    assert torch.allclose(u[:, :2] @ v[:2] / math.sqrt(5), c, atol=1e-5)
    assert 0 < float((c5 - c).abs().max()) < 1e-4 * float(c.abs().max())
    assert torch.all(u[:, 2:] != 0) and torch.all(v[2:] != 0)  # zero components would have zero gradient
    assert torch.equal(grow_rank(fac, 2)[0], fac.u)
    with pytest.raises(ValueError, match="below"):
        grow_rank(fac, 1)


def test_nested_fit_starts_where_the_lower_rank_ended():
    rec = get_receiver("promptus", tiny_generator(sample_size=8, prompt_len=8))
    x = _frames(5)
    cfg = replace(REFERENCE, rank=1, interval=2, iters_first=4, iters=3, loss=MSE_ONLY)
    low = fit_video(rec, x, cfg, progress=False)
    start = fit_video(rec, x, replace(cfg, rank=3), init=nested_init(low, 3), progress=False)  # 3 iters each
    zero = fit_video(rec, x, replace(cfg, rank=3, iters=0), init=nested_init(low, 3), progress=False)
    for a, b in zip(low.keyframes, zero.keyframes):  # zero iterations: the lower rank's prompt, re-quantized
        pa, pb = a.factors.factors().prompt(), b.factors.factors().prompt()
        assert b.factors.rank == 3 and float((pa - pb).abs().max()) < 0.02 * float(pa.abs().max()) + 1e-6
    # frame 0 keeps its best iterate, which starts at the lower rank's: its loss cannot rise
    assert start.keyframes[0].loss <= low.keyframes[0].loss * (1 + 1e-3)


def test_encode_nested_ladder_and_option_clash(tmp_path):
    gen = tiny_generator(sample_size=8, prompt_len=8)
    fit = replace(REFERENCE, iters_first=3, iters=2, loss=MSE_ONLY)
    with pytest.raises(InputError, match="exclude each other"):
        EncodeOptions(ranks=(1, 2), fit=fit, derive=True, nested=True)
    opts = EncodeOptions(ranks=(2, 1), interval=2, fit=fit, nested=True, chunk_s=1.0, lpips_net="none")
    res = encode_video("x", gen, tmp_path, opts, frames=_frames(3), fps=3.0, progress=False)
    assert res.ladder.metadata["nested_ranks"] is True
    assert (tmp_path / "checkpoints" / "rank1").is_dir() and (tmp_path / "checkpoints" / "rank2-nested1").is_dir()


def test_small_frames_are_upsampled_for_lpips():
    try:
        scorer = FrameScorer("alex", None)
    except InputError as exc:
        pytest.skip(f"LPIPS weights unavailable here: {exc}")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    small = scorer(a, b)
    assert scorer.name.endswith(f"(32x32 frames upsampled bilinearly to {LPIPS_MIN_SIDE}x{LPIPS_MIN_SIDE})")
    # a 2x nearest-neighbour enlargement of the same pairs is a different input; still close, not equal
    big = scorer(a.repeat(2, 1).repeat(2, 2), b.repeat(2, 1).repeat(2, 2))
    assert np.all(small > 0) and np.all(big > 0) and not np.allclose(small, big)
    assert np.allclose(scorer(a, a), 0.0, atol=1e-6)
    # 64x64 and larger frames go to LPIPS as they are
    assert np.allclose(big, scorer.model.distance_frames(a.repeat(2, 1).repeat(2, 2), b.repeat(2, 1).repeat(2, 2)))


def test_rank_dropout_encoder_makes_prompts_of_rank_at_most_r():
    """``train_tiny --rank-dropout R``: the training encoder's prompt keeps only the first r components."""
    from codec.promptus.train_tiny import _RankedPromptEncoder

    torch.manual_seed(0)
    enc = _RankedPromptEncoder(side=32, L=77, D=32, R=8)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for r in (1, 3, 8):
        c = enc(x, r)
        assert c.shape == (2, 77, 32)
        assert all(int(torch.linalg.matrix_rank(c[i])) == r for i in range(2))
    # the first r components are shared: rank r's prompt is rank r+1's minus one component
    d = enc(x, 4) - enc(x, 3)
    assert int(torch.linalg.matrix_rank(d[0])) == 1
