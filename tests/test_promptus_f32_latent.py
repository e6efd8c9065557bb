"""Frame 0's latent as float32 (bitstream record ``F``), as the official code sends it (``init.pth``).

Streams with the uint8 ``L`` record are unchanged (``tests/test_pinned_bitstream.py`` pins their layout).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from abr.errors import InputError  # noqa: E402
from codec.promptus import official  # noqa: E402
from codec.promptus.bitstream import (  # noqa: E402
    KeyframeRecord,
    LatentRecord,
    StreamHeader,
    decode_stream_bytes,
    encode_stream,
    read_stream,
)
from codec.promptus.fit import REFERENCE, LossConfig  # noqa: E402
from codec.promptus.pipeline import EncodeOptions, decode_frames, encode_video  # noqa: E402
from codec.promptus.quant import QParams  # noqa: E402
from codec.promptus.receiver import get_receiver  # noqa: E402
from codec.promptus.testing import tiny_generator  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _stream(latent: LatentRecord, coder: str = "raw") -> bytes:
    rng = np.random.default_rng(0)
    header = StreamHeader("tiny", "0" * 16, "promptus", 16, 16, (4, 2, 2), (6, 8), 2, 1, 30.0, 88, 1, 1)
    kf = KeyframeRecord(rng.integers(0, 256, (6, 2), dtype=np.uint8), rng.integers(0, 256, (2, 8), dtype=np.uint8),
                        QParams(0.1, 128.0), QParams(0.05, 100.0), frame=0, length=1)
    return encode_stream(header, latent, [kf], coder=coder)[0]


@pytest.mark.parametrize("coder", ["raw", "zlib", "lzma", "ac", "best"])
def test_float32_latent_round_trips_bit_exact(coder):
    z = np.random.default_rng(1).standard_normal((1, 4, 2, 2)).astype(np.float32) * np.float32(3.7)
    data = _stream(LatentRecord(z, None), coder)
    s = decode_stream_bytes(data)
    assert s.latent.qp is None and s.latent.is_float32 and s.latent.q.dtype == np.float32
    assert s.latent.q.tobytes() == z.tobytes()
    assert data[6 + s.header_bytes] == ord("F")
    if coder == "raw":  # 5 + payload (4 x u16 shape, coder id, 16 x 4 bytes) + CRC
        assert s.latent_bytes == 5 + 8 + 1 + 64 + 4
    u8 = decode_stream_bytes(_stream(LatentRecord(np.zeros((1, 4, 2, 2), np.uint8), QParams(0.1, 3.0))))
    assert not u8.latent.is_float32 and u8.latent.q.dtype == np.uint8


def test_non_finite_float32_latents_are_refused_on_write_and_read():
    z = np.zeros((1, 4, 2, 2), np.float32)
    bad = z.copy()
    bad[0, 1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        _stream(LatentRecord(bad, None))
    # a stream whose F record carries a NaN under a valid CRC (written by something else)
    data = bytearray(_stream(LatentRecord(z + np.float32(0.5), None)))
    h_len = struct.unpack_from("<I", data, 7)[0]
    pos = 6 + 5 + h_len + 4  # start of the F record
    n = struct.unpack_from("<I", data, pos + 1)[0]
    first_value = pos + 5 + 8 + 1
    struct.pack_into("<f", data, first_value, float("nan"))
    struct.pack_into("<I", data, pos + 5 + n, zlib.crc32(bytes(data[pos : pos + 5 + n])) & 0xFFFFFFFF)
    with pytest.raises(InputError, match="latent record: float32 latent holds non-finite values"):
        decode_stream_bytes(bytes(data))


def test_unknown_latent_tag_names_both_kinds():
    data = bytearray(_stream(LatentRecord(np.zeros((1, 4, 2, 2), np.float32), None)))
    h_len = struct.unpack_from("<I", data, 7)[0]
    pos = 6 + 5 + h_len + 4
    data[pos] = ord("X")
    with pytest.raises(InputError, match=r"expected record 'L', found tag 0x58 at byte \d+ \(or 'F'\)"):
        decode_stream_bytes(bytes(data))


def test_official_import_keeps_init_pth_bit_exact(tmp_path):
    g = torch.Generator().manual_seed(0)
    folder = tmp_path / "rank2_interval2"
    folder.mkdir()
    for k in (0, 2):
        doc = {"U": torch.randint(0, 256, (6, 2), generator=g, dtype=torch.uint8),
               "V": torch.randint(0, 256, (2, 32), generator=g, dtype=torch.uint8),
               "U_scale": torch.tensor(0.02), "U_zero_point": torch.tensor(127.0),
               "V_scale": torch.tensor(0.1), "V_zero_point": torch.tensor(120.0)}
        torch.save(doc, folder / f"frame_{k:05d}.prompt")
    init = torch.randn(1, 4, 2, 2, generator=g)
    torch.save(init, folder / "init.pth")
    _, size32 = official.import_official(folder, tmp_path / "f.prmt")
    _, size8 = official.import_official(folder, tmp_path / "q.prmt", latent="uint8")
    s32, s8 = read_stream(tmp_path / "f.prmt"), read_stream(tmp_path / "q.prmt")
    assert s32.latent.q.tobytes() == init.numpy().tobytes() and s8.latent.q.dtype == np.uint8
    assert size32 > size8  # 16 float32 values vs 16 bytes plus 8 of quantization parameters
    with pytest.raises(InputError, match="float32 or uint8"):
        official.import_official(folder, tmp_path / "x.prmt", latent="fp16")


def test_a_float32_fit_carries_and_decodes_from_the_exact_anchor(tmp_path):
    gen = tiny_generator(sample_size=8, prompt_len=8)
    fit = replace(REFERENCE, iters_first=2, iters=1, first_latent="float32",
                  loss=LossConfig(mse=1.0, perceptual=0.0, l1_prompt=0.0))
    yy, xx = np.mgrid[0:64, 0:64]
    frames = np.stack([np.stack([(xx * 4 + 9 * t) % 256, (yy * 4) % 256, (xx + yy + 5 * t) % 256], -1)
                       for t in range(3)]).astype(np.uint8)
    opts = EncodeOptions(ranks=(2,), interval=2, fit=fit, chunk_s=1.0, lpips_net="none")
    res = encode_video("x", gen, tmp_path, opts, frames=frames, fps=3.0, progress=False)
    s = read_stream(res.streams[2])
    rec = get_receiver("promptus", gen)
    with torch.no_grad():
        z0 = rec.initial_latent(torch.from_numpy(frames[:1]).permute(0, 3, 1, 2).float().div(127.5).sub(1.0))
    assert s.latent.is_float32 and s.latent.q.tobytes() == z0.float().numpy().tobytes()
    decoded = np.concatenate([seg for _, seg in decode_frames(s, gen)])
    assert decoded.shape == (3, 64, 64, 3)
