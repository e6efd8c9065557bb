"""Cost model and device profiles: MAC counts checked against an independent count, profile data sourced."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from codec.promptmobile.cost import count_macs, default_plan, even_plan, meta_generator, variant_cost
from codec.promptmobile.estimates import component_macs, scaled_entries
from codec.promptus.receiver import get_receiver
from sim.device import get_device

ROOT = Path(__file__).resolve().parents[1]


def _hook_macs(unet: torch.nn.Module, run) -> int:
    """MACs from module shapes alone: Conv2d/Linear from weights and output sizes, attention from Lq x Lk x inner."""
    total = 0

    def conv_lin(mod, args, out):
        nonlocal total
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.weight.shape[1] * mod.weight.shape[2] * mod.weight.shape[3]
            total += out.numel() * k
        else:
            total += out.numel() * mod.in_features

    def attn(mod, args, kwargs, out):
        nonlocal total
        x = args[0] if args else kwargs["hidden_states"]
        ctx = kwargs.get("encoder_hidden_states")
        lk = x.shape[1] if ctx is None else ctx.shape[1]
        total += 2 * x.shape[0] * x.shape[1] * lk * mod.inner_dim

    handles = []
    for m in unet.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            handles.append(m.register_forward_hook(conv_lin))
        if type(m).__name__ == "Attention":
            handles.append(m.register_forward_hook(attn, with_kwargs=True))
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return total


@pytest.fixture(scope="module")
def meta():
    return meta_generator()


def test_flop_counter_matches_shape_count_on_sd_turbo(meta):
    """The counter's UNet MACs at 64x64 and 32x32 equal an independent count from layer shapes."""
    for side in (64, 32):
        x = torch.zeros(2, 4, side, side, device="meta")
        c = torch.zeros(2, 77, 1024, device="meta")
        counted = count_macs(lambda x=x, c=c: meta.eps(x, c)).total
        by_shape = _hook_macs(meta.unet, lambda x=x, c=c: meta.eps(x, c))
        assert counted == by_shape


def test_cpu_attention_kernel_is_counted():
    q = torch.zeros(1, 2, 16, 8)
    assert count_macs(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q)).total == 2 * 2 * 16 * 16 * 8


def test_variant_costs_order_and_target(meta):
    def cost(spec):
        return variant_cost(spec, meta, n_frames=10, plan=default_plan(get_receiver(spec, meta), 10))

    promptus, lossless = cost("promptus"), cost("promptmobile-lossless")
    lowres, fast = cost("promptmobile-lowres"), cost("promptmobile")
    assert promptus.decode.total == lossless.decode.total  # caches touch only the UNet
    assert lossless.unet.total < promptus.unet.total
    assert lowres.total_per_frame < promptus.total_per_frame / 4  # convolutions 4x, self-attention 16x fewer
    assert fast.upsampler_per_frame > 0 and fast.total_per_frame < lowres.total_per_frame
    assert promptus.total_per_frame / fast.total_per_frame >= 8.0  # the target


def test_reuse_cost_is_linear_in_full_frames(meta):
    costs = [variant_cost("promptmobile", meta, n_frames=10, plan=even_plan(10, k)).unet.total for k in (1, 2, 4)]
    assert (costs[1] - costs[0]) * 2 == costs[2] - costs[1]


def test_threshold_only_reuse_has_no_default_plan(meta):
    with pytest.raises(ValueError, match="explicit"):
        default_plan(get_receiver("promptmobile:full_every=0", meta), 10)


def test_cpu_profile_has_a_source_for_every_number():
    path = ROOT / "sim" / "data" / "devices" / "cpu-local.json"
    if not path.is_file():
        pytest.skip("run python bench/device_profile.py")
    prof = get_device("cpu-local")
    for name in ("promptus", "promptmobile", "h264", "h265"):
        assert name in prof.decode_ms_per_frame
    for name in prof.decode_ms_per_frame:
        assert "bench/device_profile.py" in prof.sources[name]
    assert prof.ms_per_frame("promptmobile") < prof.ms_per_frame("promptus")


def test_builtin_promptmobile_entries_are_what_the_script_computes(meta):
    doc = json.loads((ROOT / "sim" / "data" / "devices.json").read_text())
    expected = scaled_entries(component_macs(meta))
    for device, rows in expected.items():
        prof = doc["devices"][device]
        for variant, (ms, src) in rows.items():
            assert prof["decode_ms_per_frame"][variant] == pytest.approx(ms, abs=0.011)
            assert prof["sources"][variant] == src and "scaled estimate" in src and "MAC ratio" in src
        assert prof["decode_ms_per_frame"]["promptmobile"] < prof["decode_ms_per_frame"]["promptus"]


def test_mac_split_hand_case():
    """Promptus 100, two-stage 25, + lossless 24, + lossy 20 MACs: 4x, 4% lossless, 20% caching, 5x in all."""
    from codec.promptmobile.cost import PAPER, MacSplit

    s = MacSplit(promptus=100.0, two_stage=25.0, lossless=24.0, full=20.0)
    assert s.two_stage_ratio == pytest.approx(4.0)
    assert s.lossless_reduction == pytest.approx(0.04)
    assert s.lossy_reduction == pytest.approx(1 - 20 / 24)
    assert s.caching_reduction == pytest.approx(0.20)
    assert s.total_ratio == pytest.approx(5.0)
    r = s.report()
    assert r["total_ratio_with_paper_caching"] == pytest.approx(4.0 / (1 - 0.166), abs=0.01)
    # the paper's two figures multiply to 8.1 / 0.834 = 9.71x
    assert r["paper_total_ratio_from_its_two_figures"] == pytest.approx(9.71, abs=0.005)
    assert r["paper_two_stage_ratio"] == PAPER["two_stage_ratio"] == 8.1
    assert r["share_of_log_ratio_from_two_stage"] == pytest.approx(math.log(4) / math.log(5), abs=1e-3)
    with pytest.raises(ValueError, match="full"):
        MacSplit(100.0, 25.0, 24.0, float("nan"))


def test_mac_split_of_a_real_receiver_multiplies_out(tmp_path):
    """On the tiny generator: each stage removes compute, and the total is the product of the two contributions."""
    from codec.promptmobile.cost import mac_split
    from codec.promptmobile.upsampler import Upsampler, UpsamplerConfig, save_upsampler
    from codec.promptus.testing import tiny_generator

    gen = tiny_generator(seed=0, sample_size=8, prompt_len=77)
    ups = tmp_path / "u.pt"
    # a small upsampler: the default one (32 channels) costs more than this tiny UNet saves
    save_upsampler(Upsampler(UpsamplerConfig(width=4, body_layers=0)), ups)
    s = mac_split(gen, n_frames=4, rank=4, upsampler=str(ups))
    assert s.promptus > s.two_stage > s.lossless > s.full
    assert s.total_ratio == pytest.approx(s.two_stage_ratio / (1 - s.caching_reduction), rel=1e-9)
    # the two-stage ratio is the lowres receiver's own count
    low = variant_cost("promptmobile-lowres", gen, n_frames=4, rank=4, upsampler=str(ups)).total_per_frame
    assert s.two_stage == low


def test_both_scalings_hand_case():
    """Half the UNet and decoder MACs, GPU ratio 1.25: 8 Gen 3 (68.3 + 22.75 ms) -> 45.5 / 72.8 ms."""
    from codec.promptmobile.estimates import MOBILE, both_scalings

    p = {"unet": 100.0, "decode": 20.0, "upsampler": 0.0}
    macs = {"promptus": p, **{v: {"unet": 50.0, "decode": 10.0, "upsampler": 0.0} for v in MOBILE}}
    out = both_scalings(macs, {"promptus": 5.0, "promptmobile": 4.0})
    row = out["snapdragon-8gen3"]["promptmobile"]
    assert row["promptus_ms"] == pytest.approx(91.05)
    assert row["mac_scaled_ms"] == pytest.approx(91.05 / 2, abs=0.01)
    assert row["mac_scaled_speedup"] == pytest.approx(2.0, abs=1e-3)
    assert row["gpu_ratio_scaled_ms"] == pytest.approx(91.05 / 1.25, abs=0.01)
    assert row["gpu_speedup"] == pytest.approx(1.25)
    assert "gpu_ratio_scaled_ms" not in out["snapdragon-8gen3"]["promptmobile-lossy"]  # no GPU figure given
