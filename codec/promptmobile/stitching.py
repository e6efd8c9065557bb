"""Image stitching for two-stage generation: k x k low-resolution frames generated as one full-size canvas.

What the paper says (Liu et al., arXiv 2503.16112; only the abstract and secondary summaries are
public): two-stage generation comes with "a novel image-stitching technique ... to enhance the
quality of low-resolution outputs without additional computational load". Nothing more is public.

Our reading (not the paper's code): a diffusion UNet trained at one resolution generates worse
at a lower one, so instead of running it on each low-resolution latent alone, ``k * k`` frames of a
segment are tiled into one canvas of the size it was trained at (``k`` = the upsampler's scale:
four 32x32 latents make one 64x64 canvas for SD-Turbo). The canvas runs through the UNet once;
every tile's cross-attention reads its own frame's prompt (:class:`TileCrossAttnProcessor`:
queries of tile ``t`` attend only to prompt ``t``), while convolutions, group norms and
self-attention see the whole canvas. The canvas is then cut back into frames, each decoded and
upsampled as in plain two-stage generation.

Compute: convolutions cost what the k*k low-resolution calls cost; self-attention over the canvas
costs k^2 times the separate calls' (it attends across tiles), measured by
:mod:`codec.promptmobile.cost`, so "no additional load" holds for the convolutions only.

:func:`stitch` / :func:`unstitch` are exact inverses (tiles in row-major order).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["stitch", "unstitch", "TileCrossAttnProcessor", "tiled_cross_attention", "stitched_eps"]


def stitch(x: Tensor, k: int) -> Tensor:
    """``(G k^2, C, h, w)`` -> ``(G, C, k h, k w)``: each run of ``k^2`` images tiled row-major into one canvas."""
    n, c, h, w = x.shape
    if k < 1 or n % (k * k):
        raise ValueError(f"cannot stitch {n} images into {k}x{k} canvases")
    g = n // (k * k)
    return x.reshape(g, k, k, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(g, c, k * h, k * w)


def unstitch(canvas: Tensor, k: int) -> Tensor:
    """The inverse of :func:`stitch`: ``(G, C, k h, k w)`` -> ``(G k^2, C, h, w)``."""
    g, c, hh, ww = canvas.shape
    if k < 1 or hh % k or ww % k:
        raise ValueError(f"a {ww}x{hh} canvas does not split into {k}x{k} tiles")
    h, w = hh // k, ww // k
    return canvas.reshape(g, c, k, h, k, w).permute(0, 2, 4, 1, 3, 5).reshape(g * k * k, c, h, w)


def _tiles(tokens: Tensor, k: int, hh: int, ww: int) -> Tensor:
    """Canvas tokens ``(G, hh ww, C)`` -> ``(G k^2, hh ww / k^2, C)``, tile-major (row-major tiles)."""
    g, _, c = tokens.shape
    h, w = hh // k, ww // k
    return tokens.reshape(g, k, h, k, w, c).permute(0, 1, 3, 2, 4, 5).reshape(g * k * k, h * w, c)


def _untiles(tiles: Tensor, k: int, hh: int, ww: int) -> Tensor:
    gk, _, c = tiles.shape
    g, h, w = gk // (k * k), hh // k, ww // k
    return tiles.reshape(g, k, k, h, w, c).permute(0, 1, 3, 2, 4, 5).reshape(g, hh * ww, c)


def tiled_cross_attention(attn: torch.nn.Module, hidden: Tensor, context: Tensor, k: int) -> Tensor:
    """Cross-attention of a diffusers ``Attention`` where tile ``t`` of a square canvas attends only to prompt ``t``.

    :param hidden: canvas tokens ``(G, N, C)``, ``N`` a square whose side is a multiple of ``k``.
    :param context: prompts ``(G, k^2 L, D)``: the ``k^2`` prompts of each canvas, concatenated in tile order.
    """
    g, n, _ = hidden.shape
    side = math.isqrt(n)
    if side * side != n or side % k:
        raise ValueError(f"{n} canvas tokens do not form a square of side divisible by {k}")
    if context.shape[1] % (k * k):
        raise ValueError(f"{context.shape[1]} prompt tokens do not split into {k * k} prompts")
    q = _tiles(attn.to_q(hidden), k, side, side)  # (G k^2, n_t, inner)
    ctx = context.reshape(g * k * k, context.shape[1] // (k * k), context.shape[2])
    key, value = attn.to_k(ctx), attn.to_v(ctx)
    heads = attn.heads

    def split(t: Tensor) -> Tensor:
        return t.reshape(t.shape[0], t.shape[1], heads, t.shape[2] // heads).transpose(1, 2)

    o = F.scaled_dot_product_attention(split(q), split(key), split(value), scale=attn.scale)
    o = o.transpose(1, 2).reshape(q.shape[0], q.shape[1], -1).to(q.dtype)
    o = _untiles(o, k, side, side)
    return attn.to_out[1](attn.to_out[0](o))


class TileCrossAttnProcessor:
    """A diffusers attention processor running :func:`tiled_cross_attention` (cross-attention layers only)."""

    def __init__(self, k: int):
        self.k = int(k)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        if encoder_hidden_states is None or attention_mask is not None:
            raise ValueError("TileCrossAttnProcessor handles unmasked cross-attention only")
        if attn.spatial_norm is not None or attn.group_norm is not None or attn.norm_cross:
            raise ValueError("TileCrossAttnProcessor does not reproduce this attention's normalisations")
        if hidden_states.ndim != 3:
            raise ValueError(f"expected (B, N, C) tokens, got {tuple(hidden_states.shape)}")
        out = tiled_cross_attention(attn, hidden_states, encoder_hidden_states, self.k)
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


@contextlib.contextmanager
def _tiled(unet: torch.nn.Module, k: int) -> Iterator[None]:
    """Swap every cross-attention processor of ``unet`` for :class:`TileCrossAttnProcessor` while inside."""
    saved = []
    for m in unet.modules():
        if type(m).__name__ == "BasicTransformerBlock" and m.attn2 is not None:
            saved.append((m.attn2, m.attn2.processor))
            m.attn2.set_processor(TileCrossAttnProcessor(k))
    try:
        yield
    finally:
        for attn, proc in saved:
            attn.set_processor(proc)


def stitched_eps(generator, latent_in: Tensor, prompts: Tensor, k: int) -> Tensor:
    """Noise prediction of ``B`` frames sharing one low-resolution UNet input ``(1, C, h, w)`` through k x k canvases.

    Frames are padded with copies of the last one to a multiple of ``k^2``; returns ``(B, C, h, w)``.
    """
    b = prompts.shape[0]
    per = k * k
    g = -(-b // per)
    if g * per != b:
        prompts = torch.cat([prompts, prompts[-1:].expand(g * per - b, -1, -1)])
    canvas = stitch(latent_in.expand(g * per, -1, -1, -1), k)
    context = prompts.reshape(g, per * prompts.shape[1], prompts.shape[2])
    cfg = generator.config
    with _tiled(generator.unet, k):
        eps = generator.unet(canvas, cfg.timestep, encoder_hidden_states=context.to(canvas.dtype)).sample
    return unstitch(eps, k)[:b]
