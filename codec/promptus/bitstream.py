"""The Promptus bitstream: a versioned container of keyframe prompts.

Layout (little-endian)::

    magic   b"PRMT"        4 bytes
    version u16            2 bytes (this module writes and reads VERSION)
    records ...            each: tag u8 | payload length u32 | payload | CRC32 u32 of tag+length+payload

Records, in this order:

``H`` header (once)
    generator name (u8 length + UTF-8), generator fingerprint (8 bytes), receiver spec (u16 length +
    UTF-8), width u16, height u16, latent channels u8, latent height u16, latent width u16,
    prompt length u16, prompt width u16, nominal rank u16, interval u16, fps f64, noise seed u64,
    frame count u32, keyframe count u32.
``L`` first-frame latent (once): shape 4 x u16, scale f32, zero point f32, coder u8, coded uint8 latent;
    or, in its place, ``F``: the float32 latent as the official code sends it (``init.pth``), shape
    4 x u16, coder u8, coded little-endian float32 values. Readers before ``F`` existed stop at it with
    "expected record 'L'"; streams with ``L`` are unchanged.
``K`` keyframe (one per keyframe, in frame order): frame u32, segment length u16, rank u16,
    U scale f32, U zero point f32, V scale f32, V zero point f32 (the 16 bytes of SPEC's payload),
    coder u8, coded bytes of ``U`` (L x r, row-major) followed by ``V`` (r x D).
``E`` end (once): keyframe count u32 (a stream cut at a record boundary is detected).

Entropy coding is lossless and chosen per record from :data:`CODERS` (``raw``, ``zlib``, ``lzma``,
``ac``: our adaptive binary arithmetic coder, see :mod:`codec.promptus.entropy`); the writer keeps the
smallest. Every problem found while reading (bad magic, unknown version, CRC mismatch, truncation,
inconsistent fields) raises :class:`abr.errors.InputError` naming the file and the record.

A CRC only catches accidents, so the reader validates too: every header field is checked
against :data:`LIMITS` (stated in the message) before anything is allocated, each record's
decoded size is computed from checked fields and bounded before decoding (decompressors stop
at that size, see :mod:`codec.promptus.entropy`), the keyframe count is bounded by the bytes
that could hold it, and factors are reshaped only after their sizes are checked. A stream the
reader accepts is a valid stream: it re-encodes to one that decodes to the same content.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from abr.errors import InputError
from abr.io import write_bytes_atomic
from codec.promptus.entropy import CODERS, decode_bytes, encode_bytes
from codec.promptus.quant import QParams, QuantFactors

__all__ = [
    "LIMITS",
    "MAGIC",
    "VERSION",
    "StreamHeader",
    "KeyframeRecord",
    "LatentRecord",
    "Stream",
    "encode_stream",
    "decode_stream_bytes",
    "write_stream",
    "read_stream",
    "CODERS",
]

MAGIC = b"PRMT"
VERSION = 1
_REC_HEAD = struct.Struct("<BI")
_CRC = struct.Struct("<I")
_HDR_FIXED = struct.Struct("<HHBHHHHHHdQII")
_KF_FIXED = struct.Struct("<IHHffff")
_LAT_FIXED = struct.Struct("<HHHHff")
_LATF_FIXED = struct.Struct("<HHHH")
#: Bounds of the header fields a reader accepts (a stream beyond them is refused before any
#: allocation): frame side, latent and prompt elements, rank, frames, fps.
LIMITS = {
    "frame_side": 16384,
    "latent_elements": 1 << 22,
    "prompt_elements": 1 << 22,
    "factor_bytes": 1 << 22,
    "rank": 4096,
    "frames": 1 << 24,
    "fps": 1000.0,
}
_MIN_KF_RECORD = _REC_HEAD.size + _KF_FIXED.size + 1 + _CRC.size  # a keyframe record holds at least this


@dataclass(frozen=True, slots=True)
class StreamHeader:
    """What a decoder needs before the first keyframe.

    :param generator: generator name (``GeneratorConfig.name``).
    :param fingerprint: 16 hex digits of the generator's weights (``PromptusGenerator.fingerprint``).
    :param receiver: receiver spec the prompts were fitted through (``promptus``, ``promptmobile-...``).
    :param width: frame width in pixels; ``height`` likewise.
    :param latent_shape: ``(C, h, w)`` of the start latents.
    :param prompt_shape: ``(L, D)`` of a prompt.
    :param rank: nominal rank of the stream; ``interval``: keyframe interval N in frames.
    :param fps: frame rate; ``seed``: seed of the shared noise.
    :param n_frames: frames in the video; ``n_keyframes``: keyframe records that follow.
    """

    generator: str
    fingerprint: str
    receiver: str
    width: int
    height: int
    latent_shape: tuple[int, int, int]
    prompt_shape: tuple[int, int]
    rank: int
    interval: int
    fps: float
    seed: int
    n_frames: int
    n_keyframes: int


@dataclass(frozen=True, eq=False)
class LatentRecord:
    """Frame 0's latent: uint8 ``(1, C, h, w)`` with its quantization parameters, or float32 with ``qp=None``
    (record ``F``: the official code's float32 ``init.pth``, 4 bytes per element)."""

    q: np.ndarray
    qp: QParams | None

    @property
    def is_float32(self) -> bool:
        return self.qp is None


@dataclass(frozen=True, eq=False, kw_only=True)
class KeyframeRecord(QuantFactors):
    """One keyframe: its uint8 factors (:class:`QuantFactors`), its frame index and the length
    of the segment it closes."""

    frame: int
    length: int

    @property
    def raw_bytes(self) -> int:
        """SPEC's payload: factor bytes plus 16 bytes of scales and zero points."""
        return int(self.u.size + self.v.size + 16)


@dataclass(frozen=True, eq=False)
class Stream:
    """A decoded stream, plus the on-wire size of every record (for ladders and reports)."""

    header: StreamHeader
    latent: LatentRecord
    keyframes: tuple[KeyframeRecord, ...]
    header_bytes: int = 0
    latent_bytes: int = 0
    keyframe_bytes: tuple[int, ...] = ()
    end_bytes: int = 0
    factor_coded_bytes: tuple[int, ...] = ()

    @property
    def factor_raw_bytes(self) -> int:
        """Uncoded factor bytes of all keyframes (SPEC's payload less its 16 bytes of parameters)."""
        return int(sum(k.u.size + k.v.size for k in self.keyframes))

    @property
    def entropy_gain(self) -> float:
        """Fraction of the factor bytes saved by entropy coding (0 when stored raw)."""
        raw = self.factor_raw_bytes
        return 1.0 - sum(self.factor_coded_bytes) / raw if raw else 0.0

    @property
    def total_bytes(self) -> int:
        return 6 + self.header_bytes + self.latent_bytes + sum(self.keyframe_bytes) + self.end_bytes


# ---------------------------------------------------------------------------- writing
def _str(text: str, width: str) -> bytes:
    data = text.encode("utf-8")
    limit = 255 if width == "B" else 65535
    if len(data) > limit:
        raise ValueError(f"string too long for the bitstream ({len(data)} > {limit} bytes): {text[:40]!r}...")
    return struct.pack("<" + width, len(data)) + data


def _record(tag: bytes, payload: bytes) -> bytes:
    head = _REC_HEAD.pack(tag[0], len(payload))
    return head + payload + _CRC.pack(zlib.crc32(head + payload) & 0xFFFFFFFF)


def _coded(data: bytes, coder: str, model: str) -> bytes:
    cid, blob = encode_bytes(data, coder, model)
    return struct.pack("<B", cid) + blob


def _header_payload(h: StreamHeader) -> bytes:
    fp = bytes.fromhex(h.fingerprint) if h.fingerprint else b"\0" * 8
    if len(fp) != 8:
        raise ValueError(f"fingerprint must be 16 hex digits, got {h.fingerprint!r}")
    c, lh, lw = h.latent_shape
    return (
        _str(h.generator, "B") + fp + _str(h.receiver, "H")
        + _HDR_FIXED.pack(h.width, h.height, c, lh, lw, h.prompt_shape[0], h.prompt_shape[1], h.rank, h.interval,
                          float(h.fps), int(h.seed), h.n_frames, h.n_keyframes)
    )  # fmt: skip


def encode_stream(
    header: StreamHeader, latent: LatentRecord, keyframes: list[KeyframeRecord] | tuple[KeyframeRecord, ...],
    coder: str = "best",
) -> tuple[bytes, list[int]]:
    """Serialize a stream; returns ``(bytes, on-wire size of each record in order H, L, K..., E)``."""
    if len(keyframes) != header.n_keyframes:
        raise ValueError(f"header announces {header.n_keyframes} keyframes, got {len(keyframes)}")
    parts = [_record(b"H", _header_payload(header))]
    if latent.qp is None:
        f = np.ascontiguousarray(latent.q, dtype="<f4")
        if not np.isfinite(f).all():
            raise ValueError("the float32 first-frame latent holds non-finite values")
        shape = tuple(f.shape) if f.ndim == 4 else (1, *f.shape)
        parts.append(_record(b"F", _LATF_FIXED.pack(*shape) + _coded(f.tobytes(), coder, "latent-f32")))
    else:
        q = np.ascontiguousarray(latent.q, dtype=np.uint8)
        shape = tuple(q.shape) if q.ndim == 4 else (1, *q.shape)
        parts.append(_record(b"L", _LAT_FIXED.pack(*shape, latent.qp.scale, latent.qp.zero_point)
                             + _coded(q.tobytes(), coder, "latent")))
    L, D = header.prompt_shape
    for kf in keyframes:
        if kf.u.shape[0] != L or kf.v.shape[1] != D or kf.u.shape[1] != kf.v.shape[0]:
            raise ValueError(
                f"keyframe {kf.frame}: factor shapes {kf.u.shape}, {kf.v.shape} do not fit prompts {L}x{D}"
            )
        fixed = _KF_FIXED.pack(kf.frame, kf.length, kf.rank, kf.u_q.scale, kf.u_q.zero_point,
                               kf.v_q.scale, kf.v_q.zero_point)
        data = np.ascontiguousarray(kf.u, np.uint8).tobytes() + np.ascontiguousarray(kf.v, np.uint8).tobytes()
        parts.append(_record(b"K", fixed + _coded(data, coder, f"factors:{L}:{kf.rank}:{D}")))
    parts.append(_record(b"E", struct.pack("<I", len(keyframes))))
    return MAGIC + struct.pack("<H", VERSION) + b"".join(parts), [len(p) for p in parts]


def write_stream(
    path: str | os.PathLike[str], header: StreamHeader, latent: LatentRecord, keyframes: list[KeyframeRecord],
    coder: str = "best",
) -> list[int]:
    """Write a stream atomically; returns the on-wire size of each record."""
    data, sizes = encode_stream(header, latent, keyframes, coder)
    write_bytes_atomic(path, data)
    return sizes


# ---------------------------------------------------------------------------- reading
class _Reader:
    def __init__(self, data: bytes, source: object):
        self.data = data
        self.pos = 0
        self.source = source
        self.tag = b""  # tag of the last record read

    def fail(self, what: str, msg: str) -> InputError:
        return InputError(f"corrupt Promptus stream: {what}: {msg}", path=self.source)

    def record(self, expect: bytes, what: str, alternative: bytes = b"") -> bytes:
        """The payload of the next record, whose tag must be ``expect`` (or ``alternative``); see :attr:`tag`."""
        if self.pos + _REC_HEAD.size > len(self.data):
            raise self.fail(what, f"stream ends at byte {len(self.data)} (truncated before this record)")
        tag, n = _REC_HEAD.unpack_from(self.data, self.pos)
        if bytes([tag]) not in (expect, alternative or expect):
            alt = f" (or {alternative.decode()!r})" if alternative else ""
            raise self.fail(what, f"expected record {expect.decode()!r}, found tag {tag:#04x} at byte {self.pos}{alt}")
        self.tag = bytes([tag])
        end = self.pos + _REC_HEAD.size + n
        if end + _CRC.size > len(self.data):
            raise self.fail(what, f"record of {n} bytes at byte {self.pos} is truncated (stream has {len(self.data)})")
        body = self.data[self.pos : end]
        (crc,) = _CRC.unpack_from(self.data, end)
        if zlib.crc32(body) & 0xFFFFFFFF != crc:
            raise self.fail(what, f"checksum mismatch at byte {self.pos} (data damaged)")
        self.pos = end + _CRC.size
        return body[_REC_HEAD.size :]


class _Payload:
    def __init__(self, data: bytes, reader: _Reader, what: str):
        self.data, self.pos, self.reader, self.what = data, 0, reader, what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise self.reader.fail(self.what, "record shorter than its fields")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, st: struct.Struct) -> tuple:
        return st.unpack(self.take(st.size))

    def string(self, width: str) -> str:
        (n,) = struct.unpack("<" + width, self.take(struct.calcsize("<" + width)))
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise self.reader.fail(self.what, "string field is not UTF-8") from None

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)


def _qparams(scale: float, zp: float, r: _Reader, what: str) -> QParams:
    try:
        return QParams(float(scale), float(zp))
    except ValueError as exc:
        raise r.fail(what, str(exc)) from None


def _decoded(p: _Payload, expected: int, model: str, coded: list[int] | None = None) -> np.ndarray:
    (cid,) = p.unpack(struct.Struct("<B"))
    blob = p.rest()
    if coded is not None:
        coded.append(len(blob))
    try:
        data = decode_bytes(cid, blob, expected, model)
    except ValueError as exc:
        raise p.reader.fail(p.what, str(exc)) from None
    return np.frombuffer(data, dtype=np.uint8)


def _check_header(r: _Reader, w: int, h: int, latent: int, pl: int, pd: int, rank: int, fps: float,
                  n_frames: int, n_kf: int) -> None:  # fmt: skip
    """Every size the header declares within :data:`LIMITS`, before anything is allocated."""
    checks = (
        (max(w, h) <= LIMITS["frame_side"], f"frame size {w}x{h} (limit {LIMITS['frame_side']} per side)"),
        (latent <= LIMITS["latent_elements"], f"latent of {latent} elements (limit {LIMITS['latent_elements']})"),
        (pl * pd <= LIMITS["prompt_elements"], f"prompt {pl}x{pd} (limit {LIMITS['prompt_elements']} elements)"),
        (rank <= LIMITS["rank"], f"rank {rank} (limit {LIMITS['rank']})"),
        (math.isfinite(fps) and fps <= LIMITS["fps"], f"fps {fps} (limit {LIMITS['fps']:g})"),
        (n_frames <= LIMITS["frames"], f"{n_frames} frames (limit {LIMITS['frames']})"),
        (n_kf <= n_frames, f"{n_kf} keyframes for {n_frames} frames"),
        (n_kf * _MIN_KF_RECORD <= len(r.data), f"{n_kf} keyframes cannot fit in {len(r.data)} bytes"),
    )
    for ok, what in checks:
        if not ok:
            raise r.fail("header record", what)


def decode_stream_bytes(data: bytes, source: object = "<stream>") -> Stream:
    """Parse and verify a whole stream held in memory."""
    r = _Reader(data, source)
    if len(data) < 6:
        raise r.fail("file header", f"only {len(data)} bytes")
    if data[:4] != MAGIC:
        raise r.fail("file header", f"bad magic {data[:4]!r} (not a Promptus stream)")
    (version,) = struct.unpack_from("<H", data, 4)
    if version != VERSION:
        raise InputError(f"Promptus stream version {version}; this promptabr reads version {VERSION}", path=source)
    r.pos = 6
    sizes = []
    start = r.pos
    p = _Payload(r.record(b"H", "header record"), r, "header record")
    sizes.append(r.pos - start)
    gen = p.string("B")
    fp = p.take(8).hex()
    rec = p.string("H")
    w, h, c, lh, lw, pl, pd, rank, interval, fps, seed, n_frames, n_kf = p.unpack(_HDR_FIXED)
    if p.pos != len(p.data):
        raise r.fail("header record", "unexpected trailing bytes")
    if min(w, h, c, lh, lw, pl, pd, rank, interval, n_frames, n_kf) < 1 or not fps > 0:
        raise r.fail("header record", "zero or negative field")
    _check_header(r, w, h, c * lh * lw, pl, pd, rank, fps, n_frames, n_kf)
    header = StreamHeader(gen, fp, rec, w, h, (c, lh, lw), (pl, pd), rank, interval, fps, seed, n_frames, n_kf)

    start = r.pos
    p = _Payload(r.record(b"L", "latent record", alternative=b"F"), r, "latent record")
    sizes.append(r.pos - start)
    f32 = r.tag == b"F"
    if f32:
        b, lc, llh, llw = p.unpack(_LATF_FIXED)
    else:
        b, lc, llh, llw, scale, zp = p.unpack(_LAT_FIXED)
    if (b, lc, llh, llw) != (1, c, lh, lw):
        raise r.fail("latent record", f"latent shape {(b, lc, llh, llw)} does not match the header {(1, c, lh, lw)}")
    if f32:
        z = _decoded(p, 4 * c * lh * lw, "latent-f32").view("<f4").astype(np.float32).reshape(1, c, lh, lw)
        if not np.isfinite(z).all():
            raise r.fail("latent record", "float32 latent holds non-finite values")
        latent = LatentRecord(z, None)
    else:
        q = _decoded(p, c * lh * lw, "latent").reshape(1, c, lh, lw)
        latent = LatentRecord(q, _qparams(scale, zp, r, "latent record"))

    kfs: list[KeyframeRecord] = []
    coded: list[int] = []
    last = -1
    for i in range(n_kf):
        what = f"keyframe record {i + 1} of {n_kf}"
        start = r.pos
        p = _Payload(r.record(b"K", what), r, what)
        sizes.append(r.pos - start)
        frame, length, krank, us, uz, vs, vz = p.unpack(_KF_FIXED)
        if frame <= last or frame >= n_frames or length < 1 or krank < 1 or frame - length != last:
            raise r.fail(what, f"frame {frame} with segment length {length} does not follow keyframe {last}")
        if krank > LIMITS["rank"] or (pl + pd) * krank > LIMITS["factor_bytes"]:
            raise r.fail(what, f"rank {krank} exceeds the limits (rank <= {LIMITS['rank']}, "
                               f"(L + D) x rank <= {LIMITS['factor_bytes']} bytes)")  # fmt: skip
        body = _decoded(p, (pl + pd) * krank, f"factors:{pl}:{krank}:{pd}", coded)
        u = body[: pl * krank].reshape(pl, krank)
        v = body[pl * krank :].reshape(krank, pd)
        u_q, v_q = _qparams(us, uz, r, what), _qparams(vs, vz, r, what)
        kfs.append(KeyframeRecord(u, v, u_q, v_q, frame=frame, length=length))
        last = frame
    if last != n_frames - 1:
        raise r.fail("keyframe records", f"last keyframe is frame {last}, the video has {n_frames} frames")
    start = r.pos
    p = _Payload(r.record(b"E", "end record"), r, "end record")
    end_size = r.pos - start
    (count,) = p.unpack(struct.Struct("<I"))
    if count != n_kf:
        raise r.fail("end record", f"counts {count} keyframes, the header {n_kf}")
    if r.pos != len(data):
        raise r.fail("end record", f"{len(data) - r.pos} unexpected bytes after the end record")
    return Stream(header, latent, tuple(kfs), sizes[0], sizes[1], tuple(sizes[2:]), end_size, tuple(coded))


def read_stream(path: str | os.PathLike[str]) -> Stream:
    """Read and verify a stream file; :class:`InputError` names the file and the damaged record."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("stream file not found", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read stream ({exc.strerror or exc})", path=path) from None
    return decode_stream_bytes(data, source=path)

