"""Upsampler training on generated low-resolution frames: the recorded pairs are the upsampler's real inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.promptmobile.joint import JointConfig, generated_pairs, train_on_pairs
from codec.promptmobile.upsampler import Upsampler, UpsamplerConfig, save_upsampler


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from codec.promptus.bitstream import Stream
    from codec.promptus.fit import FitConfig, LossConfig, fit_video
    from codec.promptus.pipeline import stream_from_fit
    from codec.promptus.receiver import get_receiver
    from codec.promptus.testing import tiny_generator

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    gen = tiny_generator(seed=0, sample_size=4, prompt_len=77)  # 32x32 frames, 2x2 low-resolution latents
    ups = tmp_path_factory.mktemp("ups") / "u.pt"
    save_upsampler(Upsampler(UpsamplerConfig(width=8, body_layers=1)), ups)
    rec = get_receiver("promptmobile-lowres", gen, upsampler=str(ups))
    rng = np.random.default_rng(0)
    src = (np.linspace(40, 200, 32)[None, :, None, None] + rng.integers(0, 30, (3, 32, 32, 3))).astype(np.uint8)
    cfg = FitConfig(rank=2, interval=2, iters_first=5, iters=5, loss=LossConfig(mse=1.0, perceptual=0.0, l1_prompt=0.0))
    fit = fit_video(rec, src, cfg, progress=False)
    h, lat, kfs = stream_from_fit(fit, gen, 25.0)
    yield gen, rec, Stream(h, lat, tuple(kfs)), src
    torch.set_num_threads(n)


def test_pairs_are_what_the_upsampler_sees(setup):
    from codec.promptmobile.tradeoff import decode_with

    gen, rec, stream, src = setup
    low, target = generated_pairs(stream, gen, rec, src)
    assert low.shape == (3, 3, 16, 16) and target.shape == (3, 3, 32, 32)
    assert float(target.min()) >= -1 and float(target.max()) <= 1
    # the receiver's frames are the upsampler applied to the recorded inputs, clamped and rounded to uint8
    frames, _, _ = decode_with(stream, gen, rec.spec)
    with torch.no_grad():
        again = rec.two_stage.upsampler(low).clamp(-1, 1)
    again_u8 = ((again + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    assert np.abs(again_u8.astype(int) - frames.astype(int)).max() <= 1


def test_training_on_pairs_lowers_the_loss(setup):
    gen, rec, stream, src = setup
    low, target = generated_pairs(stream, gen, rec, src)
    ups = Upsampler(UpsamplerConfig(width=8, body_layers=1))
    with torch.no_grad():
        before = float((ups(low) - target).abs().mean())
    log = train_on_pairs(ups, low, target, JointConfig(steps=60, lr=5e-3))
    with torch.no_grad():
        after = float((ups(low) - target).abs().mean())
    assert log["train"][0] == pytest.approx(before, rel=1e-5) and log["best_step"] == 60
    assert after < 0.9 * before
    assert not any(p.requires_grad for p in ups.parameters())


def test_early_stopping_keeps_the_best_validation_step(setup):
    """Validating on the training pairs themselves: the kept weights score the smallest validation L1 seen."""
    gen, rec, stream, src = setup
    low, target = generated_pairs(stream, gen, rec, src)
    ups = Upsampler(UpsamplerConfig(width=8, body_layers=1))
    log = train_on_pairs(ups, low, target, JointConfig(steps=30, lr=5e-3), val=(low[:1], target[:1]))
    assert len(log["val"]) == 31
    with torch.no_grad():
        kept = float((ups(low[:1]) - target[:1]).abs().mean())
    assert kept == pytest.approx(min(log["val"]), rel=1e-5)
    assert log["val"][log["best_step"]] == min(log["val"])


def test_not_two_stage_is_refused(setup):
    from codec.promptus.receiver import get_receiver

    gen, _, stream, src = setup
    with pytest.raises(ValueError, match="two-stage"):
        generated_pairs(stream, gen, get_receiver("promptus", gen), src)
    with pytest.raises(ValueError):
        JointConfig(steps=0)
