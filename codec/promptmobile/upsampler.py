"""The learned x2 upsampler of PromptMobile's two-stage generation.

The UNet generates at half resolution (latent 32x32, frames 256x256 for a 512x512 stream), TAESD
decodes, and this network lifts the frame to full size. It is an ESPCN-style sub-pixel network
(Shi et al., CVPR 2016) on top of bilinear upsampling, and the residual starts near zero, so an
untrained network is bilinear upsampling::

    y = bilinear_x2(x) + PixelShuffle(conv_out(act(conv ... act(conv_in(x)))))

with leaky ReLU units (slope 0.05; plain ReLUs died in training trials here). All convolutions
run at the low resolution; the cost is ``macs_per_input_pixel`` multiply-accumulates per
low-resolution pixel (32k for the default width 32 and 3 body layers, i.e. 2.1 GMAC for a
256x256 input, against about 402 GMAC of one full-resolution UNet call).

Weights come from ``python -m codec.promptmobile.train_upsampler`` (never downloaded); the default
file is ``codec/data/upsampler-x2.pt`` with a JSON beside it saying how it was trained.
Frames are ``(B, 3, H, W)`` floats in [-1, 1].
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from abr.errors import InputError
from abr.io import write_atomic, write_text_atomic

__all__ = ["UpsamplerConfig", "Upsampler", "DEFAULT_WEIGHTS", "load_upsampler", "save_upsampler"]

#: The committed weights (written by ``python -m codec.promptmobile.train_upsampler``).
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "data" / "upsampler-x2.pt"


@dataclass(frozen=True, slots=True)
class UpsamplerConfig:
    """Shape of the upsampler.

    :param scale: upsampling factor (2: 256 -> 512).
    :param width: channels of the hidden convolutions.
    :param body_layers: 3x3 width->width convolutions between the input and output convolutions.
    """

    scale: int = 2
    width: int = 32
    body_layers: int = 3

    def __post_init__(self) -> None:
        for name in ("scale", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"UpsamplerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.body_layers < 0:
            raise ValueError(f"UpsamplerConfig.body_layers must be >= 0, got {self.body_layers}")

    @property
    def macs_per_input_pixel(self) -> int:
        """Multiply-accumulates per low-resolution pixel (convolutions only)."""
        w, k = self.width, 9
        return 3 * w * k + self.body_layers * w * w * k + w * 3 * self.scale**2 * k


class Upsampler(nn.Module):
    """Bilinear x``scale`` upsampling plus a learned sub-pixel residual (see the module docstring)."""

    def __init__(self, config: UpsamplerConfig = UpsamplerConfig()):
        super().__init__()
        self.config = config
        w = config.width
        layers: list[nn.Module] = [nn.Conv2d(3, w, 3, padding=1), nn.LeakyReLU(0.05, inplace=True)]
        for _ in range(config.body_layers):
            layers += [nn.Conv2d(w, w, 3, padding=1), nn.LeakyReLU(0.05, inplace=True)]
        layers += [nn.Conv2d(w, 3 * config.scale**2, 3, padding=1), nn.PixelShuffle(config.scale)]
        self.residual = nn.Sequential(*layers)
        # A near-zero output convolution: the untrained network is (almost) bilinear upsampling.
        # (Not exactly zero: with leaky units that would still train, but a tiny start is gentler.)
        out_conv = layers[-2]
        nn.init.normal_(out_conv.weight, std=1e-3)
        nn.init.zeros_(out_conv.bias)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, 3, h, w)`` -> ``(B, 3, scale h, scale w)``, both in [-1, 1] (not clamped)."""
        base = F.interpolate(frames, scale_factor=self.config.scale, mode="bilinear", align_corners=False)
        return base + self.residual(frames)


def save_upsampler(model: Upsampler, path: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write ``{"config", "state_dict"}`` to ``path`` and ``info`` as JSON beside it (atomically).

    :returns: the path of the JSON side file (``path`` with suffix ``.json``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    write_atomic(path, lambda p: torch.save({"config": asdict(model.config), "state_dict": state}, p))
    side = path.with_suffix(".json")
    doc = {"config": asdict(model.config), **(info or {})}
    write_text_atomic(side, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return side


def load_upsampler(path: str | Path | None = None, device: torch.device | str = "cpu") -> Upsampler:
    """The upsampler stored at ``path`` (default: the committed ``codec/data/upsampler-x2.pt``).

    :raises InputError: the file is missing or is not an upsampler checkpoint.
    """
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise InputError(
            "upsampler weights not found; train them with `python -m codec.promptmobile.train_upsampler`", path=path
        )
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
        model = Upsampler(UpsamplerConfig(**doc["config"]))
        model.load_state_dict(doc["state_dict"])
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as exc:
        raise InputError(f"not an upsampler checkpoint ({str(exc).splitlines()[0][:200]})", path=path) from None
    return model.to(device).eval().requires_grad_(False)
