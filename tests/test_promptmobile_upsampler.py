"""The learned upsampler: shape, cost formula, save/load, training script, committed weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from abr.errors import InputError
from codec.promptmobile.cost import count_macs
from codec.promptmobile.upsampler import DEFAULT_WEIGHTS, Upsampler, UpsamplerConfig, load_upsampler, save_upsampler

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VIDEOS = SHARED / "data" / "videos"


def test_untrained_upsampler_is_nearly_bilinear():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 12) * 2 - 1
    with torch.no_grad():
        y = Upsampler()(x)
    assert y.shape == (2, 3, 32, 24)
    bilinear = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert float((y - bilinear).abs().max()) < 0.05


@pytest.mark.parametrize("cfg", [UpsamplerConfig(), UpsamplerConfig(width=8, body_layers=1)])
def test_mac_formula_matches_counter(cfg):
    x = torch.zeros(1, 3, 10, 14)
    counted = count_macs(lambda: Upsampler(cfg)(x)).total
    assert counted == cfg.macs_per_input_pixel * 10 * 14


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(1)
    model = Upsampler(UpsamplerConfig(width=8, body_layers=1))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    side = save_upsampler(model, tmp_path / "u.pt", {"note": "test"})
    assert json.loads(side.read_text())["note"] == "test"
    loaded = load_upsampler(tmp_path / "u.pt")
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(loaded(x), model(x))
    assert not any(p.requires_grad for p in loaded.parameters())


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="train_upsampler"):
        load_upsampler(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not an upsampler checkpoint"):
        load_upsampler(bad)


def test_committed_weights_and_their_record():
    assert DEFAULT_WEIGHTS.is_file(), "run python -m codec.promptmobile.train_upsampler"
    assert DEFAULT_WEIGHTS.stat().st_size < 2_000_000
    info = json.loads(DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    assert info["trained_by"] == "python -m codec.promptmobile.train_upsampler"
    assert info["data"]["train"] and info["data"]["validation"]
    held_out = {d["file"] for d in info["data"]["validation"]}
    assert not held_out & {d["file"] for d in info["data"]["train"]}
    val = info["validation"]
    assert val["psnr_upsampler_db"] > val["psnr_bilinear_db"]
    model = load_upsampler()
    assert model.config.macs_per_input_pixel == info["macs_per_input_pixel"]


def test_committed_weights_beat_bilinear_on_held_out_frames():
    if not VIDEOS.is_dir():
        pytest.skip(f"{VIDEOS} (../shared/data/videos) not found")
    from codec.promptmobile.train_upsampler import _to_tensor, evaluate, read_frames

    info = json.loads(DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    clip = VIDEOS / info["data"]["validation"][0]["file"]
    frames = _to_tensor(read_frames(clip, stride=40))
    res = evaluate(load_upsampler(), frames)
    assert res["psnr_upsampler_db"] > res["psnr_bilinear_db"] + 0.3


def test_training_script_writes_weights_and_record(tmp_path):
    if not VIDEOS.is_dir():
        pytest.skip(f"{VIDEOS} (../shared/data/videos) not found")
    from codec.promptmobile.train_upsampler import TrainConfig, train_upsampler

    out = tmp_path / "u.pt"
    clip = VIDEOS / "carphone_pristine.mp4"
    cfg = TrainConfig(steps=3, batch=2, patch=16, width=4, body_layers=0, frame_stride=40)
    info = train_upsampler([clip], [clip], out, cfg, progress=False)
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert not out.with_suffix(".ckpt").exists()
    assert info["train_config"]["steps"] == 3 and set(info["validation"]) == {
        "psnr_upsampler_db", "psnr_bilinear_db", "psnr_bicubic_db"}
    assert load_upsampler(out).config.width == 4


def test_training_cli_bad_input_exits_2(tmp_path, capsys):
    from codec.promptmobile.train_upsampler import main

    assert main(["--videos", str(tmp_path / "none"), "--out", str(tmp_path / "u.pt")]) == 2
    assert "video folder not found" in capsys.readouterr().err
    assert main(["--videos", str(tmp_path), "--patch", "7"]) == 2
