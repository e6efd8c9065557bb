"""Small generators built from the real diffusers classes, for tests and benchmarks.

No SD-Turbo or TAESD weights can be downloaded on the development machine, so tests use a tiny
``UNet2DConditionModel`` and ``AutoencoderTiny`` with random (seeded) weights, and the benchmark
uses the full SD-Turbo architecture with random weights (speed depends on shapes, not values).
:func:`save_tiny` writes a model folder laid out like a real one (``unet/``, ``taesd/``,
``promptus_config.json``) so tests go through :meth:`PromptusGenerator.from_pretrained`.

Example::

    gen = tiny_generator(seed=0, sample_size=8, prompt_len=8)     # 64x64 frames, prompts 8 x 32
    folder = save_tiny(tmp_path / "tiny", sample_size=8)
    gen2 = PromptusGenerator.from_pretrained(folder, device="cpu")
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from codec.promptus.generator import CONFIG_NAME, SD_TURBO, GeneratorConfig, PromptusGenerator

__all__ = [
    "tiny_generator",
    "save_tiny",
    "tiny_unet_config",
    "tiny_taesd_config",
    "sd_turbo_unet_config",
    "taesd_config",
    "random_sd_turbo",
]


def tiny_unet_config(sample_size: int = 16, cross_attention_dim: int = 32) -> dict[str, Any]:
    """A two-level UNet2DConditionModel config (about 0.3 M parameters) with cross-attention."""
    return {
        "sample_size": sample_size,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "cross_attention_dim": cross_attention_dim,
        "attention_head_dim": 8,
        "norm_num_groups": 8,
        "use_linear_projection": True,
    }


def tiny_taesd_config(width: int = 8) -> dict[str, Any]:
    """An AutoencoderTiny with TAESD's topology (8x down/up-sampling) but ``width`` channels."""
    return {
        "encoder_block_out_channels": (width,) * 4,
        "decoder_block_out_channels": (width,) * 4,
        "num_encoder_blocks": (1, 1, 1, 1),
        "num_decoder_blocks": (1, 1, 1, 1),
        "latent_channels": 4,
    }


def sd_turbo_unet_config() -> dict[str, Any]:
    """SD-Turbo's UNet (SD 2.1 base): 320/640/1280/1280, 2 layers, cross-attention 1024, 64-dim heads."""
    return {
        "sample_size": 64,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        "block_out_channels": (320, 640, 1280, 1280),
        "layers_per_block": 2,
        "cross_attention_dim": 1024,
        "attention_head_dim": (5, 10, 20, 20),
        "use_linear_projection": True,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "act_fn": "silu",
        "norm_num_groups": 32,
    }


def taesd_config() -> dict[str, Any]:
    """TAESD's AutoencoderTiny config (diffusers defaults: 64 channels, blocks 1/3/3/3 and 3/3/3/1)."""
    return {}


def _build(
    unet_cfg: dict[str, Any], vae_cfg: dict[str, Any], config: GeneratorConfig, seed: int
) -> PromptusGenerator:
    from diffusers import AutoencoderTiny, UNet2DConditionModel

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**unet_cfg)
        vae = AutoencoderTiny(**vae_cfg)
    finally:
        torch.random.set_rng_state(state)
    return PromptusGenerator(unet, vae, config)


#: Timestep of the tiny generator (sigma = 1.16). A random UNet does not denoise: at t = 999 its x0 is
#: ``14.6 (z - eps)`` with independent z and eps, which saturates TAESD's input clamp (tanh(x/3)*3)
#: and leaves the prompt almost no influence. At sigma ~ 1 the latent stays in TAESD's working range.
TINY_TIMESTEP = 400


def tiny_generator(
    seed: int = 0,
    sample_size: int = 16,
    prompt_len: int = 77,
    prompt_dim: int = 32,
    taesd_width: int = 8,
    timestep: int = TINY_TIMESTEP,
) -> PromptusGenerator:
    """A tiny CPU-speed generator: latent ``4 x sample_size^2``, frames ``8 * sample_size`` pixels square.

    Two rescalings of diffusers' default initialisation make it a usable stand-in: TAESD's output
    layer x16 (frames std ~0.3 around 0 instead of a near-constant grey) and the cross-attention
    output projections x5 (a new random prompt changes the frame by about a third of its spread,
    instead of a few percent), so that fitting a prompt is a well-posed test.

    :param seed: seed of the random weights (the global torch RNG is left untouched).
    :param prompt_len: prompt tokens (77 like SD, or fewer for faster tests).
    :param prompt_dim: cross-attention width (1024 in SD; 32 here).
    :param timestep: the single UNet timestep (see :data:`TINY_TIMESTEP`; 999 for SD-Turbo's own).
    """
    config = replace(SD_TURBO, name="tiny", prompt_len=prompt_len, prompt_dim=prompt_dim, sample_size=sample_size,
                     timestep=timestep)
    gen = _build(tiny_unet_config(sample_size, prompt_dim), tiny_taesd_config(taesd_width), config, seed)
    last = gen.vae.decoder.layers[-1]
    with torch.no_grad():  # decoder output is in [0, 1] before diffusers maps it to [-1, 1]
        last.weight.mul_(16.0)
        last.bias.fill_(0.5)
        for name, module in gen.unet.named_modules():
            if name.endswith("attn2"):  # cross-attention: where the prompt enters
                module.to_out[0].weight.mul_(5.0)
    return gen


def random_sd_turbo(seed: int = 0, sample_size: int = 64) -> PromptusGenerator:
    """The full SD-Turbo + TAESD architecture with random weights (benchmarks only; 865 M parameters)."""
    unet_cfg = {**sd_turbo_unet_config(), "sample_size": sample_size}
    config = replace(SD_TURBO, name="sd-turbo-random", sample_size=sample_size)
    return _build(unet_cfg, taesd_config(), config, seed)


def save_tiny(folder: str | Path, seed: int = 0, **kwargs: Any) -> Path:
    """Write a :func:`tiny_generator` as a model folder (``unet/``, ``taesd/``, ``promptus_config.json``)."""
    import json

    folder = Path(folder)
    gen = tiny_generator(seed=seed, **kwargs)
    gen.unet.save_pretrained(folder / "unet")
    gen.vae.save_pretrained(folder / "taesd")
    (folder / CONFIG_NAME).write_text(json.dumps(gen.config.to_dict(), indent=1) + "\n")
    return folder
