"""Low-rank prompts and their interpolation between keyframes (SPEC section 1).

A keyframe's prompt is ``c = U V / sqrt(r)`` with ``U`` of shape ``(L, r)`` and ``V`` of shape
``(r, D)`` (L = 77 tokens, D = 1024 for SD-Turbo). Frame ``s`` (1..N) of a segment between
keyframes ``a`` (opening) and ``b`` (closing) uses interpolated factors::

    w = s / N,   u = (1 - w) U_a + w U_b,   v = (1 - w) V_a + w V_b,   c_s = u v / sqrt(r)

so ``s = N`` is keyframe ``b`` itself. Frame 0 has no opening keyframe: ``c = U_0 V_0 / sqrt(r)``.

Keyframes of different ranks (an ABR switch between rungs) are interpolated after a rank
alignment that keeps each prompt exact: ``c = (U r^-1/4)(V r^-1/4)``, and zero-padding the scaled
factors to the larger rank does not change the product. Within one rank this is the formula above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["Factors", "aligned_factors", "interpolate_prompts"]


@dataclass(frozen=True, eq=False)
class Factors:
    """The (dequantized, float) low-rank factors of one keyframe: ``u`` (L, r), ``v`` (r, D)."""

    u: torch.Tensor
    v: torch.Tensor

    def __post_init__(self) -> None:
        if self.u.ndim != 2 or self.v.ndim != 2 or self.u.shape[1] != self.v.shape[0]:
            raise ValueError(f"factors must be (L, r) and (r, D), got {tuple(self.u.shape)} and {tuple(self.v.shape)}")

    @property
    def rank(self) -> int:
        return int(self.u.shape[1])

    def prompt(self) -> torch.Tensor:
        """``U V / sqrt(r)``, shape (L, D)."""
        return self.u @ self.v / math.sqrt(self.rank)

    def detach(self) -> Factors:
        return Factors(self.u.detach(), self.v.detach())

    def to(self, *args: object, **kwargs: object) -> Factors:
        return Factors(self.u.to(*args, **kwargs), self.v.to(*args, **kwargs))


def aligned_factors(f: Factors, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors scaled by r^-1/4 and zero-padded to ``rank`` (product = the prompt, no 1/sqrt(r))."""
    s = f.rank ** -0.25
    u, v = f.u * s, f.v * s
    if rank > f.rank:
        u = torch.nn.functional.pad(u, (0, rank - f.rank))
        v = torch.nn.functional.pad(v, (0, 0, 0, rank - f.rank))
    return u, v


def interpolate_prompts(
    prev: Factors | None, nxt: Factors, length: int, steps: Sequence[int] | torch.Tensor
) -> torch.Tensor:
    """Prompts ``(len(steps), L, D)`` of frames ``s`` in ``steps`` (1..length) of a segment.

    :param prev: factors of the opening keyframe, or None for frame 0 (every step gets ``nxt``'s prompt).
    :param nxt: factors of the closing keyframe (may carry gradients).
    :param length: segment length N (the keyframe interval; shorter for a video's last segment).
    """
    w = torch.as_tensor(steps, dtype=nxt.u.dtype, device=nxt.u.device).reshape(-1, 1, 1) / float(length)
    if prev is None:
        return nxt.prompt().unsqueeze(0).expand(w.shape[0], -1, -1)
    if prev.rank == nxt.rank:
        u0, v0, u1, v1 = prev.u, prev.v, nxt.u, nxt.v
        norm = 1.0 / math.sqrt(nxt.rank)
    else:
        r = max(prev.rank, nxt.rank)
        (u0, v0), (u1, v1) = aligned_factors(prev, r), aligned_factors(nxt, r)
        norm = 1.0
    u0, v0 = u0.to(u1.dtype), v0.to(v1.dtype)
    u = (1.0 - w) * u0 + w * u1
    v = (1.0 - w) * v0 + w * v1
    return torch.bmm(u, v) * norm
