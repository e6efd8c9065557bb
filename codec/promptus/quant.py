"""Per-tensor asymmetric uint8 quantization with a straight-through gradient (SPEC section 1).

A tensor ``x`` is sent as bytes ``q = clamp(round(x / scale + zero_point), 0, 255)`` plus two
float32 numbers, and received as ``(q - zero_point) * scale``. ``scale = (max - min) / 255`` and
``zero_point = -min / scale`` span exactly the tensor's range (no forced zero: the factors are
often all positive). Both numbers are rounded to float32 before use, so the value the encoder
fits with and the value a decoder reconstructs from the bitstream are bit-identical.

:func:`fake_quant` is the quantization-aware fitting operator: forward = quantize then dequantize,
backward = identity (straight-through estimator), with range statistics taken without gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from codec.promptus.prompt import Factors

__all__ = ["QParams", "QuantFactors", "RunningQuant", "qparams", "quantize", "dequantize", "fake_quant", "LEVELS"]

#: Number of quantization levels (uint8).
LEVELS = 256
_TINY = 1e-8


@dataclass(frozen=True, slots=True)
class QParams:
    """Scale and zero point of one quantized tensor (float32-rounded, as on the wire: 8 bytes)."""

    scale: float
    zero_point: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", float(np.float32(self.scale)))  # what the wire holds
        object.__setattr__(self, "zero_point", float(np.float32(self.zero_point)))
        if not (np.isfinite(self.scale) and self.scale > 0 and np.isfinite(self.zero_point)):
            raise ValueError(f"invalid quantization parameters scale={self.scale!r} zero_point={self.zero_point!r}")


def qparams(x: torch.Tensor) -> QParams:
    """Range-spanning parameters for ``x`` (float32-rounded)."""
    lo = float(x.detach().min())
    hi = float(x.detach().max())
    scale = np.float32(max(hi - lo, _TINY) / (LEVELS - 1))
    zero_point = np.float32(-lo / float(scale))
    return QParams(float(scale), float(zero_point))


def _q(x: torch.Tensor, qp: QParams) -> torch.Tensor:
    scale = torch.tensor(qp.scale, dtype=torch.float32, device=x.device)
    zp = torch.tensor(qp.zero_point, dtype=torch.float32, device=x.device)
    return torch.clamp(torch.round(x.detach().float() / scale + zp), 0, LEVELS - 1)


def quantize(x: torch.Tensor, qp: QParams | None = None) -> tuple[np.ndarray, QParams]:
    """``(uint8 array of x's shape, params)``."""
    qp = qp or qparams(x)
    return _q(x, qp).to(torch.uint8).cpu().numpy(), qp


def dequantize(q: np.ndarray | torch.Tensor, qp: QParams, device: torch.device | str = "cpu") -> torch.Tensor:
    """float32 tensor ``(q - zero_point) * scale``."""
    q = torch.from_numpy(np.array(q, dtype=np.uint8)) if isinstance(q, np.ndarray) else q
    scale = torch.tensor(qp.scale, dtype=torch.float32)
    zp = torch.tensor(qp.zero_point, dtype=torch.float32)
    return ((q.to(torch.float32) - zp) * scale).to(device)


def fake_quant(x: torch.Tensor) -> torch.Tensor:
    """Quantize-dequantize ``x`` in the forward pass; gradient passes straight through."""
    qp = qparams(x)
    scale = torch.tensor(qp.scale, dtype=torch.float32, device=x.device)
    zp = torch.tensor(qp.zero_point, dtype=torch.float32, device=x.device)
    deq = ((_q(x, qp) - zp) * scale).to(x.dtype)
    return x + (deq - x).detach()


@dataclass(frozen=True, eq=False)
class QuantFactors:
    """The bytes of one keyframe: uint8 ``u`` (L, r) and ``v`` (r, D) with their quantization parameters."""

    u: np.ndarray
    v: np.ndarray
    u_q: QParams
    v_q: QParams

    @property
    def rank(self) -> int:
        return int(self.u.shape[1])

    def factors(self, device: torch.device | str = "cpu") -> Factors:
        """The float factors a decoder reconstructs."""
        return Factors(dequantize(self.u, self.u_q, device), dequantize(self.v, self.v_q, device))

    @classmethod
    def from_factors(cls, u: torch.Tensor, v: torch.Tensor) -> QuantFactors:
        qu, pu = quantize(u)
        qv, pv = quantize(v)
        return cls(qu, qv, pu, pv)


class RunningQuant:
    """The official quantizer (``PROMPTUS_OFFICIAL.md`` section 3): a range that only grows.

    ``update(x)`` widens a running ``[min, max]`` (max clamped to >= 0, min to <= 0) over every
    step of one keyframe's fit; then ``scale = (max - min) / 255``, ``zp = round(clamp(255 - max /
    scale, 0, 255))``, ``q = round(clamp(zp + x / scale, 0, 255))`` (clamp, then round) and the
    value is ``scale * (q - zp)``. Our own :func:`fake_quant` instead spans the current tensor's
    range (no forced zero, nothing wasted): the shipped official prompts use only 75-117 of U's
    256 codes.
    """

    def __init__(self) -> None:
        self.lo = 0.0
        self.hi = 0.0

    def update(self, x: torch.Tensor) -> None:
        self.lo = min(self.lo, float(x.detach().min()), 0.0)
        self.hi = max(self.hi, float(x.detach().max()), 0.0)

    def params(self) -> QParams:
        scale = np.float32((self.hi - self.lo) / (LEVELS - 1)) if self.hi > self.lo else np.float32(_TINY)
        zp = float(np.round(np.clip(np.float32(LEVELS - 1) - np.float32(self.hi) / scale, 0, LEVELS - 1)))
        return QParams(float(scale), zp)

    def fake_quant(self, x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray, QParams]:
        """``update`` then quantize-dequantize with a straight-through gradient; also the codes and params."""
        self.update(x)
        qp = self.params()
        scale = torch.tensor(qp.scale, dtype=torch.float32, device=x.device)
        zp = torch.tensor(qp.zero_point, dtype=torch.float32, device=x.device)
        q = torch.round(torch.clamp(zp + x.detach().float() / scale, 0, LEVELS - 1))
        deq = (scale * (q - zp)).to(x.dtype)
        return x + (deq - x).detach(), q.to(torch.uint8).cpu().numpy(), qp
