"""Two-stage generation: the UNet at reduced latent resolution, TAESD, then the learned upsampler.

For a 512x512 stream the UNet denoises a 4x32x32 latent (instead of 4x64x64), TAESD decodes it to
256x256 and :class:`~codec.promptmobile.upsampler.Upsampler` lifts the frame to 512x512. The UNet's
convolutions then cost about 4x less and its self-attention about 16x less (SPEC section 2;
measured: 90.5 vs 402.1 GMAC per UNet call, :mod:`codec.promptmobile.cost`).

The start latents of a low-resolution stream live at the low resolution too: the fixed noise is
drawn at that shape and frame 0's side information is the TAESD encoding of the first frame
area-downsampled by the upsampler's factor.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from codec.promptmobile.upsampler import Upsampler
from codec.promptus.generator import PromptusGenerator

__all__ = ["TwoStage"]


class TwoStage(torch.nn.Module):
    """Low-resolution latent shapes, frame-0 encoding and decoding for a generator and an upsampler.

    :param generator: the Promptus generator (full-resolution config).
    :param upsampler: the learned upsampler; its ``scale`` divides the latent side.
    """

    def __init__(self, generator: PromptusGenerator, upsampler: Upsampler):
        super().__init__()
        scale = upsampler.config.scale
        side = generator.config.sample_size
        if side % scale:
            raise ValueError(f"latent side {side} is not divisible by the upsampler's scale {scale}")
        self.scale = scale
        self.side = side // scale
        self.channels = generator.config.latent_channels
        self.upsampler = upsampler
        self._generator = [generator]  # not a submodule: the receiver owns it

    def latent_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        return (batch, self.channels, self.side, self.side)

    def initial_latent(self, frame0: torch.Tensor) -> torch.Tensor:
        """TAESD latent of the first frame area-downsampled by ``scale`` (frame 0's side information)."""
        small = F.interpolate(frame0, scale_factor=1.0 / self.scale, mode="area")
        return self._generator[0].encode_image(small)

    def decode(self, latents: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """TAESD at low resolution, then the upsampler: frames ``(B, 3, H, W)`` at full resolution."""
        small = self._generator[0].decode(latents, clamp=clamp)
        frames = self.upsampler(small.to(next(self.upsampler.parameters()).dtype))
        return frames.clamp(-1.0, 1.0) if clamp else frames
