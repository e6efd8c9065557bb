"""The prompt quantizers and low-rank prompts pinned by hand-computed cases.

Sources: SPEC section 1 (per-tensor asymmetric uint8, ``scale = (max - min) / 255``, payload
``(77 + 1024) r + 16`` bytes), ``PROMPTUS_OFFICIAL.md`` section 3 (the official running
quantizer: a range that only grows, max clamped to >= 0 and min to <= 0, ``zp = round(clamp(255
- max / scale))``, ``q = round(clamp(zp + x / scale))``, value ``scale (q - zp)``, identity
gradient) and section 6 (``u = (1 - s/N) U_a + (s/N) U_b``, same for v, ``c = u v / sqrt(r)``).
Every expected number below is worked out by hand from those formulas, in the comments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from codec.promptus.prompt import Factors, aligned_factors, interpolate_prompts  # noqa: E402
from codec.promptus.quant import (  # noqa: E402
    QParams,
    QuantFactors,
    RunningQuant,
    dequantize,
    fake_quant,
    qparams,
    quantize,
)

F32_001 = float(np.float32(0.01))  # 2.55 / 255 as the wire holds it


# -- the official running quantizer (PROMPTUS_OFFICIAL.md section 3) ------------------------------


def test_running_quant_all_positive_tensor_keeps_min_at_zero():
    # U starts in [0, 1): min clamps to 0, so zp = 0. Range [0, 2.55]: scale 0.01,
    # codes 0.2 / 0.01 = 20, 100, 255, and the values come back exactly.
    rq = RunningQuant()
    y, q, qp = rq.fake_quant(torch.tensor([0.2, 1.0, 2.55]))
    assert qp == QParams(F32_001, 0.0)
    assert q.dtype == np.uint8 and q.tolist() == [20, 100, 255]
    assert torch.allclose(y, torch.tensor([0.2, 1.0, 2.55]), atol=1e-6)
    assert (rq.lo, rq.hi) == (0.0, pytest.approx(2.55))


def test_running_quant_all_negative_tensor_keeps_max_at_zero():
    # max clamps to 0: range [-2.55, 0], scale 0.01, zp = 255 - 0 / 0.01 = 255;
    # codes 255 - 255 = 0 and 255 - 100 = 155.
    y, q, qp = RunningQuant().fake_quant(torch.tensor([-2.55, -1.0]))
    assert qp == QParams(F32_001, 255.0)
    assert q.tolist() == [0, 155]
    assert torch.allclose(y, torch.tensor([-2.55, -1.0]), atol=1e-6)


def test_running_quant_range_only_grows_and_zero_point_is_rounded():
    rq = RunningQuant()
    rq.fake_quant(torch.tensor([0.2, 1.0, 2.55]))
    # now [-1, 0.5]: range [-1, 2.55], scale 3.55 / 255 = 0.0139216, 2.55 / scale = 183.169,
    # zp = round(255 - 183.169) = round(71.83) = 72; codes round(72 - 71.83) = 0 and
    # round(72 + 35.92) = 108; values scale * (0 - 72) = -1.0024 and scale * 36 = 0.50118.
    y, q, qp = rq.fake_quant(torch.tensor([-1.0, 0.5]))
    assert qp.scale == pytest.approx(3.55 / 255, rel=1e-6)
    assert qp.zero_point == 72.0
    assert q.tolist() == [0, 108]
    assert torch.allclose(y, torch.tensor([-72 * 3.55 / 255, 36 * 3.55 / 255]), atol=1e-6)
    # a narrower tensor later does not shrink the range: same parameters
    y2, q2, qp2 = rq.fake_quant(torch.tensor([0.1, 0.2]))
    assert qp2 == qp
    # codes round(72 + 0.1 / 0.0139216) = round(79.18) = 79 and round(86.37) = 86
    assert q2.tolist() == [79, 86]
    # a new keyframe starts from a fresh range
    assert RunningQuant().fake_quant(torch.tensor([0.1, 0.2]))[2].zero_point == 0.0


def test_running_quant_clamps_a_half_step_past_the_top_code():
    # range [-h, h] with h = 127.5 / 256: scale = (255 / 256) / 255 = 1 / 256 exactly and
    # zp = round(255 - 127.5) = 128 (numpy rounds half to even); the top value lands on
    # 128 + 127.5 = 255.5, which must clamp to code 255 before rounding (round(255.5) = 256 would
    # wrap to uint8 0); the bottom one on 0.5, which rounds to 0
    h = 127.5 / 256
    y, q, qp = RunningQuant().fake_quant(torch.tensor([-h, h]))
    assert qp == QParams(1 / 256, 128.0)
    assert q.tolist() == [0, 255]
    assert y.tolist() == [-128 / 256, 127 / 256]


def test_running_quant_of_zeros_is_zero_not_a_division_by_zero():
    y, q, qp = RunningQuant().fake_quant(torch.zeros(3))
    assert qp.scale > 0 and math.isfinite(qp.zero_point)
    assert torch.equal(y, torch.zeros(3))


def test_running_quant_gradient_is_the_identity_and_codes_decode_to_the_value():
    x = torch.tensor([[0.3, -0.7], [1.9, 0.05]], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    y, q, qp = RunningQuant().fake_quant(x)
    (y * w).sum().backward()
    assert torch.equal(x.grad, w)
    assert y.dtype == torch.float64 and q.shape == (2, 2)
    # the decoder's dequantize of the codes is the value the fit used
    assert torch.allclose(dequantize(q, qp).double(), y.detach(), atol=1e-6)
    assert np.abs(y.detach().numpy() - x.detach().numpy()).max() <= qp.scale / 2 + 1e-6


# -- our range-spanning quantizer (SPEC section 1) -----------------------------------------------


def test_range_spanning_params_with_a_negative_minimum():
    # [-1, 1.55]: scale 2.55 / 255 = 0.01, zp = -min / scale = 100; 0 -> code 100 -> exactly 0
    x = torch.tensor([-1.0, 0.0, 0.5, 1.55])
    q, qp = quantize(x)
    assert qp == QParams(F32_001, 100.0)
    assert q.tolist() == [0, 100, 150, 255]
    assert dequantize(q, qp).tolist()[1] == 0.0
    assert qparams(x) == qp
    # given parameters are used as they are: codes of x under scale 0.02, zp 0
    q2, qp2 = quantize(torch.tensor([-1.0, 0.0, 0.5, 9.0]), QParams(0.02, 0.0))
    assert qp2 == QParams(0.02, 0.0)
    assert q2.tolist() == [0, 0, 25, 255]  # -1 / 0.02 = -50 clamps to 0, 9 / 0.02 = 450 to 255


def test_qparams_are_float32_and_validated():
    qp = QParams(0.1, 1.3)
    assert qp.scale == float(np.float32(0.1)) and qp.zero_point == float(np.float32(1.3))
    for scale, zp in [(0.0, 0.0), (-0.01, 0.0), (math.nan, 0.0), (math.inf, 0.0), (0.01, math.nan), (0.01, math.inf)]:
        with pytest.raises(ValueError, match="invalid quantization parameters"):
            QParams(scale, zp)


def test_dequantize_accepts_numpy_or_torch_codes_and_returns_float32():
    qp = QParams(0.5, 2.0)  # (q - 2) * 0.5
    want = [-1.0, 0.0, 126.5]
    for codes in (np.array([0, 2, 255], dtype=np.uint8), torch.tensor([0, 2, 255], dtype=torch.uint8)):
        got = dequantize(codes, qp)
        assert got.dtype == torch.float32 and got.tolist() == want


def test_dequantize_puts_the_values_on_the_requested_device():
    # "meta" stands in for an accelerator: the values must end up there, codes given as numpy or
    # as a tensor already on that device
    qp = QParams(0.5, 2.0)
    assert dequantize(np.array([0, 2], dtype=np.uint8), qp, device="meta").device.type == "meta"
    on = dequantize(torch.tensor([0, 2], dtype=torch.uint8, device="meta"), qp, device="meta")
    assert on.device.type == "meta" and on.dtype == torch.float32
    qf = QuantFactors.from_factors(torch.randn(3, 2), torch.randn(2, 4))
    f = qf.factors("meta")
    assert f.u.device.type == "meta" and f.v.device.type == "meta"


def test_both_fake_quants_keep_a_half_precision_dtype():
    # the fit may run the factors in bf16: the straight-through value keeps that dtype
    x = torch.tensor([0.3, -0.2, 1.0], dtype=torch.bfloat16)
    assert fake_quant(x).dtype == torch.bfloat16
    assert RunningQuant().fake_quant(x)[0].dtype == torch.bfloat16


def test_fake_quant_keeps_the_dtype_and_equals_the_hand_computed_levels():
    x = torch.tensor([-1.0, 0.0, 0.504, 1.55], dtype=torch.float64)
    y = fake_quant(x)
    assert y.dtype == torch.float64
    # codes 0, 100, 150 (0.504 / 0.01 + 100 = 150.4), 255 -> values -1, 0, 0.5, 1.55
    assert torch.allclose(y, torch.tensor([-1.0, 0.0, 0.5, 1.55], dtype=torch.float64), atol=1e-6)


def test_quant_factors_round_trip_and_payload_size():
    g = torch.Generator().manual_seed(3)
    u, v = torch.randn(77, 4, generator=g), torch.randn(4, 1024, generator=g)
    qf = QuantFactors.from_factors(u, v)
    assert qf.rank == 4
    assert qf.u.dtype == np.uint8 and qf.u.shape == (77, 4) and qf.v.shape == (4, 1024)
    assert qf.u.nbytes + qf.v.nbytes + 4 * 4 == (77 + 1024) * 4 + 16  # SPEC's payload per keyframe
    f = qf.factors()
    assert isinstance(f, Factors) and f.rank == 4
    assert (f.u - u).abs().max().item() <= qf.u_q.scale / 2 * (1 + 1e-5)
    assert (f.v - v).abs().max().item() <= qf.v_q.scale / 2 * (1 + 1e-5)
    assert qf.u_q == qparams(u) and qf.v_q == qparams(v)


# -- low-rank prompts and their interpolation (SPEC section 1, PROMPTUS_OFFICIAL.md section 6) ----


def _t(rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_factors_shapes_are_checked_and_rank_is_the_inner_dimension():
    f = Factors(_t([[1.0, 2.0]]), _t([[3.0], [4.0]]))  # L = 1, r = 2, D = 1
    assert f.rank == 2
    assert f.prompt().item() == pytest.approx(11 / math.sqrt(2))  # (1*3 + 2*4) / sqrt(2)
    for u, v in [
        (_t([1.0, 2.0]), _t([[3.0], [4.0]])),
        (_t([[1.0, 2.0]]), _t([3.0, 4.0])),
        (_t([[1.0, 2.0]]), _t([[3.0], [4.0], [5.0]])),
    ]:
        with pytest.raises(ValueError, match="factors must be"):
            Factors(u, v)


def test_factors_detach_and_to():
    f = Factors(_t([[1.0]]).requires_grad_(True), _t([[2.0]]))
    assert not f.detach().u.requires_grad and f.detach().v.item() == 2.0
    g = f.detach().to(torch.float32)
    assert g.u.dtype == torch.float32 and g.v.dtype == torch.float32 and g.v.item() == 2.0
    h = f.detach().to(dtype=torch.float16)  # keyword arguments reach both factors
    assert h.u.dtype == torch.float16 and h.v.dtype == torch.float16


def test_aligned_factors_scale_by_r_to_the_minus_quarter_and_zero_pad():
    a = Factors(_t([[2.0]]), _t([[8.0]]))  # rank 1: scale 1
    u, v = aligned_factors(a, 3)
    assert u.tolist() == [[2.0, 0.0, 0.0]] and v.tolist() == [[8.0], [0.0], [0.0]]
    b = Factors(torch.ones(1, 4, dtype=torch.float64), torch.ones(4, 1, dtype=torch.float64))
    u, v = aligned_factors(b, 4)  # rank 4: 4 ** -0.25 = 1 / sqrt(2), no padding
    assert u.shape == (1, 4) and v.shape == (4, 1)
    assert torch.allclose(u, torch.full((1, 4), 2**-0.5, dtype=torch.float64))
    assert (u @ v).item() == pytest.approx(b.prompt().item())  # = 4 / sqrt(4) = 2


def test_interpolation_within_one_rank_by_hand():
    # r = 1: U 1 -> 3, V 2 -> 4, N = 2, s = 1: u = 2, v = 3, c = 6
    a, b = Factors(_t([[1.0]]), _t([[2.0]])), Factors(_t([[3.0]]), _t([[4.0]]))
    assert interpolate_prompts(a, b, 2, [1]).tolist() == [[[6.0]]]
    # s = 1 of N = 4: u = 1.5, v = 2.5, c = 3.75; s = 3: u = 2.5, v = 3.5, c = 8.75
    assert interpolate_prompts(a, b, 4, torch.tensor([1, 3])).flatten().tolist() == [3.75, 8.75]
    # r = 2: u = v = (1/2, 1/2) halfway between two unit vectors, c = (1/4 + 1/4) / sqrt(2)
    a2 = Factors(_t([[1.0, 0.0]]), _t([[1.0], [0.0]]))
    b2 = Factors(_t([[0.0, 1.0]]), _t([[0.0], [1.0]]))
    assert interpolate_prompts(a2, b2, 2, [1]).item() == pytest.approx(0.5 / math.sqrt(2))


def test_interpolation_across_ranks_by_hand():
    # a: rank 1, U = V = 1 (prompt 1); b: rank 4, U = V = ones (prompt 4 / 2 = 2).
    # aligned: a -> (1, 0, 0, 0), b -> 4 ** -0.25 = 0.7071 each; at s / N = 1/2 both u and v are
    # (0.5 + 0.35355, 0.35355, 0.35355, 0.35355): c = 0.85355^2 + 3 * 0.125 = 1.10355
    a = Factors(_t([[1.0]]), _t([[1.0]]))
    b = Factors(torch.ones(1, 4, dtype=torch.float64), torch.ones(4, 1, dtype=torch.float64))
    want = (0.5 + math.sqrt(2) / 4) ** 2 + 3 / 8
    got = interpolate_prompts(a, b, 2, [1, 2])
    assert got[0].item() == pytest.approx(want) and got[1].item() == pytest.approx(2.0)
    # the other way round (a rank switch down) is symmetric at the midpoint and exact at s = N
    back = interpolate_prompts(b, a, 2, [1, 2])
    assert back[0].item() == pytest.approx(want) and back[1].item() == pytest.approx(1.0)


def test_interpolation_dtype_follows_the_closing_keyframe():
    a = Factors(torch.ones(1, 2), torch.ones(2, 1))  # float32 opening keyframe
    b = Factors(_t([[1.0, 1.0]]), _t([[3.0], [3.0]]))
    got = interpolate_prompts(a, b, 2, [1])
    # u = (1, 1), v = (2, 2): c = 4 / sqrt(2)
    assert got.dtype == torch.float64 and got.item() == pytest.approx(4 / math.sqrt(2))
    # and a float64 opening keyframe into a float32 closing one gives float32
    assert interpolate_prompts(b, a, 2, [1]).dtype == torch.float32
    first = interpolate_prompts(None, b, 5, [1, 2, 5])  # frame 0: the keyframe's own prompt
    assert first.shape == (3, 1, 1) and first.flatten().tolist() == pytest.approx([6 / math.sqrt(2)] * 3)


def test_interpolation_weights_have_the_factors_precision_and_device():
    # r = 1, U and V from 0 to 3, N = 3, s = 1: w = 1/3, u = v = 1, c = 1 exactly in float64
    # (a float32 w = 0.33333334 would give 1.00000006)
    a = Factors(_t([[0.0]]), _t([[0.0]]))
    b = Factors(_t([[3.0]]), _t([[3.0]]))
    assert interpolate_prompts(a, b, 3, [1]).item() == 1.0
    # factors on another device ("meta" stands in for an accelerator): the weights follow them
    m = Factors(torch.ones(2, 3, device="meta"), torch.ones(3, 4, device="meta"))
    got = interpolate_prompts(m, m, 4, [1, 2])
    assert got.device.type == "meta" and got.shape == (2, 2, 4)
