"""uint8 quantization with straight-through gradient, and keyframe prompt interpolation."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from codec.promptus.fit import svd_factors  # noqa: E402
from codec.promptus.prompt import Factors, interpolate_prompts  # noqa: E402
from codec.promptus.quant import QParams, dequantize, fake_quant, qparams, quantize  # noqa: E402


def test_round_trip_error_is_at_most_half_a_step():
    x = torch.randn(77, 8, generator=torch.Generator().manual_seed(0)) * 3 + 1
    q, qp = quantize(x)
    assert q.dtype == np.uint8 and q.shape == (77, 8)
    assert q.min() == 0 and q.max() == 255  # the range is spanned exactly
    err = (dequantize(q, qp) - x).abs().max().item()
    assert err <= qp.scale / 2 * (1 + 1e-5)
    assert qp.scale == pytest.approx((x.max() - x.min()).item() / 255, rel=1e-6)


def test_hand_computed_levels():
    x = torch.tensor([0.0, 1.0, 2.55, 0.5049])
    q, qp = quantize(x)
    assert qp == QParams(np.float32(0.01).item(), 0.0)
    assert q.tolist() == [0, 100, 255, 50]


def test_fake_quant_equals_what_the_decoder_reconstructs():
    x = torch.rand(16, 1024, generator=torch.Generator().manual_seed(1)) - 0.3
    q, qp = quantize(x)
    assert torch.equal(fake_quant(x), dequantize(q, qp))


def test_fake_quant_gradient_is_straight_through():
    x = torch.randn(5, 7, requires_grad=True)
    w = torch.randn(5, 7)
    (fake_quant(x) * w).sum().backward()
    assert torch.equal(x.grad, w)


def test_constant_tensor_does_not_divide_by_zero():
    x = torch.full((3, 3), 0.25)
    q, qp = quantize(x)
    assert torch.allclose(dequantize(q, qp), x)
    assert qparams(x).scale > 0


def _factors(seed: int, rank: int = 3) -> Factors:
    g = torch.Generator().manual_seed(seed)
    return Factors(torch.randn(6, rank, generator=g, dtype=torch.float64),
                   torch.randn(rank, 10, generator=g, dtype=torch.float64))


def test_interpolation_formula_by_hand():
    a, b = _factors(0), _factors(1)
    n = 4
    got = interpolate_prompts(a, b, n, [1, 2, 4])
    for i, s in enumerate([1, 2, 4]):
        w = s / n
        u = (1 - w) * a.u + w * b.u
        v = (1 - w) * a.v + w * b.v
        assert torch.allclose(got[i], u @ v / math.sqrt(3))
    assert torch.allclose(got[-1], b.prompt())  # s = N is the closing keyframe
    # the midpoint is not the average of the prompts: the product is quadratic in w
    mid = interpolate_prompts(a, b, 2, [1])[0]
    assert not torch.allclose(mid, (a.prompt() + b.prompt()) / 2)
    # frame 0: no opening keyframe, every step is the keyframe's prompt
    assert torch.allclose(interpolate_prompts(None, b, 3, [1, 2, 3]), b.prompt().expand(3, -1, -1))


def test_interpolation_across_ranks_keeps_both_ends_exact():
    a, b = _factors(0, rank=2), _factors(1, rank=5)
    got = interpolate_prompts(a, b, 4, [1, 4])
    assert torch.allclose(got[1], b.prompt())
    # the opening end (w -> 0): the aligned factors reproduce the rank-2 prompt
    near = interpolate_prompts(a, b, 10**6, [1])[0]
    assert torch.allclose(near, a.prompt(), atol=1e-4)


def test_svd_factors_are_exact_at_full_rank_and_optimal_when_truncated():
    f = _factors(2, rank=4)
    c = f.prompt()
    u, v = svd_factors(f, 4)
    assert torch.allclose(u.double() @ v.double() / 2.0, c, atol=1e-5)
    u2, v2 = svd_factors(f, 2)
    s = torch.linalg.svdvals(c)
    err = torch.linalg.norm(u2.double() @ v2.double() / math.sqrt(2) - c)
    assert err.item() == pytest.approx(torch.sqrt((s[2:] ** 2).sum()).item(), rel=1e-4)  # Eckart-Young
