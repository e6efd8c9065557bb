"""An optional residual stream that corrects what the accelerated receiver gets wrong.

What the paper says (Liu et al., arXiv 2503.16112; only the abstract and secondary summaries are
public): among its system-level techniques, a residual enhancement that lets the sender transmit
an *additional residual stream* to compensate for the quality the accelerated receiver loses.
The summaries say nothing of how the residual is coded. Our implementation (a reading, not the
paper's code):

- the sender decodes its own stream with the receiver the player will use (receivers are
  deterministic, so sender and player get the same frames) and takes the residual
  ``r = source - decoded`` in 8-bit pixel units;
- ``r`` is area-downsampled by ``scale`` (the residual of a generative receiver is mostly low
  frequency: colour and position errors), quantised with a uniform step ``step`` to int8
  (``q = clip(round(r / step), -127, 127)``) and entropy-coded losslessly
  (:func:`codec.promptus.entropy.encode_bytes`);
- the player dequantises (``q * step``), upsamples bilinearly to the frame size, adds and rounds
  to uint8.

Bytes: :attr:`ResidualRecord.nbytes` is the coded payload plus a fixed header of
:data:`HEADER_BYTES` (frames, size, scale, step, coder). With ``scale = 1`` and no clipping the
reconstruction error is at most ``step / 2`` before rounding to uint8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["HEADER_BYTES", "ResidualConfig", "ResidualRecord", "encode_residual", "decode_residual",
           "apply_residual"]

#: frames (u32), height and width (u16 each), scale (u8), coder (u8), step (f32)
HEADER_BYTES = 14


@dataclass(frozen=True, slots=True)
class ResidualConfig:
    """How the residual is coded.

    :param scale: the residual is sent at 1/scale of the frame side (area downsampling).
    :param step: quantiser step in 8-bit pixel units.
    :param coder: lossless coder of :mod:`codec.promptus.entropy` (``best`` tries them all).
    """

    scale: int = 4
    step: float = 8.0
    coder: str = "best"

    def __post_init__(self) -> None:
        if not (isinstance(self.scale, int) and 1 <= self.scale <= 255):
            raise ValueError(f"ResidualConfig.scale must be an integer in 1..255, got {self.scale!r}")
        if not (math.isfinite(self.step) and self.step > 0):
            raise ValueError(f"ResidualConfig.step must be a finite positive number, got {self.step!r}")


@dataclass(frozen=True, eq=False)
class ResidualRecord:
    """A coded residual of ``frames`` frames of ``height x width`` pixels."""

    frames: int
    height: int
    width: int
    scale: int
    step: float
    coder: int
    payload: bytes

    @property
    def nbytes(self) -> int:
        """Bytes on the wire: header + coded payload."""
        return HEADER_BYTES + len(self.payload)

    @property
    def q_shape(self) -> tuple[int, int, int, int]:
        return (self.frames, 3, self.height // self.scale, self.width // self.scale)


def _check_frames(a: np.ndarray, name: str) -> None:
    if a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"{name} must be uint8 (T, H, W, 3), got {a.dtype} {a.shape}")


def encode_residual(source: np.ndarray, decoded: np.ndarray, cfg: ResidualConfig = ResidualConfig()) -> ResidualRecord:
    """The residual record that brings ``decoded`` towards ``source`` (both uint8 ``(T, H, W, 3)``)."""
    from codec.promptus.entropy import encode_bytes

    _check_frames(source, "source")
    _check_frames(decoded, "decoded")
    if source.shape != decoded.shape:
        raise ValueError(f"source {source.shape} and decoded {decoded.shape} frames differ in shape")
    t, h, w, _ = source.shape
    s = cfg.scale
    if h % s or w % s:
        raise ValueError(f"frame size {w}x{h} is not a multiple of the residual scale {s}")
    r = source.astype(np.float64) - decoded.astype(np.float64)
    r = r.reshape(t, h // s, s, w // s, s, 3).mean(axis=(2, 4))  # area downsampling
    q = np.clip(np.rint(r / cfg.step), -127, 127).astype(np.int8)
    q = np.ascontiguousarray(q.transpose(0, 3, 1, 2))
    cid, blob = encode_bytes((q.astype(np.int16) + 128).astype(np.uint8).tobytes(), cfg.coder)
    return ResidualRecord(t, h, w, s, float(np.float32(cfg.step)), cid, blob)


def decode_residual(rec: ResidualRecord) -> np.ndarray:
    """The residual in pixel units, float32 ``(T, H, W, 3)`` at full size."""
    import torch
    from torch.nn import functional as F

    from codec.promptus.entropy import decode_bytes

    n = int(np.prod(rec.q_shape))
    raw = decode_bytes(rec.coder, rec.payload, n)
    q = np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128
    r = torch.from_numpy((q.reshape(rec.q_shape) * rec.step).astype(np.float32))
    if rec.scale > 1:
        r = F.interpolate(r, size=(rec.height, rec.width), mode="bilinear", align_corners=False)
    return r.permute(0, 2, 3, 1).numpy()


def apply_residual(decoded: np.ndarray, rec: ResidualRecord) -> np.ndarray:
    """``decoded`` uint8 frames plus the residual, rounded and clipped to uint8."""
    _check_frames(decoded, "decoded")
    if decoded.shape != (rec.frames, rec.height, rec.width, 3):
        raise ValueError(f"decoded frames {decoded.shape} do not match the residual "
                         f"({rec.frames}, {rec.height}, {rec.width}, 3)")
    return np.clip(np.rint(decoded.astype(np.float32) + decode_residual(rec)), 0, 255).astype(np.uint8)
