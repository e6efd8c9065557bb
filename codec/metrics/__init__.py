"""Perceptual and classic image-quality metrics: LPIPS (AlexNet/VGG, v0.1), PSNR and SSIM.

torch loads on first use of a name, so ``import codec.metrics`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LPIPS", "lpips_weights_path", "psnr", "ssim", "to_lpips_input"]

_WHERE = {
    "LPIPS": "codec.metrics.lpips",
    "to_lpips_input": "codec.metrics.lpips",
    "lpips_weights_path": "codec.metrics.weights",
    "psnr": "codec.metrics.fidelity",
    "ssim": "codec.metrics.fidelity",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'codec.metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
