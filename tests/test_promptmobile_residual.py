"""The residual stream: hand-computed round trips, the error bound, bytes and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from codec.promptmobile.residual import (
    HEADER_BYTES,
    ResidualConfig,
    ResidualRecord,
    apply_residual,
    decode_residual,
    encode_residual,
)


def _frames(seed: int, shape=(2, 8, 8, 3), lo=60, hi=190) -> np.ndarray:
    return np.random.default_rng(seed).integers(lo, hi, size=shape).astype(np.uint8)


def test_constant_residual_is_exact_at_any_scale():
    """source = decoded + 24 everywhere, step 8: q = 3 in every cell, and 3 x 8 upsamples back to 24 exactly."""
    dec = _frames(0)
    src = (dec.astype(int) + 24).astype(np.uint8)
    for scale in (1, 2, 4, 8):
        rec = encode_residual(src, dec, ResidualConfig(scale=scale, step=8.0))
        assert rec.q_shape == (2, 3, 8 // scale, 8 // scale)
        assert np.array_equal(decode_residual(rec), np.full((2, 8, 8, 3), 24.0, np.float32))
        assert np.array_equal(apply_residual(dec, rec), src)


def test_block_means_are_what_is_sent():
    """scale 2: a 2x2 block sends round(mean / step); residuals (1, 3, 5, 7) have mean 4: q = 1 at step 4."""
    dec = np.full((1, 2, 2, 3), 100, np.uint8)
    src = dec.copy()
    src[0, :, :, 0] = [[101, 103], [105, 107]]
    rec = encode_residual(src, dec, ResidualConfig(scale=2, step=4.0))
    r = decode_residual(rec)
    assert r.shape == (1, 2, 2, 3)
    assert np.allclose(r[..., 0], 4.0) and np.allclose(r[..., 1:], 0.0)
    assert np.array_equal(apply_residual(dec, rec)[..., 0], np.full((1, 2, 2), 104, np.uint8))


def test_full_resolution_error_is_at_most_half_a_step():
    dec, src = _frames(1), _frames(2)
    for step in (1.0, 3.0, 10.0):
        out = apply_residual(dec, encode_residual(src, dec, ResidualConfig(scale=1, step=step)))
        # |r - step round(r / step)| <= step / 2, then rounding to uint8 adds at most 0.5
        assert np.abs(out.astype(int) - src.astype(int)).max() <= step / 2 + 0.5
    exact = apply_residual(dec, encode_residual(src, dec, ResidualConfig(scale=1, step=1.0)))
    assert np.array_equal(exact, src)


def test_large_residuals_clip_at_127_steps():
    dec = np.zeros((1, 4, 4, 3), np.uint8)
    src = np.full((1, 4, 4, 3), 255, np.uint8)
    rec = encode_residual(src, dec, ResidualConfig(scale=1, step=1.0))
    assert np.array_equal(apply_residual(dec, rec), np.full_like(src, 127))


def test_bytes_grow_with_precision_and_count_the_header():
    dec, src = _frames(3, (4, 16, 16, 3)), _frames(4, (4, 16, 16, 3))
    coarse = encode_residual(src, dec, ResidualConfig(scale=4, step=16.0))
    fine = encode_residual(src, dec, ResidualConfig(scale=1, step=2.0))
    assert coarse.nbytes == HEADER_BYTES + len(coarse.payload)
    assert coarse.nbytes < fine.nbytes
    assert fine.nbytes <= HEADER_BYTES + 4 * 3 * 16 * 16 + 16  # never much worse than raw int8


@pytest.mark.parametrize("kwargs", [{"scale": 0}, {"scale": 2.5}, {"step": 0.0}, {"step": float("nan")}])
def test_bad_config(kwargs):
    with pytest.raises(ValueError):
        ResidualConfig(**kwargs)


def test_bad_frames():
    a = _frames(5)
    with pytest.raises(ValueError, match="uint8"):
        encode_residual(a.astype(np.float32), a)
    with pytest.raises(ValueError, match="differ"):
        encode_residual(a, a[:1])
    with pytest.raises(ValueError, match="multiple"):
        encode_residual(a, a, ResidualConfig(scale=3))
    rec = encode_residual(a, a)
    assert isinstance(rec, ResidualRecord)
    with pytest.raises(ValueError, match="match"):
        apply_residual(a[:1], rec)
