"""abr.qoe pinned by Pensieve's rewards and the published constants.

* ``pensieve-linear``: Pensieve's ``test/bb.py`` reward, ``kbps/1000 - 4.3 rebuf - |dkbps|/1000``,
  checked against every row of ``../shared/data/peers/pensieve/fixed_env_golden.csv``.
* ``pensieve-log``: Pensieve's log QoE (Mao et al., SIGCOMM 2017, section 5.1): q = ln(R/R_min),
  rebuffering penalty 2.66, smoothness 1.
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from conftest import make_ladder

from abr.errors import InputError
from abr.qoe import QOE_PRESETS, QoE, get_qoe

PENSIEVE_KBPS = [300, 750, 1200, 1850, 2850, 4300]


def test_pensieve_linear_equals_pensieve_reward_on_every_golden_row(shared_data):
    path = shared_data / "peers" / "pensieve" / "fixed_env_golden.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    rung = np.array([int(r["rung"]) for r in rows])
    chunk = np.array([int(r["chunk"]) for r in rows])
    prev = np.where(chunk == 0, 1, np.roll(rung, 1))  # Pensieve: DEFAULT_QUALITY = 1 before chunk 0
    kbps = np.array(PENSIEVE_KBPS, dtype=float)
    ladder = make_ladder([[1000.0] * 6], kbps=list(kbps))
    qoe = get_qoe("pensieve-linear")
    q = qoe.chunk_quality(ladder)[0]
    got = qoe.reward(q[rung], np.array([float(r["rebuf_s"]) for r in rows]), q[prev])
    want = np.array([float(r["reward_linear"]) for r in rows])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_pensieve_linear_by_hand():
    qoe = get_qoe("pensieve-linear")
    # 1850 kbps after 300 kbps with a 0.5 s stall: 1.85 - 4.3 x 0.5 - 1.55
    assert float(qoe.reward(np.array(1.85), np.array(0.5), np.array(0.3))) == pytest.approx(1.85 - 2.15 - 1.55)
    assert (qoe.stall_penalty, qoe.switch_penalty, qoe.quality) == (4.3, 1.0, "mbps")


def test_pensieve_log_by_hand():
    qoe = get_qoe("pensieve-log")
    assert (qoe.stall_penalty, qoe.switch_penalty, qoe.quality) == (2.66, 1.0, "log-rate")
    ladder = make_ladder([[1000.0] * 6] * 2, kbps=[float(k) for k in PENSIEVE_KBPS])
    q = qoe.chunk_quality(ladder)
    assert q.shape == (2, 6)
    assert q[1] == pytest.approx([math.log(k / 300) for k in PENSIEVE_KBPS])
    # 4300 kbps after 750 kbps, 1 s stall
    r = float(qoe.reward(q[1, 5], np.array(1.0), q[0, 1]))
    assert r == pytest.approx(math.log(4300 / 300) - 2.66 - (math.log(4300 / 300) - math.log(750 / 300)))


def test_perceptual_by_hand():
    qoe = get_qoe("perceptual")
    assert (qoe.stall_penalty, qoe.switch_penalty, qoe.quality) == (1.0, 1.0, "lpips")
    ladder = make_ladder([[1000.0, 2000.0]], lpips=[[0.3, 0.1]])
    assert qoe.chunk_quality(ladder)[0] == pytest.approx([0.7, 0.9])
    # first chunk (no previous quality): no switch term; a 2 s startup costs 2
    assert float(qoe.reward(np.array(0.9), np.array(2.0), np.array(np.nan))) == pytest.approx(-1.1)
    assert float(qoe.reward(np.array(0.9), np.array(0.0), np.array(0.7))) == pytest.approx(0.7)
    assert float(qoe.reward(np.array(0.7), np.array(0.0), np.array(0.9))) == pytest.approx(0.5)


def test_penalties_scale_their_own_term():
    qoe = QoE("x", "mbps", stall_penalty=3.0, switch_penalty=0.5)
    r = qoe.reward(np.array([2.0, 2.0]), np.array([1.0, 0.0]), np.array([1.0, 4.0]))
    assert r == pytest.approx([2.0 - 3.0 - 0.5, 2.0 - 1.0])


def test_presets_and_their_weights():
    # the published weights: Pensieve's linear 4.3 and log 2.66 (Mao et al. 2017), its HD score's 8;
    # perceptual-calibrated's 0.10 = (4.3 / 4.0) x 0.093 (see abr.qoe.CALIBRATED_STALL_PENALTY)
    expected = {
        "perceptual": ("lpips", 1.0),
        "perceptual-calibrated": ("lpips", 0.10),
        "pensieve-linear": ("mbps", 4.3),
        "pensieve-log": ("log-rate", 2.66),
        "pensieve-hd": ("hd", 8.0),
    }
    assert {n: (q.quality, q.stall_penalty) for n, q in QOE_PRESETS.items()} == expected
    assert all(QOE_PRESETS[n].name == n and QOE_PRESETS[n].switch_penalty == 1.0 for n in QOE_PRESETS)


def test_qoe_validation():
    QoE("zero", "lpips", 0.0, 0.0)  # zero penalties are valid
    QoE("half", "log-rate", 0.5, 0.5)
    for quality in ("lpips", "mbps", "log-rate", "hd"):
        QoE("ok", quality, 1.0, 1.0)
    with pytest.raises(ValueError, match="^QoE.quality must be lpips, mbps, log-rate or hd, got 'kbps'$"):
        QoE("bad", "kbps", 1.0, 1.0)
    with pytest.raises(ValueError, match="^QoE penalties must be non-negative$"):
        QoE("bad", "mbps", -0.1, 1.0)
    with pytest.raises(ValueError, match="^QoE penalties must be non-negative$"):
        QoE("bad", "mbps", 1.0, -0.1)


def test_unknown_preset_is_an_input_error_naming_the_valid_ones():
    names = "pensieve-hd, pensieve-linear, pensieve-log, perceptual, perceptual-calibrated"
    with pytest.raises(InputError, match=f"unknown QoE preset 'nope'; valid names: {names}$"):
        get_qoe("nope")


def test_penalties_must_be_finite():
    for stall, switch in ((math.nan, 1.0), (1.0, math.inf), (math.inf, math.nan)):
        with pytest.raises(ValueError, match="^QoE penalties must be finite$"):
            QoE("bad", "mbps", stall, switch)


def test_perceptual_qoe_refuses_a_ladder_without_lpips():
    lad = make_ladder([[1e3, 2e3]] * 2, lpips=[[0.2, np.nan]] * 2)
    with pytest.raises(InputError) as e:
        get_qoe("perceptual-calibrated").chunk_quality(lad)
    assert str(e.value) == (
        "ladder 'test' has no perceptual quality (LPIPS), so QoE 'perceptual-calibrated' cannot score it; "
        "use a bitrate QoE: pensieve-linear, pensieve-log, pensieve-hd"
    )
    assert get_qoe("pensieve-log").chunk_quality(lad).shape == (2, 2)  # bitrate QoEs still score it


def test_pensieve_hd_score_by_hand():
    # 300 -> 1, 750 -> 2, ..., 4300 -> 20; linear in between, clamped outside
    lad = make_ladder([[1e3] * 6] * 2, kbps=[200.0, 300.0, 525.0, 1525.0, 4300.0, 5000.0])
    q = get_qoe("pensieve-hd").chunk_quality(lad)
    assert q.shape == (2, 6)
    assert q[1].tolist() == pytest.approx([1.0, 1.0, 1.5, 7.5, 20.0, 20.0])


def test_weights_override_by_name_and_alias():
    q = get_qoe("pensieve-linear:mu=2.66")
    assert (q.name, q.quality, q.stall_penalty, q.switch_penalty) == ("pensieve-linear:mu=2.66", "mbps", 2.66, 1.0)
    spec = "perceptual:lambda=0.5,stall_penalty=0"
    q = get_qoe(spec)
    assert (q.name, q.quality, q.stall_penalty, q.switch_penalty) == (spec, "lpips", 0.0, 0.5)
    assert get_qoe("pensieve-log") is QOE_PRESETS["pensieve-log"]
    for spec, msg in [
        ("pensieve-linear:mu=x", "QoE 'pensieve-linear:mu=x': bad value 'x' for option 'mu' "
                                 "(expected a finite number)"),
        ("pensieve-linear:nope=1", "QoE 'pensieve-linear:nope=1': unknown option 'nope'; valid keys: "
                                   "stall_penalty, switch_penalty, mu, lambda"),
        ("pensieve-linear:mu=-1", "QoE 'pensieve-linear:mu=-1': option 'stall_penalty' must be >= 0, got -1"),
    ]:  # fmt: skip
        with pytest.raises(InputError) as e:
            get_qoe(spec)
        assert str(e.value) == msg
