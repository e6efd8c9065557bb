"""Deep-feature reuse on the tiny learned generator: a lower threshold reuses fewer frames and never costs quality.

A small case: 6 frames of a synthetic moving pattern (no shared data needed), keyframes fitted
through the exact receiver at rank 4, then decoded by the lossy receiver at several thresholds.
Quality here is fidelity to the same stream decoded without reuse (``psnr_db_vs_exact``), the
loss reuse itself causes. PSNR to the source is not monotone on this model: the fit's own error
(about 15 dB) dwarfs the reuse error (35-55 dB to the exact decode), and reuse moves it by
+-0.01 dB either way.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from codec.promptmobile.tradeoff import reuse_tradeoff


def _moving_pattern(n: int, side: int) -> np.ndarray:
    """uint8 (n, side, side, 3): a bright disc drifting over a colour gradient."""
    yy, xx = np.mgrid[0:side, 0:side] / side
    out = []
    for t in range(n):
        cx, cy = 0.3 + 0.06 * t, 0.5
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < 0.04).astype(float)
        rgb = np.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.5 - 0.3 * xx], -1) * (1 - disc[..., None])
        rgb += disc[..., None] * np.array([0.95, 0.9, 0.3])
        out.append((rgb * 255).round().clip(0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.fixture(scope="module")
def stream_and_source():
    from codec.promptus.bitstream import Stream
    from codec.promptus.fit import FitConfig, LossConfig, fit_video
    from codec.promptus.pipeline import stream_from_fit
    from codec.promptus.receiver import get_receiver
    from codec.promptus.train_tiny import load_tiny_learned

    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: threads only add overhead
    torch.manual_seed(0)
    gen = load_tiny_learned()
    src = _moving_pattern(6, gen.config.resolution)
    cfg = FitConfig(rank=4, interval=5, iters_first=20, iters=20, patience=20, patience_first=20,
                    loss=LossConfig(mse=1.0, perceptual=0.0, l1_prompt=0.0))
    fit = fit_video(get_receiver("promptus", gen), src, cfg, progress=False)
    header, latent, kfs = stream_from_fit(fit, gen, 25.0)
    yield gen, Stream(header, latent, tuple(kfs)), src
    torch.set_num_threads(n_threads)


def test_lower_threshold_reuses_less_and_never_costs_quality(stream_and_source):
    gen, stream, src = stream_and_source
    pts = reuse_tradeoff(stream, gen, src, [0.05, 0.2, 0.5, 1.0, 10.0])
    assert [p.threshold for p in pts] == [0.0, 0.05, 0.2, 0.5, 1.0, 10.0]
    exact = pts[0]
    assert exact.reuse_fraction == 0.0 and math.isinf(exact.psnr_db_vs_exact)
    # a threshold above every prompt distance reuses all it can: 4 of the 5 frames of the segment
    assert pts[-1].reuse_fraction == pytest.approx(4 / 6)
    for lo, hi in zip(pts, pts[1:]):
        assert lo.reuse_fraction <= hi.reuse_fraction
        assert lo.psnr_db_vs_exact >= hi.psnr_db_vs_exact - 1e-9, (lo, hi)
        if hi.reuse_fraction > lo.reuse_fraction:
            assert hi.macs_per_frame < lo.macs_per_frame
    assert pts[-1].psnr_db_vs_exact < 80  # reuse does change the frames on this model


def test_budget_mode_fixes_the_share_of_reusing_frames(stream_and_source):
    gen, stream, src = stream_and_source
    (_, p) = reuse_tradeoff(stream, gen, src, [10.0], full_every=5)
    assert p.reuse_fraction == pytest.approx(4 / 6)  # one full frame per 5-frame segment, frame 0 alone
