"""Lossless coders for the bytes of a Promptus record.

Registry :data:`CODERS` (name -> id on the wire):

- ``raw`` (0): the bytes as they are (what the reference's pickles amount to).
- ``zlib`` (1): DEFLATE, level 9.
- ``lzma`` (2): LZMA2 raw stream, preset 9.
- ``ac`` (3): adaptive binary arithmetic coding written for this data. uint8 factor values
  are near-Gaussian, not repetitive, so dictionary coders gain little; an order-0 model that
  adapts per context does. Each byte is coded MSB first along a binary tree (255 adaptive
  bit probabilities per context, 11-bit precision, adaptation rate 1/16); the contexts are the
  tensor (U or V) and, for V, the rank component (row), whose value spread differs from the
  others under one per-tensor quantizer. The range coder is the carry-propagating byte-wise
  design popularised by LZMA (32-bit range, renormalise below 2^24).

``encode_bytes(data, "best", model)`` tries every coder and keeps the smallest output.
``model`` names the layout (``factors:L:r:D``, ``latent`` or ``latent-f32``) so ``ac`` can pick contexts.

Decoding is bounded for hostile input: the expected size ``n`` is known before decoding (the
bitstream checks it against its limits), zlib and LZMA stop after ``n + 1`` output bytes and
must end exactly there (LZMA with a dictionary of ``n`` bytes, not the encoder's 64 MiB), and
the arithmetic decoder refuses input shorter than its coding
bound allows for ``n`` bytes (every coded bit costs at least ``-log2(1 - 16/2048)`` bits:
probabilities never leave [16, 2032] / 2048) or longer than the most it can emit, and stops as
soon as it reads past the end of its input.
"""

from __future__ import annotations

import lzma
import math
import zlib

import numpy as np

__all__ = ["CODERS", "coder_id", "encode_bytes", "decode_bytes", "ac_encode", "ac_decode"]

CODERS: dict[str, int] = {"raw": 0, "zlib": 1, "lzma": 2, "ac": 3}
_NAMES = {v: k for k, v in CODERS.items()}
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9}]

_PROB_BITS = 11
_PROB_ONE = 1 << _PROB_BITS
_SHIFT = 4
_TOP = 1 << 24
_MASK32 = 0xFFFFFFFF
#: Fewest bits an arithmetic-coded byte can take (8 bits at the most probable extreme) and the
#: most (8 bits at the least probable one); see the module docstring.
_AC_MIN_BITS_PER_BYTE = -8 * math.log2(1 - 16 / _PROB_ONE)
_AC_MAX_BITS_PER_BYTE = -8 * math.log2(15 / _PROB_ONE)


def coder_id(name: str) -> int:
    if name not in CODERS:
        raise ValueError(f"unknown entropy coder {name!r}; valid: {', '.join(CODERS)}, best")
    return CODERS[name]


def _contexts(model: str, n: int) -> np.ndarray:
    """Context index of every byte for a layout string."""
    parts = model.split(":")
    if parts[0] == "factors" and len(parts) == 4:
        L, r, D = (int(p) for p in parts[1:])
        if L * r + r * D == n:
            return np.concatenate([np.zeros(L * r, np.int64), 1 + np.repeat(np.arange(r), D)])
    if parts[0] == "latent-f32":  # little-endian float32: one context per byte lane (sign/exponent vs mantissa)
        return np.arange(n, dtype=np.int64) % 4
    return np.zeros(n, np.int64)


def ac_encode(data: bytes, model: str = "") -> bytes:
    """Adaptive binary arithmetic coding of ``data`` (see the module docstring)."""
    sym = np.frombuffer(data, dtype=np.uint8)
    ctx = _contexts(model, len(sym))
    probs = [[_PROB_ONE // 2] * 256 for _ in range(int(ctx.max()) + 1 if len(ctx) else 1)]
    out = bytearray()
    low, rng, cache, cache_size = 0, _MASK32, 0, 1

    def shift_low() -> None:
        nonlocal low, cache, cache_size
        if low < 0xFF000000 or low > _MASK32:
            carry = low >> 32
            temp = cache
            while True:
                out.append((temp + carry) & 0xFF)
                temp = 0xFF
                cache_size -= 1
                if cache_size == 0:
                    break
            cache = (low >> 24) & 0xFF
        cache_size += 1
        low = (low << 8) & _MASK32

    for s, c in zip(sym.tolist(), ctx.tolist()):
        p = probs[c]
        m = 1
        for i in range(7, -1, -1):
            bit = (s >> i) & 1
            q = p[m]
            bound = (rng >> _PROB_BITS) * q
            if bit:
                low += bound
                rng -= bound
                p[m] = q - (q >> _SHIFT)
            else:
                rng = bound
                p[m] = q + ((_PROB_ONE - q) >> _SHIFT)
            m = (m << 1) | bit
            while rng < _TOP:
                rng = (rng << 8) & _MASK32
                shift_low()
    for _ in range(5):
        shift_low()
    return bytes(out)


def ac_decode(blob: bytes, n: int, model: str = "") -> bytes:
    """Inverse of :func:`ac_encode` for ``n`` output bytes; raises ValueError on malformed input."""
    ctx = _contexts(model, n)
    probs = [[_PROB_ONE // 2] * 256 for _ in range(int(ctx.max()) + 1 if len(ctx) else 1)]
    src = blob + b"\0" * 8
    if len(blob) < 5 or blob[0] != 0:
        raise ValueError("arithmetic-coded data is malformed")
    if 8 * (len(blob) + 8) * 1.01 < n * _AC_MIN_BITS_PER_BYTE:
        raise ValueError(f"{len(blob)} arithmetic-coded bytes cannot hold {n} bytes")
    if len(blob) > n * _AC_MAX_BITS_PER_BYTE / 8 + 16:
        raise ValueError(f"{len(blob)} arithmetic-coded bytes are more than {n} bytes can take")
    end = len(blob) + 4
    code = int.from_bytes(src[1:5], "big")
    pos = 5
    rng = _MASK32
    out = bytearray(n)
    for j, c in enumerate(ctx.tolist()):
        p = probs[c]
        m = 1
        for _ in range(8):
            q = p[m]
            bound = (rng >> _PROB_BITS) * q
            if code < bound:
                rng = bound
                p[m] = q + ((_PROB_ONE - q) >> _SHIFT)
                m <<= 1
            else:
                code -= bound
                rng -= bound
                p[m] = q - (q >> _SHIFT)
                m = (m << 1) | 1
            while rng < _TOP:
                rng = (rng << 8) & _MASK32
                code = ((code << 8) | src[pos]) & _MASK32
                pos += 1
                if pos > end:
                    raise ValueError("arithmetic-coded data is truncated")
        out[j] = m & 0xFF
    if pos > len(blob) + 4:
        raise ValueError("arithmetic-coded data is truncated")
    return bytes(out)


def _encode_one(data: bytes, cid: int, model: str) -> bytes:
    if cid == 0:
        return bytes(data)
    if cid == 1:
        return zlib.compress(data, 9)
    if cid == 2:
        return lzma.compress(data, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
    return ac_encode(data, model)


def encode_bytes(data: bytes, coder: str = "best", model: str = "") -> tuple[int, bytes]:
    """``(coder id, coded bytes)``; ``coder="best"`` keeps the smallest of all coders."""
    if coder == "best":
        options = [(cid, _encode_one(data, cid, model)) for cid in CODERS.values()]
        return min(options, key=lambda o: (len(o[1]), o[0]))
    cid = coder_id(coder)
    return cid, _encode_one(data, cid, model)


def decode_bytes(cid: int, blob: bytes, n: int, model: str = "") -> bytes:
    """Decode ``n`` bytes coded with coder ``cid``; ValueError names what is wrong."""
    if cid not in _NAMES:
        raise ValueError(f"unknown entropy coder id {cid}")
    try:
        if cid == 0:
            out = bytes(blob)
        elif cid == 1:
            dec = zlib.decompressobj()
            out = dec.decompress(blob, n + 1)
            if not dec.eof or dec.unconsumed_tail or dec.unused_data:
                raise ValueError(f"zlib data does not end after {n} bytes")
        elif cid == 2:
            # a dictionary of the output size is enough for any valid stream (preset 9 would be 64 MiB)
            dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW,
                                        filters=[{"id": lzma.FILTER_LZMA2, "dict_size": max(n, 4096)}])  # fmt: skip
            out = dec.decompress(blob, n + 1)
            if not dec.eof or dec.unused_data:
                raise ValueError(f"lzma data does not decode to {n} bytes")
        else:
            out = ac_decode(blob, n, model)
    except (zlib.error, lzma.LZMAError) as exc:
        raise ValueError(f"{_NAMES[cid]} data cannot be decoded ({exc})") from None
    if len(out) != n:
        raise ValueError(f"{_NAMES[cid]} data decodes to {len(out)} bytes, expected {n}")
    return out
