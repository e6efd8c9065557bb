"""Promptus bitstream: round trip, entropy coders, and every kind of damage stopping with InputError."""

from __future__ import annotations

import struct
from dataclasses import replace

import numpy as np
import pytest

from abr.errors import InputError
from codec.promptus.bitstream import (
    MAGIC,
    KeyframeRecord,
    LatentRecord,
    StreamHeader,
    decode_stream_bytes,
    encode_stream,
    read_stream,
    write_stream,
)
from codec.promptus.entropy import CODERS, ac_decode, ac_encode, decode_bytes, encode_bytes
from codec.promptus.quant import QParams

L, D = 8, 32


def _stream(n_frames: int = 12, interval: int = 5, rank: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    header = StreamHeader("tiny", "0123456789abcdef", "promptus", 64, 64, (4, 8, 8), (L, D), rank, interval,
                          29.97, 88, n_frames, 0)
    latent = LatentRecord(rng.integers(0, 256, (1, 4, 8, 8), dtype=np.uint8), QParams(0.02, 120.5))
    frames = list(range(0, n_frames, interval))
    if frames[-1] != n_frames - 1:
        frames.append(n_frames - 1)
    kfs = []
    for i, f in enumerate(frames):
        u = np.clip(rng.normal(128, 30, (L, rank)), 0, 255).astype(np.uint8)
        v = np.clip(rng.normal(128, 30, (rank, D)), 0, 255).astype(np.uint8)
        kfs.append(KeyframeRecord(u, v, QParams(0.01, 3.0), QParams(0.5, -7.25), frame=f,
                                  length=1 if i == 0 else f - frames[i - 1]))
    return replace(header, n_keyframes=len(kfs)), latent, kfs


@pytest.mark.parametrize("coder", ["raw", "zlib", "lzma", "ac", "best"])
def test_round_trip(tmp_path, coder):
    header, latent, kfs = _stream()
    sizes = write_stream(tmp_path / "s.prmt", header, latent, kfs, coder=coder)
    got = read_stream(tmp_path / "s.prmt")
    assert got.header == header
    assert np.array_equal(got.latent.q, latent.q) and got.latent.qp == latent.qp
    assert len(got.keyframes) == len(kfs) == 4
    for a, b in zip(got.keyframes, kfs):
        assert (a.frame, a.length) == (b.frame, b.length)
        assert np.array_equal(a.u, b.u) and np.array_equal(a.v, b.v)
        assert a.u_q == b.u_q and a.v_q == b.v_q
    assert got.total_bytes == (tmp_path / "s.prmt").stat().st_size == 6 + sum(sizes)
    assert list(got.keyframe_bytes) == sizes[2:-1]
    assert [k.length for k in got.keyframes] == [1, 5, 5, 1]  # the last segment is shorter
    assert got.factor_raw_bytes == 4 * (L + D) * 3
    if coder == "raw":
        assert got.entropy_gain == 0.0 and sum(got.factor_coded_bytes) == got.factor_raw_bytes


def test_entropy_coding_beats_raw_on_peaked_factors():
    # SD-Turbo-sized keyframe (77 x 4 and 4 x 1024): normal(128, 30) bytes carry about 6.9 bits each
    rng = np.random.default_rng(3)
    data = np.clip(rng.normal(128, 30, 77 * 4 + 4 * 1024), 0, 255).astype(np.uint8).tobytes()
    cid, blob = encode_bytes(data, "best", "factors:77:4:1024")
    assert len(blob) < 0.9 * len(data)
    assert decode_bytes(cid, blob, len(data), "factors:77:4:1024") == data
    cid_ac, blob_ac = encode_bytes(data, "ac", "factors:77:4:1024")
    assert len(blob_ac) < 0.9 * len(data)


@pytest.mark.parametrize("data", [b"", b"\x00" * 1000, bytes(range(256)) * 3, b"\xff" * 7 + b"\x00"])
def test_arithmetic_coder_round_trip_edge_cases(data):
    assert ac_decode(ac_encode(data), len(data)) == data


def test_arithmetic_coder_contexts_and_gain():
    rng = np.random.default_rng(1)
    r = 4
    rows = [np.clip(rng.normal(128, s, D), 0, 255) for s in (2, 10, 40, 80)]
    data = rng.integers(0, 256, L * r, dtype=np.uint8).tobytes() + np.concatenate(rows).astype(np.uint8).tobytes()
    model = f"factors:{L}:{r}:{D}"
    blob = ac_encode(data, model)
    assert ac_decode(blob, len(data), model) == data
    assert len(ac_encode(data * 20, "")) < len(data) * 20  # adapts to a peaked order-0 distribution


def test_every_coder_id_decodes_and_length_is_checked():
    data = bytes(np.random.default_rng(2).integers(0, 40, 500, dtype=np.uint8))
    for name, cid in CODERS.items():
        got_id, blob = encode_bytes(data, name)
        assert got_id == cid and decode_bytes(cid, blob, len(data)) == data
        if cid in (0, 1, 2):
            with pytest.raises(ValueError, match="expected 499"):
                decode_bytes(cid, blob, 499)
    with pytest.raises(ValueError, match="unknown entropy coder id"):
        decode_bytes(9, b"", 0)


def _damage_cases(data: bytes, sizes: list[int]):
    starts = np.cumsum([6] + sizes[:-1])
    names = ["header record", "latent record"] + [f"keyframe record {i + 1} of {len(sizes) - 3}"
                                                   for i in range(len(sizes) - 3)] + ["end record"]
    for start, size, name in zip(starts, sizes, names):
        mid = int(start + size // 2)
        yield f"flip in {name}", data[:mid] + bytes([data[mid] ^ 0x5A]) + data[mid + 1 :], name
        yield f"cut in {name}", data[:mid], name


def test_damage_anywhere_is_an_input_error_naming_the_record(tmp_path):
    header, latent, kfs = _stream()
    data, sizes = encode_stream(header, latent, kfs, coder="best")
    for label, bad, name in _damage_cases(data, sizes):
        with pytest.raises(InputError, match=name) as info:
            decode_stream_bytes(bad, source="clip.prmt")
        assert str(info.value).startswith("clip.prmt: corrupt Promptus stream"), label
    # a stream cut exactly at a record boundary (the end record lost)
    with pytest.raises(InputError, match="end record: stream ends"):
        decode_stream_bytes(data[: len(data) - sizes[-1]])
    # every possible truncation point fails cleanly (never another exception)
    for cut in range(0, len(data), 97):
        with pytest.raises(InputError):
            decode_stream_bytes(data[:cut])
    with pytest.raises(InputError, match="unexpected bytes after the end record"):
        decode_stream_bytes(data + b"x")


def test_bad_magic_version_and_missing_file(tmp_path):
    header, latent, kfs = _stream()
    data, _ = encode_stream(header, latent, kfs)
    with pytest.raises(InputError, match="bad magic"):
        decode_stream_bytes(b"RIFF" + data[4:])
    with pytest.raises(InputError, match="version 7; this promptabr reads version 1"):
        decode_stream_bytes(MAGIC + struct.pack("<H", 7) + data[6:])
    with pytest.raises(InputError, match="stream file not found"):
        read_stream(tmp_path / "none.prmt")


def test_consistent_crc_but_wrong_fields_are_caught():
    header, latent, kfs = _stream()
    kfs[2] = replace(kfs[2], frame=kfs[2].frame + 1)
    data, _ = encode_stream(header, latent, kfs)
    with pytest.raises(InputError, match="keyframe record 3 of 4: frame 11 with segment length 5 does not follow"):
        decode_stream_bytes(data)
    with pytest.raises(ValueError, match="announces"):
        encode_stream(header, latent, kfs[:2])
