"""The one computation of a ladder's per-chunk LPIPS statistics (abr.ladder.frame_lpips_stats)."""

from __future__ import annotations

import numpy as np
import pytest

from abr.ladder import frame_lpips_stats


def test_hand_computed():
    mean, p95, frac = frame_lpips_stats([np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.3])], severe=0.25)
    assert mean == pytest.approx([0.25, 0.3])
    assert p95 == pytest.approx([0.3 + 0.85 * 0.1, 0.3])  # position 0.95 x 3 = 2.85 between 0.3 and 0.4
    assert frac.tolist() == [0.5, 1.0]  # strictly above the threshold
    assert frame_lpips_stats([np.array([0.25, 0.25])], severe=0.25)[2].tolist() == [0.0]
