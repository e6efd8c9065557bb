"""PromptMobile receivers: lossless caches reproduce Promptus, lossy reuse bookkeeping, two-stage shapes.

All on the tiny generator (same diffusers classes as SD-Turbo, random weights), fp32.
Stated bounds (fp32): the lossless receiver differs from ``promptus`` by at most 1e-5 in frames
([-1, 1]) and at most 1e-5 relative to the latent magnitude; the segment runner reproduces
diffusers' UNet forward to 1e-5 relative.
"""

from __future__ import annotations

import math

import pytest
import torch

from abr.errors import InputError
from codec.promptmobile.caching import DenseKV, FactorKV, ReusePlan, SegmentUNet, plan_reuse, prompt_distances
from codec.promptmobile.cost import count_macs, even_plan
from codec.promptmobile.receivers import segment_factors
from codec.promptmobile.upsampler import Upsampler, save_upsampler
from codec.promptus.prompt import Factors, interpolate_prompts
from codec.promptus.receiver import RECEIVERS, Segment, get_receiver
from codec.promptus.testing import tiny_generator

FRAME_TOL = 1e-5  # max |frame difference|, frames in [-1, 1]
REL_TOL = 1e-5  # max |difference| / max |reference| for latents and eps


@pytest.fixture(scope="module")
def gen():
    return tiny_generator(seed=0, sample_size=8, prompt_len=77)


@pytest.fixture(scope="module")
def ups_path(tmp_path_factory):
    return str(save_upsampler(Upsampler(), tmp_path_factory.mktemp("ups") / "u.pt").with_suffix(".pt"))


def _factors(seed: int, rank: int = 4, dim: int = 32) -> Factors:
    g = torch.Generator().manual_seed(seed)
    return Factors(torch.rand(77, rank, generator=g) * 2 - 1, torch.rand(rank, dim, generator=g) * 2 - 1)


def _z(shape, seed=5):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def test_registered_variants():
    import codec.promptmobile  # noqa: F401 - registers

    for name in ("promptmobile", "promptmobile-lowres", "promptmobile-lossless", "promptmobile-lossy"):
        assert name in RECEIVERS


def test_runner_reproduces_diffusers_unet(gen):
    f0, f1 = _factors(1), _factors(2)
    c = interpolate_prompts(f0, f1, 6, range(1, 7))
    z = _z((1, 4, 8, 8))
    with torch.no_grad():
        ref = gen.eps(z.expand(6, -1, -1, -1), c)
        out = SegmentUNet(gen.unet).eps(z, gen.config.timestep, DenseKV(c))
    assert _rel(out, ref) < REL_TOL


@pytest.mark.parametrize("ranks, prev", [((4, 4), True), ((4, 6), True), ((4, 4), False)])
def test_factor_kv_equals_projection_of_interpolated_prompt(gen, ranks, prev):
    f0, f1 = _factors(1, ranks[0]), _factors(2, ranks[1])
    seg = Segment(f0 if prev else None, f1, 7, _z((1, 4, 8, 8)), steps=(1, 3, 7))
    u0, v0, u1, v1, norm = segment_factors(seg)
    w = torch.tensor(seg.steps, dtype=torch.float32) / seg.length
    kv = FactorKV(u0, v0, u1, v1, norm, w)
    dense = DenseKV(seg.prompts())
    runner = SegmentUNet(gen.unet)
    with torch.no_grad():
        for m in gen.unet.modules():
            if type(m).__name__ == "BasicTransformerBlock":
                i = runner.cross_index[id(m.attn2)]
                for a, b in zip(kv(i, m.attn2), dense(i, m.attn2)):
                    assert a.shape == b.shape
                    assert _rel(a, b) < REL_TOL


def test_factor_kv_macs_match_hand_count(gen):
    """K/V of B frames: dense L*D*inner*2*B MACs; cached 2*2*r*D*inner per keyframe pair + 2*B*L*r*inner."""
    r, B, L, D = 4, 10, 77, 32
    f0, f1 = _factors(1, r), _factors(2, r)
    w = torch.arange(1, B + 1) / B
    attn = next(m.attn2 for m in gen.unet.modules() if type(m).__name__ == "BasicTransformerBlock")
    inner = attn.to_k.out_features
    c = interpolate_prompts(f0, f1, B, range(1, B + 1))
    dense = count_macs(lambda: DenseKV(c)(0, attn)).total
    cached = count_macs(lambda: FactorKV(f0.u, f0.v, f1.u, f1.v, 0.5, w)(0, attn)).total
    assert dense == 2 * B * L * D * inner
    assert cached == 2 * 2 * r * D * inner + 2 * B * L * r * inner


@pytest.mark.parametrize("prev", [True, False])
def test_lossless_receiver_equals_promptus(gen, prev):
    seg = Segment(_factors(1) if prev else None, _factors(2), 10 if prev else 1, _z((1, 4, 8, 8)))
    with torch.no_grad():
        fb, lb = get_receiver("promptus", gen)(seg)
        fc, lc = get_receiver("promptmobile-lossless", gen)(seg)
    assert fc.shape == fb.shape and lc.shape == lb.shape
    assert float((fc - fb).abs().max()) <= FRAME_TOL
    assert _rel(lc, lb) <= REL_TOL


def test_lossless_receiver_equals_promptus_across_rank_switch(gen):
    seg = Segment(_factors(1, 4), _factors(2, 8), 5, _z((1, 4, 8, 8)), steps=(2, 5))
    with torch.no_grad():
        fb, lb = get_receiver("promptus", gen)(seg)
        fc, lc = get_receiver("promptmobile-lossless", gen)(seg)
    assert float((fc - fb).abs().max()) <= FRAME_TOL
    assert _rel(lc, lb) <= REL_TOL


def test_reuse_with_identical_prompts_is_exact(gen):
    """A frame that reuses the deep features of a frame with the same prompt must get the same eps."""
    f = _factors(3)
    c = f.prompt().unsqueeze(0).expand(4, -1, -1)
    z = _z((1, 4, 8, 8))
    runner = SegmentUNet(gen.unet)
    with torch.no_grad():
        full = runner.eps(z, gen.config.timestep, DenseKV(c))
        reused = runner.eps(z, gen.config.timestep, DenseKV(c), ReusePlan((1, 1, 1, 1), depth=1))
    assert _rel(reused, full) < REL_TOL


def test_reuse_changes_only_reusing_frames(gen):
    seg = Segment(_factors(1), _factors(2), 4, _z((1, 4, 8, 8)))
    rec = get_receiver("promptmobile-lossy", gen)
    with torch.no_grad():
        base = get_receiver("promptmobile-lossless", gen).latents(seg)
        lossy = rec.latents(seg, plan=ReusePlan((1, 1, 3, 3)))
    diff = (lossy - base).abs().amax(dim=(1, 2, 3)) / base.abs().max()
    assert float(diff[1]) < REL_TOL and float(diff[3]) < REL_TOL  # reference frames are exact
    assert float(diff[0]) > 1e-4 and float(diff[2]) > 1e-4  # reusing frames differ (different prompts)


def test_threshold_zero_is_lossless(gen):
    seg = Segment(_factors(1), _factors(2), 5, _z((1, 4, 8, 8)))
    with torch.no_grad():
        a = get_receiver("promptmobile-lossy:threshold=0", gen)(seg).latents
        b = get_receiver("promptmobile-lossless", gen)(seg).latents
    assert torch.equal(a, b)


def _scaled_prompts(n: int, step: float) -> torch.Tensor:
    """c_i = (1 + i step) c_0, so d[i, j] = |i - j| step / (1 + j step)."""
    base = _factors(9).prompt()
    return torch.stack([(1 + i * step) * base for i in range(n)])


def test_prompt_distances_hand_case():
    d = prompt_distances(_scaled_prompts(4, 0.1))
    assert float(d[0, 2]) == pytest.approx(0.2 / 1.2, rel=1e-6)  # prompts are float32
    assert float(d[3, 1]) == pytest.approx(0.2 / 1.1, rel=1e-6)
    assert float(d[2, 2]) == 0.0


def test_plan_reuse_threshold_mode_hand_case():
    # d[i, j] = |i - j| * 0.1 / (1 + 0.1 j). threshold 0.15: from frame 0 the latest reference with
    # all of 0..j within 0.15 of j is j = 1 (d[0,1] = 0.0909; j = 2 fails: d[0,2] = 0.1667);
    # frame 2 is 0.0909 from 1 -> reuses 1; frame 3 is 0.1818 from 1 -> new group from 3:
    # j = 5 (d[3,5] = 0.1333, d[4,5] = 0.0667), the last frame.
    plan = plan_reuse(_scaled_prompts(6, 0.1), threshold=0.15)
    assert plan.source == (1, 1, 1, 5, 5, 5)
    assert plan_reuse(_scaled_prompts(6, 0.1), threshold=0.0).source == tuple(range(6))
    assert plan_reuse(_scaled_prompts(6, 0.1), threshold=10.0).source == (5,) * 6


def _brute_force_best(d, n, k):
    import itertools

    best = math.inf
    for cuts in itertools.combinations(range(1, n), k - 1):
        bounds = (0, *cuts, n)
        worst = max(min(max(d[f, r] for f in range(lo, hi)) for r in range(lo, hi))
                    for lo, hi in zip(bounds[:-1], bounds[1:]))
        best = min(best, worst)
    return best


@pytest.mark.parametrize("full_every", [1, 2, 3, 4])
def test_plan_reuse_budget_mode_is_optimal(full_every):
    f0, f1 = _factors(11), _factors(12)
    c = interpolate_prompts(f0, f1, 8, range(1, 9))
    d = prompt_distances(c).numpy()
    plan = plan_reuse(c, threshold=100.0, full_every=full_every)
    k = -(-8 // full_every)
    assert len(plan.full) == k
    achieved = max(d[i, j] for i, j in enumerate(plan.source))
    assert achieved == pytest.approx(_brute_force_best(d, 8, k), rel=1e-12)
    # a threshold below the achieved distance promotes the farthest frames to full frames
    tight = plan_reuse(c, threshold=achieved * 0.99, full_every=full_every)
    if k < 8:
        assert len(tight.full) > k
        assert all(d[i, j] <= achieved * 0.99 for i, j in enumerate(tight.source))


def test_even_plan_and_plan_validation():
    assert even_plan(10, 2).source == (2,) * 5 + (7,) * 5
    assert even_plan(5, 5).source == tuple(range(5))
    with pytest.raises(ValueError):
        ReusePlan((1, 0))  # frame 1 is not a full frame


def test_lowres_receiver_shapes_and_gradients(gen, ups_path):
    rec = get_receiver("promptmobile:threshold=100", gen, upsampler=ups_path)
    assert rec.latent_shape(1) == (1, 4, 4, 4)
    frame0 = torch.rand(1, 3, 64, 64) * 2 - 1
    assert tuple(rec.initial_latent(frame0).shape) == (1, 4, 4, 4)
    u = _factors(2).u.clone().requires_grad_(True)
    seg = Segment(_factors(1), Factors(u, _factors(2).v), 5, _z((1, 4, 4, 4)))
    frames, latents = rec(seg, clamp=False)
    assert frames.shape == (5, 3, 64, 64) and latents.shape == (5, 4, 4, 4)
    assert rec.last_plan is not None and len(rec.last_plan.full) == 1  # ceil(5 / 5) references
    frames.square().mean().backward()
    assert u.grad is not None and float(u.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="start latent"):
        rec(Segment(None, _factors(1), 1, _z((1, 4, 8, 8))))


def test_bad_options_are_input_errors(gen):
    with pytest.raises(InputError):
        get_receiver("promptmobile-lossless:colour=blue", gen)
    with pytest.raises(ValueError):
        get_receiver("promptmobile-lossy:threshold=-1", gen)
    with pytest.raises(InputError, match="upsampler"):
        get_receiver("promptmobile-lowres", gen, upsampler="/nonexistent/u.pt")


def test_system_bf16_runs_close_to_fp32(ups_path):
    from codec.promptmobile.system import SystemConfig, optimize

    g32 = tiny_generator(seed=0, sample_size=8)
    g16 = tiny_generator(seed=0, sample_size=8)
    seg = Segment(_factors(1), _factors(2), 3, _z((1, 4, 8, 8)))
    with torch.no_grad():
        ref = get_receiver("promptmobile-lossless", g32)(seg).frames
        optimize(g16, config=SystemConfig(dtype="bfloat16", channels_last=True))
        out = get_receiver("promptmobile-lossless", g16)(seg).frames
    assert out.dtype == torch.bfloat16
    assert float((out.float() - ref).abs().max()) < 0.1


def test_fit_through_promptmobile_reduces_loss(gen, ups_path):
    from codec.promptus.fit import FitConfig, LossConfig, PromptLoss, fit_segment

    rec = get_receiver("promptmobile", gen, upsampler=ups_path)
    target = torch.rand(2, 3, 64, 64) * 2 - 1
    cfg = FitConfig(rank=4, loss=LossConfig(perceptual=0.0))
    init = (torch.rand(77, 4), torch.rand(4, 32))
    loss_fn = PromptLoss(cfg.loss)
    z = _z((1, 4, 4, 4))
    _, first, _ = fit_segment(rec, target, _factors(1), z, cfg, init=init, iters=1, patience=20, loss_fn=loss_fn)
    _, best, _ = fit_segment(rec, target, _factors(1), z, cfg, init=init, iters=6, patience=20, loss_fn=loss_fn)
    assert best < first
