"""Video input: containers through PyAV, raw I420, Promptus preprocessing, rate conversion, errors."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from abr.errors import InputError
from codec.video import iter_frames, probe, write_video

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"


def _halves(i: int, w: int = 64, h: int = 32) -> np.ndarray:
    """Left third red, middle green, right third blue; brightness grows with i."""
    f = np.zeros((h, w, 3), np.uint8)
    f[:, : w // 4, 0] = 200
    f[:, w // 4 : 3 * w // 4, 1] = 100 + 10 * i
    f[:, 3 * w // 4 :, 2] = 200
    return f


@pytest.fixture()
def clip(tmp_path) -> Path:
    path = tmp_path / "clip.mp4"
    write_video(path, (_halves(i) for i in range(10)), fps=10)
    return path


def test_probe_and_stream(clip):
    info = probe(clip)
    assert (info.width, info.height, info.frames, info.fps, info.codec) == (64, 32, 10, 10.0, "h264")
    assert info.duration_s == pytest.approx(1.0)
    it = iter_frames(clip)
    assert inspect.isgenerator(it)  # streaming: frames come one by one
    frames = list(it)
    assert len(frames) == 10 and frames[0].shape == (32, 64, 3) and frames[0].dtype == np.uint8
    greens = [int(f[:, 24:40, 1].mean()) for f in frames]
    assert greens == sorted(greens) and abs(greens[0] - 100) <= 4 and abs(greens[9] - 190) <= 4
    assert len(list(iter_frames(clip, max_frames=3))) == 3


def test_center_square_crop_and_resize(clip):
    f = next(iter_frames(clip, crop_square=True))
    assert f.shape == (32, 32, 3)  # columns 16..47 of 64: green only
    assert f[:, :, 1].mean() > 90 and f[:, :, 0].mean() < 10 and f[:, :, 2].mean() < 10
    g = next(iter_frames(clip, crop_square=True, resize=512))
    assert g.shape == (512, 512, 3)
    assert abs(float(g[:, :, 1].mean()) - float(f[:, :, 1].mean())) < 3
    h = next(iter_frames(clip, resize=(32, 16)))
    assert h.shape == (16, 32, 3)


def test_rate_conversion_drops_or_repeats(clip):
    half = list(iter_frames(clip, fps=5))
    assert len(half) == 5
    double = list(iter_frames(clip, fps=20))
    assert len(double) == 20
    assert np.array_equal(double[0], double[1]) and np.array_equal(double[18], double[19])
    full = list(iter_frames(clip))
    assert np.array_equal(half[1], full[2]) and np.array_equal(double[7], full[3])


def _i420(y: int, u: int, v: int, w: int, h: int) -> bytes:
    return bytes([y]) * (w * h) + bytes([u]) * (w * h // 4) + bytes([v]) * (w * h // 4)


def test_raw_i420(tmp_path):
    path = tmp_path / "talk_8x4_15fps.yuv"
    path.write_bytes(_i420(16, 128, 128, 8, 4) + _i420(235, 128, 128, 8, 4) + _i420(126, 128, 128, 8, 4))
    info = probe(path)  # size and rate from the name
    assert (info.width, info.height, info.fps, info.frames, info.codec) == (8, 4, 15.0, 3, "rawvideo")
    frames = list(iter_frames(path))
    # BT.601 limited range: Y 16 -> black, 235 -> white, 126 -> (126 - 16) * 255 / 219 = 128
    assert [int(f.mean()) for f in frames] == [0, 255, 128]
    other = tmp_path / "plain.yuv"
    other.write_bytes(path.read_bytes())
    assert probe(other, size="8x4", fps=30).frames == 3
    assert probe(other, size=(4, 8), fps=30).frames == 3
    with pytest.raises(InputError, match="needs its frame size") as e:
        probe(other)
    assert str(other) in str(e.value)
    with pytest.raises(InputError, match="not a whole number of 10x4 I420 frames"):
        probe(other, size="10x4", fps=30)
    with pytest.raises(InputError, match="needs its frame rate"):
        probe(other, size="8x4")
    assert len(list(iter_frames(other, size="8x4"))) == 3  # reading frames needs no rate
    with pytest.raises(InputError, match="WxH"):
        list(iter_frames(other, size="8 by 4"))


def test_errors_name_the_file(tmp_path, clip):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(InputError, match="video file not found") as e:
        probe(missing)
    assert str(missing) in str(e.value)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match="cannot open as a video") as e:
        list(iter_frames(garbage))
    assert str(garbage) in str(e.value)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    with pytest.raises(InputError) as e:
        probe(truncated)
    assert str(truncated) in str(e.value)
    with pytest.raises(InputError, match="only for raw .yuv"):
        probe(clip, size="64x32")


def test_shared_clips(shared_data):
    carphone = probe(shared_data / "videos" / "carphone_pristine.mp4")
    assert (carphone.width, carphone.height, carphone.frames) == (176, 144, 120)
    assert carphone.fps == pytest.approx(30000 / 1001)
    cisco = probe(shared_data / "videos" / "CiscoVT2people_320x192_12fps.yuv")
    assert (cisco.width, cisco.height, cisco.fps, cisco.frames) == (320, 192, 12.0, 9)
    frames = list(iter_frames(shared_data / "videos" / "bigbuckbunny.mp4", crop_square=True, resize=512, max_frames=2))
    assert [f.shape for f in frames] == [(512, 512, 3)] * 2
