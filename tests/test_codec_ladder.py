"""Measured classic-codec ladders: rate accuracy, round trips, resuming, clean interrupts, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from abr.errors import InputError
from abr.ladder import combine_ladders, concat_ladders, load_ladder
from codec.classic import CODECS, decode_chunk, encode_chunk, encoder_version
from codec.ladder import LadderBuildConfig, build_ladder, main
from codec.video import write_video


def moving_texture(n: int, size: int, seed: int = 0) -> np.ndarray:
    """A panning blocky texture over a drifting sinusoid: compressible but not trivial."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = rng.integers(0, 256, (size // 8, size // 8, 3)).repeat(8, 0).repeat(8, 1).astype(float)
    out = []
    for i in range(n):
        wave = 40 * (1 + np.sin(2 * np.pi * (4 * xx + 3 * yy - 0.05 * i)))[..., None]
        out.append(np.clip(0.6 * np.roll(base, 2 * i, axis=1) + wave, 0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.fixture()
def lpips_ok():
    from codec.metrics.weights import ENV_VAR, lpips_weights_path

    try:
        lpips_weights_path("alex")
    except InputError as exc:
        pytest.skip(f"LPIPS weights unavailable offline (set {ENV_VAR}): {exc}")


@pytest.fixture()
def tiny_clip(tmp_path) -> Path:
    """3.5 s of 64x64 video at 8 fps (28 frames): three 1-s chunks and a half-chunk tail."""
    path = tmp_path / "tiny.mp4"
    write_video(path, moving_texture(28, 64), fps=8, options={"crf": "10"})
    return path


TINY = LadderBuildConfig(codec="h265", kbps=(40.0, 160.0), chunk_s=1.0, resize=None, crop_square=False, batch_size=4)


def test_h265_two_pass_rate_within_5_percent_and_decodes():
    frames = moving_texture(50, 256)
    enc = encode_chunk(frames, "h265", 100.0, fps=25.0)  # default: two-pass ABR
    actual_kbps = enc.size_bytes * 8 / 2.0 / 1000
    assert abs(actual_kbps / 100.0 - 1) < 0.05, actual_kbps  # -3.4 % here; one-pass VBV gave +4 %
    decoded, decode_s = decode_chunk(enc.packets, "h265")
    assert decoded.shape == frames.shape and decode_s > 0
    mse = np.mean((decoded.astype(float) - frames) ** 2)
    assert 10 * np.log10(255**2 / mse) > 22  # a real encoding of this content, not noise
    # one closed GOP per chunk: the first frame is the only keyframe (no scene-cut I frames)
    import av

    dec = av.CodecContext.create("hevc", "r")
    keys = [f.key_frame for p in enc.packets for f in dec.decode(av.Packet(p))] + [
        f.key_frame for f in dec.decode(None)
    ]
    assert keys[0] and not any(keys[1:]) and len(keys) == 50


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_encodes_are_byte_identical_run_to_run(codec):
    # x265 with its default thread pool and frame threads gave different bytes on repeated calls
    frames = moving_texture(25, 128, seed=3)
    runs = [encode_chunk(frames, codec, 150.0, fps=25.0).packets for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]


def test_vbv_and_abr_rate_controls_stay_available():
    frames = moving_texture(25, 128, seed=4)
    for rc in ("vbv", "abr"):
        assert encode_chunk(frames, "h264", 150.0, fps=25.0, rate_control=rc).size_bytes > 0
    with pytest.raises(InputError, match="unknown rate control 'crf'"):
        encode_chunk(frames, "h264", 150.0, fps=25.0, rate_control="crf")


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_every_codec_round_trips(codec):
    frames = moving_texture(8, 64)
    enc = encode_chunk(frames, codec, 300.0, fps=8.0)
    decoded, _ = decode_chunk(enc.packets, codec)
    assert decoded.shape == frames.shape
    assert enc.size_bytes > 0
    assert encoder_version(codec)


def test_build_round_trip_and_contents(tiny_clip, tmp_path, lpips_ok):
    out = tmp_path / "out"
    ladder = build_ladder(tiny_clip, out, TINY, progress=False)
    assert ladder.n_chunks == 4  # 8 + 8 + 8 + a 4-frame tail (half a chunk is kept)
    assert ladder.frames.tolist() == [8, 8, 8, 4]
    assert np.allclose(ladder.duration_s, [1, 1, 1, 0.5])
    assert [r.family for r in ladder.rungs] == ["h265", "h265"] and [r.kbps for r in ladder.rungs] == [40.0, 160.0]
    assert np.all(ladder.lpips_mean[:, 0] > ladder.lpips_mean[:, 1])  # more bits, less distortion
    assert np.all(ladder.size_bytes[:, 0] < ladder.size_bytes[:, 1])
    assert np.all(ladder.lpips_p95 >= ladder.lpips_mean - 1e-12)
    meta = ladder.metadata
    assert meta["measured"] and not ladder.is_synthetic and "x265" in meta["encoder"]
    assert meta["encoding"]["rate_control"] == "2pass" and meta["encoding"]["passes"] == 2
    assert "pass=2" in meta["encoding"]["options_first_rung"]["x265-params"]
    assert "info=0" in meta["encoding"]["fixed_params"]
    assert meta["video"]["file"] == "tiny.mp4" and len(meta["video"]["sha256"]) == 64
    assert np.array(meta["measurements"]["psnr_db"]).shape == (4, 2)
    again = load_ladder(out / "ladder.json")
    assert again.to_dict() == ladder.to_dict()
    # chunk records hold per-frame LPIPS: the ladder's mean and severe fraction follow from them
    rec = json.loads((out / "chunks" / "chunk-00001.json").read_text())
    lp = np.array(rec["lpips"][0])
    assert len(lp) == 8 and ladder.lpips_mean[1, 0] == pytest.approx(lp.mean(), abs=1e-9)
    assert ladder.severe_frac[1, 0] == pytest.approx(np.mean(lp > ladder.severe_lpips))
    # a short tail below min_last_chunk is dropped
    cut = build_ladder(tiny_clip, tmp_path / "cut", TINY.__class__(**{**TINY.to_dict(), "min_last_chunk": 0.75}),
                       progress=False)  # fmt: skip
    assert cut.n_chunks == 3


def test_interrupted_build_resumes(tiny_clip, tmp_path, lpips_ok):
    out = tmp_path / "out"
    measured: list[int] = []

    def stop_after_two(result):
        measured.append(result.index)
        if len(measured) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_ladder(tiny_clip, out, TINY, progress=False, on_chunk=stop_after_two)
    assert not (out / "ladder.json").exists()
    files = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert files == ["build.json", "chunk-00000.json", "chunk-00001.json"]  # no temporary or partial file
    for p in out.rglob("*.json"):
        json.loads(p.read_text())
    first = json.loads((out / "chunks" / "chunk-00000.json").read_text())

    resumed: list[int] = []
    ladder = build_ladder(tiny_clip, out, TINY, progress=False, on_chunk=lambda r: resumed.append(r.index))
    assert resumed == [2, 3]  # only what was missing
    assert ladder.n_chunks == 4
    assert ladder.size_bytes[0].tolist() == first["size_bytes"]
    # other settings in the same folder are refused instead of mixed in
    other = LadderBuildConfig(**{**TINY.to_dict(), "kbps": (40.0, 80.0)})
    with pytest.raises(InputError, match="other settings"):
        build_ladder(tiny_clip, out, other, progress=False)


def test_cli_and_broken_video(tiny_clip, tmp_path, capsys, lpips_ok):
    out = tmp_path / "cli"
    rc = main([str(tiny_clip), "--codec", "h264", "--kbps", "60,30", "--chunk", "1", "--no-resize", "--no-crop",
               "--max-s", "2", "--out", str(out), "--quiet"])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "2 chunks x 2 rungs" in text and "x264" in text
    assert load_ladder(out / "ladder.json").kbps.tolist() == [30.0, 60.0]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(tiny_clip.read_bytes()[:1500])
    rc = main([str(broken), "--out", str(tmp_path / "b"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and str(broken) in err and err.startswith("error: ")
    rc = main([str(tmp_path / "none.mp4"), "--out", str(tmp_path / "c"), "--quiet"])
    assert rc == 2 and "video file not found" in capsys.readouterr().err


def test_bad_settings():
    with pytest.raises(InputError, match="unknown codec 'vp9'"):
        LadderBuildConfig(codec="vp9")
    with pytest.raises(InputError, match="distinct positive"):
        LadderBuildConfig(kbps=(100.0, 100.0))
    with pytest.raises(InputError, match="even"):
        LadderBuildConfig(resize=511)
    assert LadderBuildConfig(kbps=(400, 100)).kbps == (100.0, 400.0)


def test_concat_and_combine(tiny_clip, tmp_path, lpips_ok):
    a = build_ladder(tiny_clip, tmp_path / "a", TINY, progress=False, name="a")
    h264 = LadderBuildConfig(**{**TINY.to_dict(), "codec": "h264", "kbps": (80.0, 320.0)})
    b = build_ladder(tiny_clip, tmp_path / "b", h264, progress=False, name="b")
    both = concat_ladders(a, a, name="twice")
    assert both.n_chunks == 2 * a.n_chunks
    assert np.array_equal(both.lpips_mean[a.n_chunks :], a.lpips_mean)
    assert [p["first_chunk"] for p in both.metadata["parts"]] == [0, a.n_chunks]
    with pytest.raises(InputError, match="different rungs"):
        concat_ladders(a, b, name="x")
    mixed = combine_ladders(a, b)  # codec families side by side, each rung with its own decoder
    assert [r.decoder for r in mixed.rungs] == ["h265", "h264", "h265", "h264"]
    assert mixed.kbps.tolist() == [40.0, 80.0, 160.0, 320.0]


class _RecordingLPIPS:
    """Stands in for LPIPS: records the frames it is given and returns their mean absolute difference."""

    def __init__(self):
        self.calls = []

    def distance_frames_many(self, ref, dists, batch_size=8):
        self.calls.append((ref, dists))
        return [np.abs(ref.astype(float) - d.astype(float)).mean(axis=(1, 2, 3)) for d in dists]


def test_display_scores_the_centred_square_view_of_native_frames():
    """A 96x64 chunk coded at its native size, scored on a 64x64 display: the view is the centre square,
    cut by hand here (columns 16..79); a 32-pixel display resizes it."""
    from codec.ladder import measure_chunk

    ref = np.concatenate([moving_texture(6, 96)[:, :64], moving_texture(6, 96, seed=1)[:, :64]], axis=0)
    cfg = LadderBuildConfig(codec="h264", kbps=(200.0,), resize=None, crop_square=False, display=64, lpips_stride=2)
    fake = _RecordingLPIPS()
    res = measure_chunk(ref, cfg, 12.0, fake)
    seen_ref, (seen_dec,) = fake.calls[0]
    assert np.array_equal(seen_ref, ref[::2, :, 16:80])
    decoded, _ = decode_chunk(encode_chunk(ref, "h264", 200.0, 12.0).packets, "h264")  # x264 is deterministic
    assert np.array_equal(seen_dec, decoded[::2, :, 16:80])
    mse = ((ref[:, :, 16:80].astype(float) - decoded[:, :, 16:80].astype(float)) ** 2).mean(axis=(1, 2, 3))
    assert res.psnr_db[0] == pytest.approx(np.mean(10 * np.log10(255.0**2 / mse)), abs=1e-3)
    small = _RecordingLPIPS()
    measure_chunk(ref, LadderBuildConfig(**{**cfg.to_dict(), "display": 32}), 12.0, small)
    assert small.calls[0][0].shape == (6, 32, 32, 3) and small.calls[0][1][0].shape == (6, 32, 32, 3)


def test_display_is_recorded_only_when_set():
    """Builds made before ``display`` existed keep their fingerprint (and so resume)."""
    assert "display" not in LadderBuildConfig().to_dict()
    assert LadderBuildConfig(display=512).to_dict()["display"] == 512
    with pytest.raises(InputError, match="display must be a positive"):
        LadderBuildConfig(display=0)
