"""Video -> streams + ladder -> video, through the library and the two CLIs, on a tiny generator."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("av")

from abr.ladder import load_ladder  # noqa: E402
from codec import decode as decode_cli  # noqa: E402
from codec import encode as encode_cli  # noqa: E402
from codec.promptus.bitstream import read_stream  # noqa: E402
from codec.promptus.fit import REFERENCE, LossConfig  # noqa: E402
from codec.promptus.pipeline import (  # noqa: E402
    EncodeOptions,
    chunk_bytes,
    decode_frames,
    encode_video,
    write_video,
)
from codec.promptus.testing import save_tiny, tiny_generator  # noqa: E402

FAST_FIT = replace(REFERENCE, iters_first=3, iters=2, loss=LossConfig(mse=1.0, perceptual=0.0, l1_prompt=0.1))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _frames(n: int = 7, side: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side]
    out = [np.stack([(xx * 4 + 9 * t) % 256, (yy * 4) % 256, ((xx + yy) * 2 + 5 * t) % 256], axis=-1)
           for t in range(n)]
    return np.asarray(out, dtype=np.uint8)


def test_encode_writes_streams_and_a_ladder_that_adds_up(tmp_path):
    gen = tiny_generator(sample_size=8, prompt_len=8)
    frames = _frames()
    opts = EncodeOptions(ranks=(2, 1), interval=2, fit=FAST_FIT, chunk_s=0.3, lpips_net="none")
    res = encode_video("synthetic.mp4", gen, tmp_path, opts, frames=frames, fps=10.0, progress=False)
    lad = load_ladder(res.ladder_path)
    assert lad.n_rungs == 2 and [r.rank for r in lad.rungs] == [1, 2]  # ordered by bitrate
    assert all(r.family == "promptus" and r.decoder == "promptus" and r.interval == 2 for r in lad.rungs)
    assert lad.frames.tolist() == [3, 3, 1] and lad.duration_s.tolist() == pytest.approx([0.3, 0.3, 0.1])
    for j, r in enumerate(lad.rungs):
        stream = read_stream(res.streams[r.rank])
        assert lad.size_bytes[:, j].sum() == stream.total_bytes == res.streams[r.rank].stat().st_size
        assert lad.measured_kbps[:, j].mean() > 0
        assert [k.frame for k in stream.keyframes] == [0, 2, 4, 6]
    assert lad.metadata["quality_metric"].startswith("(1-ssim)/2")
    assert set(lad.metadata["per_rank"]) == {"1", "2"}
    assert (tmp_path / "summary.json").is_file()
    # chunk charging: keyframe k goes to the chunk of frame k-1 (it is needed to show frames k-N+1..k)
    stream = read_stream(res.streams[2])
    per = chunk_bytes(stream, 3, 3)
    kb = stream.keyframe_bytes
    # frames per chunk 3: keyframe 2 (frames 1-2) -> chunk 0; keyframes 4 (3-4) and 6 (5-6) -> chunk 1
    assert per.tolist() == [6 + stream.header_bytes + stream.latent_bytes + kb[0] + kb[1], kb[2] + kb[3],
                            stream.end_bytes]
    # decoding is deterministic and matches what was scored
    a = np.concatenate([f for _, f in decode_frames(stream, gen)])
    b = np.concatenate([f for _, f in decode_frames(stream, gen)])
    assert a.shape == frames.shape and np.array_equal(a, b)


def test_derived_ladder_and_lpips(tmp_path):
    from abr.errors import InputError

    gen = tiny_generator(sample_size=8, prompt_len=8)
    opts = EncodeOptions(ranks=(1, 2), interval=3, fit=FAST_FIT, derive=True, derive_iters=1, chunk_s=1.0,
                         lpips_net="alex")
    try:
        res = encode_video("synthetic", gen, tmp_path, opts, frames=_frames(4), fps=4.0, progress=False)
    except InputError as exc:
        pytest.skip(f"LPIPS weights unavailable here: {exc}")
    assert res.summary[1]["derived"] and not res.summary[2]["derived"]
    assert res.ladder.metadata["quality_metric"] == "lpips-alex"
    assert np.all(res.ladder.lpips_mean > 0)


def test_generator_mismatch_is_refused(tmp_path):
    gen = tiny_generator(sample_size=8, prompt_len=8)
    opts = EncodeOptions(ranks=(1,), interval=2, fit=FAST_FIT, chunk_s=1.0, lpips_net="none")
    res = encode_video("x", gen, tmp_path, opts, frames=_frames(3), fps=3.0, progress=False)
    other = tiny_generator(seed=9, sample_size=8, prompt_len=8)
    from abr.errors import InputError

    with pytest.raises(InputError, match="encoded with generator 'tiny'"):
        next(decode_frames(read_stream(res.streams[1]), other))
    assert next(decode_frames(read_stream(res.streams[1]), other, strict=False))[1].shape == (1, 64, 64, 3)


def test_clis_end_to_end_and_damaged_stream(tmp_path, capsys):
    model = save_tiny(tmp_path / "model", sample_size=8, prompt_len=8)
    video = tmp_path / "clip.mp4"
    write_video(_frames(6, side=80), video, fps=6.0, crf=0)
    out = tmp_path / "enc"
    rc = encode_cli.main([str(video), "--ranks", "1,2", "--interval", "2", "--model", str(model), "--out", str(out),
                          "--iters-first", "2", "--iters", "1", "--perceptual", "off", "--lpips", "none",
                          "--chunk-s", "1", "--device", "cpu", "--quiet"])
    assert rc == 0
    lad = load_ladder(out / "ladder.json")
    assert lad.frames.tolist() == [6] and lad.n_rungs == 2
    stream = out / "promptus_r2_n2.prmt"
    rc = decode_cli.main([str(stream), "--out", str(tmp_path / "r2.mp4"), "--model", str(model), "--device", "cpu",
                          "--quiet"])
    assert rc == 0
    from codec.video import probe

    info = probe(tmp_path / "r2.mp4")
    assert (info.width, info.height, info.frames) == (64, 64, 6)
    data = bytearray(stream.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.prmt"
    bad.write_bytes(bytes(data))
    capsys.readouterr()
    rc = decode_cli.main([str(bad), "--out", str(tmp_path / "bad.mp4"), "--model", str(model), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "bad.prmt" in err and "checksum mismatch" in err
    assert not (tmp_path / "bad.mp4").exists()
    rc = encode_cli.main([str(video), "--model", str(tmp_path / "missing"), "--out", str(out), "--quiet"])
    assert rc == 2 and "put a diffusers SD-Turbo folder there" in capsys.readouterr().err
