"""The Promptus bitstream pinned by an independent writer of the documented layout.

``build`` below writes a stream byte by byte from the layout in the module docstring (magic,
u16 version, records ``tag u8 | length u32 | payload | CRC32``; coder 0 = raw), so every field
can be set out of range with a valid CRC. The reader must reject each one with an
InputError naming the record, and the module's writer must produce the same bytes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace

import numpy as np
import pytest

from abr.errors import InputError
from codec.promptus.bitstream import (
    KeyframeRecord,
    LatentRecord,
    StreamHeader,
    decode_stream_bytes,
    encode_stream,
)
from codec.promptus.quant import QParams

L, D, C, LH, LW = 2, 3, 1, 2, 2


def rec(tag: bytes, payload: bytes) -> bytes:
    head = tag + struct.pack("<I", len(payload))
    return head + payload + struct.pack("<I", zlib.crc32(head + payload))


def header_payload(**kw) -> bytes:
    f = dict(gen=b"g", fp=bytes(range(8)), recv=b"promptus", w=16, h=8, c=C, lh=LH, lw=LW, pl=L, pd=D, rank=1,
             interval=2, fps=30.0, seed=7, n_frames=3, n_kf=2, extra=b"")  # fmt: skip
    f.update(kw)
    return (
        struct.pack("<B", len(f["gen"])) + f["gen"] + f["fp"] + struct.pack("<H", len(f["recv"])) + f["recv"]
        + struct.pack("<HHBHHHHHHdQII", f["w"], f["h"], f["c"], f["lh"], f["lw"], f["pl"], f["pd"], f["rank"],
                      f["interval"], f["fps"], f["seed"], f["n_frames"], f["n_kf"])
        + f["extra"]
    )  # fmt: skip


def latent_payload(shape=(1, C, LH, LW), scale=0.5, zp=3.0, data=None) -> bytes:
    data = bytes(range(C * LH * LW)) if data is None else data
    return struct.pack("<HHHHff", *shape, scale, zp) + b"\0" + data


def kf_payload(frame, length, rank=1, us=0.25, uz=1.0, vs=2.0, vz=-1.0, data=None) -> bytes:
    data = bytes(range(10, 10 + (L + D) * rank)) if data is None else data
    return struct.pack("<IHHffff", frame, length, rank, us, uz, vs, vz) + b"\0" + data


def build(version=1, header=None, latent=None, kfs=None, end=None, tags=b"HLKKE", tail=b"") -> bytes:
    kfs = [kf_payload(0, 1), kf_payload(2, 2)] if kfs is None else kfs
    payloads = [header_payload() if header is None else header, latent_payload() if latent is None else latent, *kfs,
                struct.pack("<I", len(kfs)) if end is None else end]  # fmt: skip
    body = b"".join(rec(bytes([t]), p) for t, p in zip(tags, payloads))
    return b"PRMT" + struct.pack("<H", version) + body + tail


def test_hand_built_stream_decodes_field_by_field():
    s = decode_stream_bytes(build())
    h = s.header
    assert (h.generator, h.fingerprint, h.receiver) == ("g", "0001020304050607", "promptus")
    assert (h.width, h.height, h.latent_shape, h.prompt_shape) == (16, 8, (C, LH, LW), (L, D))
    assert (h.rank, h.interval, h.fps, h.seed, h.n_frames, h.n_keyframes) == (1, 2, 30.0, 7, 3, 2)
    assert s.latent.q.shape == (1, C, LH, LW) and s.latent.q.ravel().tolist() == [0, 1, 2, 3]
    assert (s.latent.qp.scale, s.latent.qp.zero_point) == (0.5, 3.0)
    k0, k1 = s.keyframes
    assert (k0.frame, k0.length, k1.frame, k1.length, k1.rank) == (0, 1, 2, 2, 1)
    assert k1.u.ravel().tolist() == [10, 11] and k1.v.ravel().tolist() == [12, 13, 14]
    assert (k1.u_q.scale, k1.u_q.zero_point, k1.v_q.scale, k1.v_q.zero_point) == (0.25, 1.0, 2.0, -1.0)
    # record sizes: 5 bytes of tag + length, the payload, 4 of CRC
    assert s.header_bytes == 5 + len(header_payload()) + 4
    assert s.latent_bytes == 5 + 16 + 1 + 4 + 4
    assert s.keyframe_bytes == (5 + 24 + 1 + 5 + 4,) * 2
    assert s.end_bytes == 5 + 4 + 4
    assert s.total_bytes == len(build())
    assert s.factor_coded_bytes == (5, 5)


def test_raw_size_formula():
    # SPEC's keyframe payload: L x r + r x D factor bytes plus 16 bytes of scales and zero points
    u, v = np.zeros((8, 3), np.uint8), np.zeros((3, 32), np.uint8)
    k = KeyframeRecord(u, v, QParams(1.0, 0.0), QParams(1.0, 0.0), frame=0, length=1)
    assert k.raw_bytes == 8 * 3 + 3 * 32 + 16
    s = decode_stream_bytes(build())
    assert s.factor_raw_bytes == 2 * (L + D)
    assert s.entropy_gain == 0.0  # raw coder: coded = raw


def test_entropy_gain_is_the_saved_fraction_of_factor_bytes():
    rank = 40
    kf = kf_payload(2, 3, rank=rank, data=b"")[:-1]  # fixed fields only
    blob = zlib.compress(b"\x07" * ((L + D) * rank), 9)
    hdr = header_payload(rank=rank, n_frames=3, n_kf=1)
    data = build(header=hdr, kfs=[kf + b"\x01" + blob], tags=b"HLKE")
    s = decode_stream_bytes(data)
    assert s.factor_coded_bytes == (len(blob),)
    assert s.entropy_gain == pytest.approx(1.0 - len(blob) / ((L + D) * rank))
    assert s.keyframes[0].u.ravel().tolist() == [7] * (L * rank)


def test_writer_produces_the_documented_bytes():
    s = decode_stream_bytes(build())
    header = StreamHeader("g", "0001020304050607", "promptus", 16, 8, (C, LH, LW), (L, D), 1, 2, 30.0, 7, 3, 2)
    data, sizes = encode_stream(header, LatentRecord(s.latent.q, s.latent.qp), list(s.keyframes), coder="raw")
    assert data == build()
    assert sizes == [s.header_bytes, s.latent_bytes, *s.keyframe_bytes, s.end_bytes]


@pytest.mark.parametrize(
    "field", ["w", "h", "c", "lh", "lw", "pl", "pd", "rank", "interval", "n_frames", "n_kf"]
)  # fmt: skip
def test_every_zero_header_field_is_rejected(field):
    with pytest.raises(InputError, match="header record: zero or negative field"):
        decode_stream_bytes(build(header=header_payload(**{field: 0})))


@pytest.mark.parametrize("fps", [0.0, -30.0, float("nan")])
def test_bad_fps_is_rejected(fps):
    with pytest.raises(InputError, match="header record: zero or negative field"):
        decode_stream_bytes(build(header=header_payload(fps=fps)))


def test_header_edges_are_valid():
    # every count at 1 is valid: one frame, one keyframe
    hdr = header_payload(w=1, h=1, interval=1, n_frames=1, n_kf=1)
    s = decode_stream_bytes(build(header=hdr, kfs=[kf_payload(0, 1)], tags=b"HLKE"))
    assert s.header.n_frames == 1 and len(s.keyframes) == 1
    s = decode_stream_bytes(build(header=header_payload(fps=1e-3)))
    assert s.header.fps == 1e-3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(version=2), "Promptus stream version 2; this promptabr reads version 1"),
        (dict(version=0), "version 0"),
        (dict(header=header_payload(extra=b"\0")), "header record: unexpected trailing bytes"),
        (dict(header=header_payload(gen=b"\xff\xfe")), "header record: string field is not UTF-8"),
        (dict(header=header_payload()[:-1]), "header record: record shorter than its fields"),
        (dict(tags=b"HXKKE"), "latent record: expected record 'L', found tag 0x58 at byte"),
        (dict(tags=b"LHKKE"), "header record: expected record 'H', found tag 0x4c at byte 6"),
        (dict(tags=b"HLKEE"), "keyframe record 2 of 2: expected record 'K'"),
        (dict(tags=b"HLKKK"), "end record: expected record 'E'"),
        (dict(latent=latent_payload(shape=(2, C, LH, LW))), "latent shape \\(2, 1, 2, 2\\) does not match the header"),
        (dict(latent=latent_payload(shape=(1, C, LH + 1, LW))), "latent record: latent shape"),
        (dict(latent=latent_payload(scale=0.0)), "latent record: invalid quantization parameters"),
        (dict(latent=latent_payload(data=b"\0")), "latent record"),
        (dict(kfs=[kf_payload(0, 1), kf_payload(2, 2, vs=-1.0)]), "keyframe record 2 of 2: invalid quantization"),
        (dict(kfs=[kf_payload(0, 1), kf_payload(2, 2, data=b"\0")]), "keyframe record 2 of 2"),
        (dict(end=struct.pack("<I", 3)), "end record: counts 3 keyframes, the header 2"),
        (dict(end=struct.pack("<H", 2)), "end record: record shorter than its fields"),
        (dict(tail=b"\0\0\0"), "end record: 3 unexpected bytes after the end record"),
    ],
)
def test_bad_fields_with_valid_crcs(kwargs, match):
    with pytest.raises(InputError, match=match):
        decode_stream_bytes(build(**kwargs))


@pytest.mark.parametrize(
    "kfs, match",
    [  # fmt: skip
        ([kf_payload(0, 1), kf_payload(0, 1)], "frame 0 with segment length 1 does not follow keyframe 0"),
        ([kf_payload(1, 1), kf_payload(2, 1)], "record 1 of 2: frame 1 with segment length 1 does not follow"),
        ([kf_payload(0, 1), kf_payload(3, 3)], "frame 3 with segment length 3"),  # beyond the last frame
        ([kf_payload(0, 1), kf_payload(2, 1)], "frame 2 with segment length 1 does not follow keyframe 0"),
        ([kf_payload(0, 0), kf_payload(2, 2)], "frame 0 with segment length 0"),
        ([kf_payload(0, 1), kf_payload(2, 2, rank=0, data=b"")], "record 2 of 2: frame 2 with segment length 2"),
        ([kf_payload(0, 1), kf_payload(1, 1)], "records: last keyframe is frame 1, the video has 3 frames"),
    ],
)  # fmt: skip
def test_keyframe_order_and_lengths(kfs, match):
    with pytest.raises(InputError, match=match):
        decode_stream_bytes(build(kfs=kfs))


def test_rank_may_differ_from_the_nominal_one():
    s = decode_stream_bytes(build(kfs=[kf_payload(0, 1, rank=2), kf_payload(2, 2, rank=1)]))
    assert [k.rank for k in s.keyframes] == [2, 1]


def test_truncation_and_damage():
    data = build()
    with pytest.raises(InputError, match="file header: only 5 bytes"):
        decode_stream_bytes(data[:5])
    with pytest.raises(InputError, match="bad magic b'PRMX'"):
        decode_stream_bytes(b"PRMX" + data[4:])
    end_len = 5 + 4 + 4
    with pytest.raises(InputError, match=f"end record: stream ends at byte {len(data) - end_len}"):
        decode_stream_bytes(data[:-end_len])
    with pytest.raises(InputError, match="end record: record of 4 bytes at byte .* is truncated"):
        decode_stream_bytes(data[:-1])
    bad = bytearray(data)
    bad[-6] ^= 1  # inside the end record's payload
    with pytest.raises(InputError, match="end record: checksum mismatch"):
        decode_stream_bytes(bytes(bad))
    with pytest.raises(InputError, match="header record: stream ends at byte 6"):
        decode_stream_bytes(data[:6])


def test_writer_rejects_what_it_cannot_write():
    s = decode_stream_bytes(build())
    header = StreamHeader("g", "0001020304050607", "promptus", 16, 8, (C, LH, LW), (L, D), 1, 2, 30.0, 7, 3, 2)
    lat = LatentRecord(s.latent.q, s.latent.qp)
    with pytest.raises(ValueError, match="string too long for the bitstream \\(256 > 255 bytes\\)"):
        encode_stream(replace(header, generator="x" * 256), lat, list(s.keyframes), coder="raw")
    encode_stream(replace(header, generator="x" * 255), lat, list(s.keyframes), coder="raw")  # the limit itself fits
    with pytest.raises(ValueError, match="string too long .* > 65535"):
        encode_stream(replace(header, receiver="r" * 65536), lat, list(s.keyframes), coder="raw")
    with pytest.raises(ValueError, match="fingerprint must be 16 hex digits"):
        encode_stream(replace(header, fingerprint="abcd"), lat, list(s.keyframes), coder="raw")
    blank = encode_stream(replace(header, fingerprint=""), lat, list(s.keyframes), coder="raw")[0]
    assert decode_stream_bytes(blank).header.fingerprint == "0" * 16
    bad = KeyframeRecord(np.zeros((L + 1, 1), np.uint8), np.zeros((1, D), np.uint8), QParams(1, 0), QParams(1, 0),
                         frame=2, length=2)  # fmt: skip
    with pytest.raises(ValueError, match="keyframe 2: factor shapes \\(3, 1\\), \\(1, 3\\) do not fit prompts 2x3"):
        encode_stream(header, lat, [s.keyframes[0], bad], coder="raw")
    with pytest.raises(ValueError, match="header announces 2 keyframes, got 1"):
        encode_stream(header, lat, [s.keyframes[0]], coder="raw")


def test_files_name_themselves_in_errors(tmp_path):
    from codec.promptus.bitstream import read_stream, write_stream

    s = decode_stream_bytes(build())
    header = StreamHeader("g", "0001020304050607", "promptus", 16, 8, (C, LH, LW), (L, D), 1, 2, 30.0, 7, 3, 2)
    path = tmp_path / "a.prmt"
    sizes = write_stream(path, header, LatentRecord(s.latent.q, s.latent.qp), list(s.keyframes))  # best coder
    back = read_stream(path)
    assert sizes == [back.header_bytes, back.latent_bytes, *back.keyframe_bytes, back.end_bytes]
    assert back.total_bytes == path.stat().st_size and back.keyframes[1].v.tolist() == s.keyframes[1].v.tolist()
    path.write_bytes(build()[:-1])
    with pytest.raises(InputError, match=f"^{path}: corrupt Promptus stream: end record"):
        read_stream(path)
    with pytest.raises(InputError, match=f"^{tmp_path / 'none'}: stream file not found$"):
        read_stream(tmp_path / "none")
    with pytest.raises(InputError, match=f"^{tmp_path}: cannot read stream \\(Is a directory\\)$"):
        read_stream(tmp_path)


def _error(data: bytes) -> str:
    """The message decoding ``data`` gives ('' if it decodes)."""
    try:
        decode_stream_bytes(data)
    except InputError as e:
        return str(e)
    return ""


HEADER = "<stream>: corrupt Promptus stream: header record: "


@pytest.mark.parametrize(
    "kw",
    [dict(w=16384), dict(h=16384), dict(c=4, lh=1024, lw=1024), dict(pl=2048, pd=2048), dict(rank=4096),
     dict(fps=1000.0), dict(n_frames=1 << 24)],
)  # fmt: skip
def test_header_fields_exactly_at_their_limits_pass_the_header_check(kw):
    # LIMITS: side 16384, latent and prompt 2**22 elements, rank 4096, 1000 fps, 2**24 frames; the
    # stream may fail later (its records do not match such a header), but not on the header
    assert not _error(build(header=header_payload(**kw))).startswith(HEADER)


@pytest.mark.parametrize(
    "kw, what",
    [
        (dict(w=16385), "frame size 16385x8 (limit 16384 per side)"),
        (dict(h=16385), "frame size 16x16385 (limit 16384 per side)"),
        (dict(c=4, lh=1024, lw=1025), "latent of 4198400 elements (limit 4194304)"),
        (dict(pl=4096, pd=2048), "prompt 4096x2048 (limit 4194304 elements)"),
        (dict(rank=4097), "rank 4097 (limit 4096)"),
        (dict(fps=1000.5), "fps 1000.5 (limit 1000)"),
        (dict(fps=float("inf")), "fps inf (limit 1000)"),
        (dict(n_frames=(1 << 24) + 1), "16777217 frames (limit 16777216)"),
        (dict(n_kf=4), "4 keyframes for 3 frames"),
    ],
)
def test_header_fields_over_their_limits_are_named_with_the_limit(kw, what):
    assert _error(build(header=header_payload(**kw))) == HEADER + what


def test_keyframe_count_must_fit_in_the_stream():
    # a keyframe record holds at least 5 (tag, length) + 24 (frame u32, length u16, rank u16, four
    # f32) + 1 (coder) + 4 (CRC) = 34 bytes; pad a stream to exactly k * 34 bytes
    base = len(build(header=header_payload(n_frames=1000, n_kf=2)))
    k = -(-base // 34)
    pad = b"\0" * (k * 34 - base)
    fits = build(header=header_payload(n_frames=1000, n_kf=k), tail=pad)
    assert len(fits) == k * 34 and not _error(fits).startswith(HEADER)
    over = build(header=header_payload(n_frames=1000, n_kf=k + 1), tail=pad)
    assert _error(over) == HEADER + f"{k + 1} keyframes cannot fit in {k * 34} bytes"


def test_an_unknown_coder_is_named_with_its_id():
    # coder ids are unsigned bytes: 200 is named as 200
    kf = kf_payload(2, 2, data=b"")[:-1] + b"\xc8" + bytes(L + D)
    msg = _error(build(kfs=[kf_payload(0, 1), kf]))
    assert msg == "<stream>: corrupt Promptus stream: keyframe record 2 of 2: unknown entropy coder id 200"


def test_writer_edges():
    s = decode_stream_bytes(build())
    header = StreamHeader("g", "0001020304050607", "promptus", 16, 8, (C, LH, LW), (L, D), 1, 2, 30.0, 7, 3, 2)
    lat3 = LatentRecord(s.latent.q[0], s.latent.qp)  # codes without the batch axis: written as batch 1
    data, _ = encode_stream(header, lat3, list(s.keyframes), coder="raw")
    assert data == build()
    # a receiver name longer than 32767 bytes still fits its u16 length field
    long = encode_stream(replace(header, receiver="r" * 40000), lat3, list(s.keyframes), coder="raw")[0]
    assert decode_stream_bytes(long).header.receiver == "r" * 40000
    # every coder round-trips the latent and the factors
    for coder in ("zlib", "lzma", "ac"):
        back = decode_stream_bytes(encode_stream(header, lat3, list(s.keyframes), coder=coder)[0])
        assert back.latent.q.tolist() == s.latent.q.tolist()
        assert [k.v.tolist() for k in back.keyframes] == [k.v.tolist() for k in s.keyframes]
    # the error names the first 40 characters of a string too long
    with pytest.raises(ValueError, match=r"\(300 > 255 bytes\): '" + "x" * 40 + r"'\.\.\.$"):
        encode_stream(replace(header, generator="x" * 300), lat3, list(s.keyframes), coder="raw")


def test_a_stream_cut_after_a_record_head_names_the_record_as_truncated():
    data = build()
    cut = data[: len(data) - 8]  # the end record's 5 head bytes remain, its payload and CRC do not
    assert _error(cut) == (
        f"<stream>: corrupt Promptus stream: end record: record of 4 bytes at byte {len(data) - 13} is truncated "
        f"(stream has {len(cut)})"
    )


CORRUPT = "<stream>: corrupt Promptus stream: "


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(version=65535), "<stream>: Promptus stream version 65535; this promptabr reads version 1"),
        (dict(latent=latent_payload()[:5]), CORRUPT + "latent record: record shorter than its fields"),
        (dict(latent=latent_payload(shape=(1, C, LH, LW + 1))),
         CORRUPT + "latent record: latent shape (1, 1, 2, 3) does not match the header (1, 1, 2, 2)"),
        (dict(kfs=[kf_payload(0, 1), kf_payload(2, 2, us=0.0)]),
         CORRUPT + "keyframe record 2 of 2: invalid quantization parameters scale=0.0 zero_point=1.0"),
        (dict(end=struct.pack("<I", 2**32 - 1)), CORRUPT + "end record: counts 4294967295 keyframes, the header 2"),
        # a keyframe rank over 4096 with tiny prompts (5 x 4097 factor bytes) is still over the limit
        (dict(kfs=[kf_payload(0, 1, rank=4097, data=b""), kf_payload(2, 2)]),
         CORRUPT + "keyframe record 1 of 2: rank 4097 exceeds the limits (rank <= 4096, "
         "(L + D) x rank <= 4194304 bytes)"),
    ],
)  # fmt: skip
def test_full_messages(kwargs, message):
    assert _error(build(**kwargs)) == message


def test_bad_magic_and_long_generator():
    assert _error(b"PRMX" + build()[4:]) == CORRUPT + "file header: bad magic b'PRMX' (not a Promptus stream)"
    # a generator name of 200 bytes: its u8 length is unsigned
    s = decode_stream_bytes(build(header=header_payload(gen=b"g" * 200)))
    assert s.header.generator == "g" * 200


@pytest.mark.parametrize(
    "pl, pd, rank, over",
    [
        (L, D, 4096, False),  # the rank limit itself
        (2048, 2048, 1024, False),  # (L + D) x rank = 4096 x 1024 = 2**22 factor bytes: the limit itself
        (2048, 2048, 1025, True),  # 4096 x 1025 = 4198400 > 2**22
    ],
)
def test_keyframe_factor_limits(pl, pd, rank, over):
    hdr = header_payload(pl=pl, pd=pd)
    msg = _error(build(header=hdr, kfs=[kf_payload(0, 1, rank=rank, data=b""), kf_payload(2, 2)]))
    assert ("exceeds the limits" in msg) == over, msg
    if over:
        assert msg.startswith(CORRUPT + f"keyframe record 1 of 2: rank {rank} exceeds the limits")


def test_writer_refuses_factors_whose_ranks_disagree():
    s = decode_stream_bytes(build())
    header = StreamHeader("g", "0001020304050607", "promptus", 16, 8, (C, LH, LW), (L, D), 1, 2, 30.0, 7, 3, 2)
    bad = KeyframeRecord(np.zeros((L, 2), np.uint8), np.zeros((1, D), np.uint8), QParams(1, 0), QParams(1, 0),
                         frame=2, length=2)  # fmt: skip
    with pytest.raises(ValueError, match=r"keyframe 2: factor shapes \(2, 2\), \(1, 3\) do not fit prompts 2x3"):
        encode_stream(header, LatentRecord(s.latent.q, s.latent.qp), [s.keyframes[0], bad], coder="raw")


# ---------------------------------------------------------------------------- the float32 latent record F
# payload: shape 4 x u16, coder u8 (0 = raw), C x LH x LW little-endian float32 values


F_VALUES = [0.5, -1.25, 3.0e30, -0.0]


def f32_payload(shape=(1, C, LH, LW), values=F_VALUES, coder=0, data=None) -> bytes:
    data = struct.pack(f"<{len(values)}f", *values) if data is None else data
    return struct.pack("<HHHH", *shape) + bytes([coder]) + data


def f32_stream(**kw) -> bytes:
    return build(latent=f32_payload(**kw), tags=b"HFKKE")


def _corrupt(data: bytes) -> str:
    with pytest.raises(InputError) as e:
        decode_stream_bytes(data)
    return str(e.value)


def test_hand_built_f32_record_decodes_bit_exact():
    s = decode_stream_bytes(f32_stream())
    z = s.latent.q
    assert s.latent.qp is None and s.latent.is_float32
    assert z.dtype == np.float32 and z.dtype.isnative and z.shape == (1, C, LH, LW)
    assert z.tobytes() == np.array(F_VALUES, np.float32).tobytes()  # -0.0 keeps its sign bit
    # 5 bytes of tag + length, 8 of shape, 1 coder id, 4 x 4 bytes of values, 4 of CRC
    assert s.latent_bytes == 5 + 8 + 1 + 16 + 4 == 34
    assert s.total_bytes == len(f32_stream())
    # the keyframes after it are read as before
    assert [k.frame for k in s.keyframes] == [0, 2] and s.keyframes[1].v.ravel().tolist() == [12, 13, 14]
    assert not decode_stream_bytes(build()).latent.is_float32


def test_writer_produces_the_documented_f32_bytes():
    s = decode_stream_bytes(build())
    header = StreamHeader("g", "0001020304050607", "promptus", 16, 8, (C, LH, LW), (L, D), 1, 2, 30.0, 7, 3, 2)
    z = np.array(F_VALUES, np.float32).reshape(1, C, LH, LW)
    want = f32_stream()
    for latent in (z, z[0], z.astype(np.float64), z.astype(">f4")):  # 3-D gets the batch axis; any float is cast
        data, sizes = encode_stream(header, LatentRecord(latent, None), list(s.keyframes), coder="raw")
        assert data == want
        assert sizes[1] == 34
    for coder in ("zlib", "lzma", "ac", "best"):
        data, _ = encode_stream(header, LatentRecord(z, None), list(s.keyframes), coder=coder)
        back = decode_stream_bytes(data)
        assert back.latent.q.tobytes() == z.tobytes() and back.latent.is_float32


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_f32_latents_are_refused_both_ways(bad):
    s = decode_stream_bytes(build())
    header = StreamHeader("g", "0001020304050607", "promptus", 16, 8, (C, LH, LW), (L, D), 1, 2, 30.0, 7, 3, 2)
    z = np.zeros((1, C, LH, LW), np.float32)
    z[0, 0, 1, 0] = bad
    with pytest.raises(ValueError, match=r"^the float32 first-frame latent holds non-finite values$"):
        encode_stream(header, LatentRecord(z, None), list(s.keyframes), coder="raw")
    values = [0.0, 0.0, bad, 0.0]
    assert _corrupt(f32_stream(values=values)) == (
        "<stream>: corrupt Promptus stream: latent record: float32 latent holds non-finite values"
    )


@pytest.mark.parametrize("shape", [(2, C, LH, LW), (1, C + 1, LH, LW), (1, C, LH + 1, LW), (1, C, LH, LW + 1)])
def test_f32_shape_must_match_the_header(shape):
    assert _corrupt(f32_stream(shape=shape)) == (
        f"<stream>: corrupt Promptus stream: latent record: latent shape {shape} does not match the header "
        f"{(1, C, LH, LW)}"
    )


def test_f32_values_must_fill_the_shape():
    pre = "<stream>: corrupt Promptus stream: latent record: "
    assert _corrupt(f32_stream(values=F_VALUES[:3])) == pre + "raw data decodes to 12 bytes, expected 16"
    assert _corrupt(f32_stream(values=F_VALUES + [1.0])) == pre + "raw data decodes to 20 bytes, expected 16"
    assert _corrupt(f32_stream(coder=9)) == pre + "unknown entropy coder id 9"
    short = build(latent=struct.pack("<HHH", 1, C, LH), tags=b"HFKKE")
    assert _corrupt(short) == pre + "record shorter than its fields"
    # a uint8 L payload (shape, scale 0.5, zero point 3, coder, 4 codes: 21 bytes) under tag F: after the
    # shape, the first byte of 0.5 (0x00) reads as the raw coder and the 12 bytes left cannot hold 4 floats
    assert _corrupt(build(tags=b"HFKKE")) == pre + "raw data decodes to 12 bytes, expected 16"


def test_f_is_accepted_only_in_place_of_l():
    data = f32_stream()
    pos_k = 6 + 5 + len(header_payload()) + 4 + 34  # the first K record
    head = "<stream>: corrupt Promptus stream: "
    assert _corrupt(build(latent=f32_payload(), tags=b"HFFKE", kfs=[f32_payload(), kf_payload(2, 2)])) == (
        head + f"keyframe record 1 of 2: expected record 'K', found tag 0x46 at byte {pos_k}"
    )
    assert _corrupt(build(tags=b"FLKKE")) == head + "header record: expected record 'H', found tag 0x46 at byte 6"
    x = bytearray(data)
    pos_l = 6 + 5 + len(header_payload()) + 4
    x[pos_l] = ord("X")
    assert _corrupt(bytes(x)) == head + f"latent record: expected record 'L', found tag 0x58 at byte {pos_l} (or 'F')"
