"""System-level optimisations of a generator for playback: dtype, memory format, fused attention, compilation.

- dtype: ``auto`` picks float16 on CUDA (what SPEC section 3's H200 figures use), bfloat16 on a CPU
  whose oneDNN has bf16 kernels (AVX512-BF16 / AMX, like this machine's Xeon), else float32;
- channels-last memory format for the convolutional parts (UNet, TAESD, upsampler);
- fused attention: every diffusers attention module uses ``AttnProcessor2_0`` (PyTorch's
  ``scaled_dot_product_attention``, flash/memory-efficient kernels where the device has them);
  :class:`~codec.promptmobile.caching.SegmentUNet` calls the same kernel for cross-attention;
- ``torch.compile`` of the building blocks (resnets, attention, feed-forward, up/down samplers,
  TAESD, upsampler), in place, so both the plain UNet forward and the segment runner use the
  compiled code. On CUDA ``compile_mode="reduce-overhead"`` adds CUDA graphs.

Playback only: fitting needs float32 gradients, so encoders keep an unoptimised generator, and
a bf16/fp16 receiver differs from the fp32 sender by rounding (measured by bench/bench_promptmobile.py).
Nothing here is GPU-only; on the CPU ``compile`` needs a C++ compiler and takes minutes (tried on
the tiny generator here: same output to 1e-6). ``compile`` raises dynamo's per-function recompile
limit to 64 (a process-wide setting). CUDA graphs were not tried: no GPU was available.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["SystemConfig", "best_dtype", "optimize"]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_COMPILED = ("ResnetBlock2D", "Attention", "FeedForward", "Downsample2D", "Upsample2D", "Decoder", "Upsampler")


@dataclass(frozen=True, slots=True)
class SystemConfig:
    """Playback optimisations.

    :param dtype: ``auto``, ``float32``, ``bfloat16`` or ``float16``.
    :param channels_last: NHWC memory format for convolutions.
    :param compile: ``torch.compile`` the building blocks in place.
    :param compile_mode: ``torch.compile`` mode; ``reduce-overhead`` uses CUDA graphs on GPUs.
    """

    dtype: str = "auto"
    channels_last: bool = True
    compile: bool = False
    compile_mode: str = "default"

    def __post_init__(self) -> None:
        if self.dtype != "auto" and self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'auto' or one of {sorted(_DTYPES)}, got {self.dtype!r}")


def best_dtype(device: torch.device | str) -> torch.dtype:
    """float16 on CUDA, bfloat16 on CPUs with oneDNN bf16 support, float32 otherwise."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        try:
            if torch.ops.mkldnn._is_mkldnn_bf16_supported():
                return torch.bfloat16
        except (AttributeError, RuntimeError):
            pass
    return torch.float32


def optimize(*modules: torch.nn.Module, config: SystemConfig = SystemConfig(), device=None) -> torch.dtype:
    """Apply ``config`` in place to ``modules`` (a generator, a receiver, an upsampler...); returns the dtype.

    :param device: where the modules live (default: their parameters' device).
    """
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    if device is None:
        device = next(p.device for m in modules for p in m.parameters())
    dtype = best_dtype(device) if config.dtype == "auto" else _DTYPES[config.dtype]
    for m in modules:
        m.to(dtype=dtype)
        for sub in m.modules():
            if isinstance(sub, Attention):
                sub.set_processor(AttnProcessor2_0())
        if config.channels_last:
            m.to(memory_format=torch.channels_last)
        if config.compile:
            # Every block of a kind shares one code object, and each shape is a separate graph:
            # dynamo's default limit of 8 graphs per code object would leave most blocks eager.
            import torch._dynamo.config as dynamo_config

            dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
            for sub in m.modules():
                if type(sub).__name__ in _COMPILED:
                    sub.compile(mode=config.compile_mode)
    return dtype
