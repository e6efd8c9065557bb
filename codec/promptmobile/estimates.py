"""Decode-time estimates of the PromptMobile variants on the built-in devices (SPEC section 3).

A device's PromptMobile figure is its measured/published Promptus components (UNet, TAESD)
scaled by the compute ratio of each component, the multiply-accumulates counted by
:mod:`codec.promptmobile.cost` on the real SD-Turbo architecture. ``bench/device_profile.py``
writes these figures into ``sim/data/devices.json``; ``tests/test_promptmobile_cost.py`` checks
that the file holds what this module computes.
"""

from __future__ import annotations

from codec.promptmobile.cost import default_plan, meta_generator, variant_cost
from codec.promptus.receiver import get_receiver
from codec.receivers import RECEIVER_MODULES

__all__ = ["COMPONENTS", "MOBILE", "component_macs", "scaled_entries", "both_scalings"]

#: Per-component Promptus figures of the built-in devices (SPEC section 3), the base the
#: PromptMobile entries are scaled from. ``base`` says which UNet/TAESD resolution the ms are for.
# The H200's PromptMobile figures are measured (bench/bench_receivers_gpu.py), not scaled.
COMPONENTS = {
    "snapdragon-8gen3": {
        "unet64_ms": 68.3, "taesd64_ms": 22.75,
        "source": "SD 2.1 UNet 68.3 ms (Qualcomm AI Hub, published) + TAESD 22.75 ms (VAE decoder 201 ms "
                  "x 2.4/21.2, H200 TAESD/VAE ratio)",
    },
    "snapdragon-8elite": {
        "unet64_ms": 54.9, "taesd64_ms": 20.04,
        "source": "SD 2.1 UNet 54.9 ms (Qualcomm AI Hub, published) + TAESD 20.04 ms (VAE decoder 177 ms "
                  "x 2.4/21.2)",
    },
    "snapdragon-8gen2": {
        "unet64_ms": 96.4, "taesd64_ms": 30.45,
        "source": "SD 2.1 UNet 96.4 ms (Qualcomm AI Hub, published) + TAESD 30.45 ms (VAE decoder 269 ms "
                  "x 2.4/21.2)",
    },
}
#: The PromptMobile variants, in the order of :data:`codec.receivers.RECEIVER_MODULES`.
MOBILE = tuple(name for name in RECEIVER_MODULES if name != "promptus")


def scaled_entries(macs: dict[str, dict[str, float]]) -> dict[str, dict[str, tuple[float, str]]]:
    """PromptMobile ms per frame for the built-in devices: measured/published components x compute ratios.

    :param macs: variant -> {"unet", "decode", "upsampler"} MACs per frame (segment of 10, rank 8).
    """
    p = macs["promptus"]
    out: dict[str, dict[str, tuple[float, str]]] = {}
    for device, c in COMPONENTS.items():
        rows = {}
        for v in MOBILE:
            q = macs[v]
            unet = c["unet64_ms"] * q["unet"] / p["unet"]
            dec = c["taesd64_ms"] * q["decode"] / p["decode"]
            ups = c["taesd64_ms"] * q["upsampler"] / p["decode"]
            ups_text = f" and {q['upsampler'] / p['decode']:.3f} (upsampler vs TAESD)" if q["upsampler"] else ""
            how = (f"UNet {c['unet64_ms']} ms and TAESD {c['taesd64_ms']} ms at 512x512 ({c['source']}) x "
                   f"MAC ratios {q['unet'] / p['unet']:.3f} (UNet), {q['decode'] / p['decode']:.3f} (TAESD)"
                   f"{ups_text}")
            ms = unet + dec + ups
            rows[v] = (round(ms, 2), f"scaled estimate: {how}; MACs counted by codec.promptmobile.cost for a "
                                     f"10-frame segment at rank 8 (bench/device_profile.py). Assumes time "
                                     f"proportional to MACs per component")
        out[device] = rows
    return out


def component_macs(gen=None) -> dict[str, dict[str, float]]:
    """UNet / decoder / upsampler MACs per frame of Promptus and each PromptMobile variant (10 frames, rank 8)."""
    gen = meta_generator() if gen is None else gen
    out = {}
    for v in ("promptus", *MOBILE):
        c = variant_cost(v, gen, n_frames=10, rank=8, plan=default_plan(get_receiver(v, gen), 10))
        out[v] = {"unet": c.unet_per_frame, "decode": c.decode_per_frame, "upsampler": c.upsampler_per_frame}
    return out


def both_scalings(macs: dict[str, dict[str, float]], gpu_ms: dict[str, float]) -> dict[str, dict[str, dict]]:
    """Phone ms per frame of every PromptMobile variant scaled two ways, with the ratio each uses.

    - ``mac_scaled``: :func:`scaled_entries` (what ``sim/data/devices.json`` holds): each component's
      published/derived Promptus time x its MAC ratio. Chosen for the profiles because a phone NPU
      at batch 1 runs a 512x512 UNet compute-bound (68 ms for 402 GMAC, about 6 TMAC/s), so fewer
      MACs turn into time; an upper bound on the speed-up (it ignores memory traffic and launch overhead).
    - ``gpu_ratio_scaled``: the phone's Promptus time (UNet + TAESD) x the H200's measured
      ``variant / promptus`` time ratio in one run (same precision, batch and segment). A lower bound:
      the H200 at this size is not compute-bound, so it turns few of the saved MACs into time.

    :param macs: as for :func:`scaled_entries`.
    :param gpu_ms: ms per frame measured in one run on a GPU, ``promptus`` and the variants
        (``bench/results/receivers_gpu_fp16_channels_last.json``'s ``ms_per_frame``).
    """
    mac = scaled_entries(macs)
    out: dict[str, dict[str, dict]] = {}
    for device, c in COMPONENTS.items():
        base = c["unet64_ms"] + c["taesd64_ms"]
        rows = {}
        for v in MOBILE:
            ms = mac[device][v][0]
            row = {"promptus_ms": round(base, 2), "mac_scaled_ms": ms, "mac_scaled_speedup": round(base / ms, 3)}
            if v in gpu_ms and "promptus" in gpu_ms:
                ratio = gpu_ms["promptus"] / gpu_ms[v]
                row.update({"gpu_ratio_scaled_ms": round(base / ratio, 2), "gpu_speedup": round(ratio, 3)})
            rows[v] = row
        out[device] = rows
    return out
