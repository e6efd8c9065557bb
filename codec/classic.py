"""Classic codecs through PyAV: H.264 (libx264), H.265 (libx265) and AV1 (SVT-AV1 / dav1d).

Encode one chunk as one closed GOP at a target bitrate (:func:`encode_chunk`: two-pass ABR,
one-pass ABR capped by a VBV, or one-pass ABR; SVT-AV1 its own VBR), decode it again
(:func:`decode_chunk`), and name the encoder build (:func:`encoder_version`). Measured ladders
(:mod:`codec.ladder`) are built from these; the module docstring there says why each setting.
PyAV imports on first use.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from abr.errors import unknown_name

__all__ = [
    "CODECS",
    "PRESETS",
    "RATE_CONTROLS",
    "ClassicCodec",
    "EncodedChunk",
    "decode_chunk",
    "encode_chunk",
    "encoder_version",
]


# --------------------------------------------------------------------------- codecs


@dataclass(frozen=True, slots=True)
class ClassicCodec:
    """A PyAV encoder/decoder pair used for measured ladders.

    :param name: family name, also the rung's ``decoder`` key (``h264``, ``h265``, ``av1``).
    :param encoder: PyAV/FFmpeg encoder name.
    :param decoder: PyAV/FFmpeg decoder name.
    :param default_preset: encoder speed preset used when none is given.
    :param params_option: name of the encoder's private-parameter option (``x265-params``...).
    :param fixed: private parameters added to every encode (logging, determinism, no info SEI).
    :param x26x: whether the x264/x265 rate controls (two-pass, VBV) apply; else the encoder's own.
    """

    name: str
    encoder: str
    decoder: str
    default_preset: str
    params_option: str
    fixed: str = ""
    x26x: bool = True

    def options(
        self,
        gop: int,
        kbps: float,
        chunk_s: float,
        preset: str | None,
        rate_control: str,
        stats: str | None = None,
        rc_pass: int = 0,
    ) -> dict[str, str]:
        """Encoder options for one chunk of ``gop`` frames at ``kbps``.

        :param rc_pass: two-pass rate control: 1 writes ``stats``, 2 reads it; 0 for one pass.
        """
        if self.x26x:
            params = [f"keyint={gop}", f"min-keyint={gop}", "scenecut=0", "open-gop=0"]
            if rate_control == "vbv":
                params += [f"vbv-maxrate={kbps:g}", f"vbv-bufsize={kbps * chunk_s:g}"]
            if rc_pass:
                params += [f"pass={rc_pass}", f"stats={stats}"]
            text = ":".join(params + ([self.fixed] if self.fixed else []))
        else:  # SVT-AV1: one keyframe, no scene detection, closed GOP
            text = f"keyint={gop}:scd=0:irefresh-type=2"
        return {"preset": str(preset or self.default_preset), self.params_option: text}


#: Classic codecs by family name (the CLI's ``--codec`` choices).
CODECS: dict[str, ClassicCodec] = {
    "h264": ClassicCodec("h264", "libx264", "h264", "medium", "x264-params"),
    "h265": ClassicCodec(
        "h265", "libx265", "hevc", "medium", "x265-params", fixed="log-level=error:info=0:pools=none:frame-threads=1"
    ),
    "av1": ClassicCodec("av1", "libsvtav1", "libdav1d", "8", "svtav1-params", x26x=False),
}

#: x264/x265 rate controls: ``2pass`` (two-pass ABR, the default), ``vbv`` (one-pass ABR capped at the
#: target with a one-chunk buffer), ``abr`` (one-pass ABR).
RATE_CONTROLS = ("2pass", "vbv", "abr")


#: Encoder speed presets each family accepts (x264/x265 names; SVT-AV1 numbers).
_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                 "placebo")  # fmt: skip
PRESETS: dict[str, tuple[str, ...]] = {
    "h264": _X26X_PRESETS,
    "h265": _X26X_PRESETS,
    "av1": tuple(str(i) for i in range(-1, 14)),
}


def _codec(name: str) -> ClassicCodec:
    if name not in CODECS:
        raise unknown_name("codec", name, CODECS)
    return CODECS[name]



# --------------------------------------------------------------------------- encode / decode


@dataclass(frozen=True, slots=True)
class EncodedChunk:
    """One chunk encoded at one rung: the packets and what they cost."""

    packets: tuple[bytes, ...]
    encode_s: float

    @property
    def size_bytes(self) -> int:
        return sum(len(p) for p in self.packets)


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def _to_yuv(frames: np.ndarray) -> list[Any]:
    import av

    return [
        av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24").reformat(format="yuv420p") for f in frames
    ]


def encode_chunk(
    frames: np.ndarray | list[Any],
    codec: str,
    kbps: float,
    fps: float,
    *,
    preset: str | None = None,
    rate_control: str = "2pass",
    extra_params: str = "",
) -> EncodedChunk:
    """Encode one chunk (uint8 RGB ``(N, H, W, 3)`` or yuv420p ``av.VideoFrame`` list) as one closed GOP.

    :param kbps: target bitrate, kbit/s.
    :param fps: frame rate (the rate control needs it).
    :param rate_control: one of :data:`RATE_CONTROLS` (x264/x265; SVT-AV1 uses its VBR whatever this says).
    :param extra_params: private encoder parameters appended last (they override the defaults).
    :returns: the packets of the final pass; ``encode_s`` counts every pass.
    """
    import tempfile

    spec = _codec(codec)
    if rate_control not in RATE_CONTROLS:
        raise unknown_name("rate control", rate_control, RATE_CONTROLS)
    yuv = _to_yuv(frames) if isinstance(frames, np.ndarray) else list(frames)
    if not yuv:
        raise ValueError("cannot encode an empty chunk")
    if codec == "av1":
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner unless told otherwise
    if not (spec.x26x and rate_control == "2pass"):
        packets, encode_s = _encode_pass(yuv, spec, kbps, fps, preset, rate_control, extra_params, None, 0)
        return EncodedChunk(packets=packets, encode_s=encode_s)
    with tempfile.TemporaryDirectory(prefix="promptabr-2pass-") as tmp:
        stats = os.path.join(tmp, "stats.log")  # x265 also writes stats.log.cutree next to it
        _, first_s = _encode_pass(yuv, spec, kbps, fps, preset, rate_control, extra_params, stats, 1)
        packets, second_s = _encode_pass(yuv, spec, kbps, fps, preset, rate_control, extra_params, stats, 2)
    return EncodedChunk(packets=packets, encode_s=first_s + second_s)


def _encode_pass(
    yuv: list[Any], spec: ClassicCodec, kbps: float, fps: float, preset: str | None, rate_control: str,
    extra_params: str, stats: str | None, rc_pass: int,
) -> tuple[tuple[bytes, ...], float]:  # fmt: skip
    """One encoder run over the chunk: its packets and wall time."""
    import av

    rate = _rate(fps)
    cc = av.CodecContext.create(spec.encoder, "w")
    cc.width, cc.height = yuv[0].width, yuv[0].height
    cc.pix_fmt = "yuv420p"
    cc.time_base = 1 / rate
    cc.framerate = rate
    cc.bit_rate = int(round(kbps * 1000))
    cc.gop_size = len(yuv)
    options = spec.options(len(yuv), kbps, len(yuv) / fps, preset, rate_control, stats, rc_pass)
    if extra_params:
        options[spec.params_option] += ":" + extra_params
    cc.options = options
    packets: list[bytes] = []
    t0 = time.perf_counter()
    for i, frame in enumerate(yuv):
        frame.pts = i
        packets += [bytes(p) for p in cc.encode(frame)]
    packets += [bytes(p) for p in cc.encode(None)]
    return tuple(packets), time.perf_counter() - t0


def decode_chunk(packets: tuple[bytes, ...] | list[bytes], codec: str) -> tuple[np.ndarray, float]:
    """Decode a chunk's packets; returns uint8 RGB frames ``(N, H, W, 3)`` and the decode time in seconds."""
    import av

    cc = av.CodecContext.create(_codec(codec).decoder, "r")
    out = []
    t0 = time.perf_counter()
    for data in packets:
        out += cc.decode(av.Packet(data))
    out += cc.decode(None)
    decode_s = time.perf_counter() - t0
    return np.stack([f.to_ndarray(format="rgb24") for f in out]), decode_s


_VERSION_CACHE: dict[str, str] = {}


def encoder_version(codec: str) -> str:
    """Encoder build string (x264/x265 from the info SEI they write; else libavcodec and PyAV versions)."""
    import re

    import av

    if codec not in _VERSION_CACHE:
        # x265's version is in its info SEI, which ladder encodes leave out (info=0): switch it back on here
        extra = "info=1" if codec == "h265" else ""
        blank = np.zeros((2, 64, 64, 3), np.uint8)
        enc = encode_chunk(blank, codec, 100.0, 25.0, rate_control="abr", extra_params=extra)
        text = b"".join(enc.packets[:2])
        found = re.search(rb"x264 - core \d+(?: r\d+ [0-9a-f]+)?", text) or re.search(
            rb"x265 \(build \d+\) - [^:\s]+", text
        )
        lavc = ".".join(map(str, av.library_versions["libavcodec"]))
        name = found.group(0).decode() if found else _codec(codec).encoder
        _VERSION_CACHE[codec] = f"{name} (libavcodec {lavc}, PyAV {av.__version__})"
    return _VERSION_CACHE[codec]
