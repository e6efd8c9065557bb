"""Ladders (format, schema errors, synthetic model) and QoE presets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_ladder

from abr import InputError, combine_ladders, get_ladder, get_qoe, load_ladder, save_ladder
from abr.synthetic import promptus_kbps


def test_ladder_round_trip(tmp_path):
    lad = get_ladder("synthetic:promptus")
    path = save_ladder(lad, tmp_path / "l.json")
    back = load_ladder(path)
    assert back.rungs == lad.rungs and back.metadata == lad.metadata
    for name in ("duration_s", "frames", "size_bytes", "lpips_mean", "lpips_p95", "severe_frac"):
        np.testing.assert_allclose(getattr(back, name), getattr(lad, name), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d.pop("size_bytes"), "size_bytes"),
        (lambda d: d.update(version=99), "version"),
        (lambda d: d.update(format="other"), "format"),
        (lambda d: d["lpips_mean"][0].append(0.1), "lpips_mean"),
        (lambda d: d["rungs"][0].update(kbps=-1), "rungs[0]"),
        (lambda d: d["rungs"][1].update(colour="red"), "rungs[1]"),
        (lambda d: d["chunks"].update(frames="x"), "chunks.frames"),
        (lambda d: d.update(bogus=1), "bogus"),
    ],
)
def test_broken_ladder_names_file_and_field(tmp_path, mutate, field):
    doc = get_ladder("synthetic:h265").to_dict()
    mutate(doc)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError) as err:
        load_ladder(path)
    assert str(path) in str(err.value) and field.split("[")[0].split(".")[0] in str(err.value)


def test_not_json_names_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "format": "promptabr-ladder",\n  oops\n}')
    with pytest.raises(InputError, match=r"bad.json:3"):
        load_ladder(path)


def test_promptus_bitrate_formula():
    # SPEC: r = 8, N = 10, 30 fps gives about 212 kbps; R = 8 (1101 r + 16) fps / N
    assert promptus_kbps(8, 10, 30) == pytest.approx(8 * (1101 * 8 + 16) * 30 / 10 / 1000)
    assert 205 < promptus_kbps(8, 10, 30) < 225
    lad = get_ladder("synthetic:promptus:ranks=2/8,interval=5")
    assert [r.rank for r in lad.rungs] == [2, 8]
    # 2-s chunks at 30 fps with N = 5: 12 keyframes of 1101 r + 16 bytes
    assert lad.size_bytes[0, 1] == 12 * (1101 * 8 + 16)
    assert lad.is_synthetic and lad.name.startswith("synthetic:")


def test_synthetic_promptus_beats_h265_at_low_rate_and_saturates():
    p = get_ladder("synthetic:promptus:ranks=1/2/4/8/16/32")
    h = get_ladder("synthetic:h265:kbps=53.232")
    assert p.lpips_mean[:, 1].mean() < h.lpips_mean[:, 0].mean()  # same rate, Promptus better
    assert np.allclose(p.lpips_mean[:, -1], p.lpips_mean[:, -2])  # floor reached at high rank
    assert np.all(np.diff(p.lpips_mean, axis=1) <= 1e-12)


def test_unknown_ladder_lists_valid_names():
    with pytest.raises(InputError, match="synthetic:promptus"):
        get_ladder("nope")
    with pytest.raises(InputError, match="valid keys"):
        get_ladder("synthetic:promptus:colour=3")


def test_combine_orders_by_kbps_and_keeps_decoders():
    a = make_ladder([[100.0, 400.0]] * 3, decoder="promptus", kbps=[10, 40])
    b = make_ladder([[200.0, 800.0]] * 3, decoder="h265", kbps=[20, 80])
    both = combine_ladders(a, b)
    assert list(both.kbps) == [10, 20, 40, 80]
    assert both.decoders == ("promptus", "h265", "promptus", "h265")
    assert list(both.size_bytes[0]) == [100.0, 200.0, 400.0, 800.0]


def test_qoe_presets_by_hand():
    q = get_qoe("perceptual")
    r = q.reward(np.array([0.9, 0.8]), np.array([0.5, 0.0]), np.array([np.nan, 0.9]))
    assert r == pytest.approx([0.9 - 0.5, 0.8 - 0.1])
    lad = get_ladder("synthetic:pensieve")
    assert get_qoe("pensieve-linear").chunk_quality(lad)[0] == pytest.approx(lad.kbps / 1000)
    assert get_qoe("pensieve-log").chunk_quality(lad)[0, 0] == 0.0
    with pytest.raises(InputError, match="perceptual"):
        get_qoe("nope")


def test_ladder_expressions():
    base = get_ladder("synthetic:promptus:chunks=5")
    looped = get_ladder("synthetic:promptus:chunks=5*3")
    assert looped.n_chunks == 15 and looped.name == "synthetic:promptus:chunks=5*3"
    np.testing.assert_array_equal(looped.size_bytes[10:], base.size_bytes)
    assert looped.total_duration_s == pytest.approx(3 * base.total_duration_s)
    by_rank = get_ladder("synthetic:promptus:chunks=5[r2/r8]")
    assert [r.rank for r in by_rank.rungs] == [2, 8]
    assert get_ladder("synthetic:promptus:chunks=5[0/5]").rungs == (base.rungs[0], base.rungs[5])
    mixed = get_ladder("synthetic:promptus:chunks=5[r1/r2]+synthetic:h265:chunks=5")
    assert mixed.n_rungs == 8 and set(mixed.decoders) == {"promptus", "h265"}
    with pytest.raises(InputError, match="no rung of rank 5"):
        get_ladder("synthetic:promptus[r5]")
    with pytest.raises(InputError, match="bad rung selector"):
        get_ladder("synthetic:promptus[x]")
    with pytest.raises(InputError, match="different chunks"):
        get_ladder("synthetic:promptus:chunks=5+synthetic:h265:chunks=6")


def test_promptmobile_model_is_promptus_rungs_on_the_mobile_receiver():
    pm, p = get_ladder("promptmobile-paper-model"), get_ladder("promptus-paper-model")
    assert set(pm.decoders) == {"promptmobile"} and set(p.decoders) == {"promptus"}
    np.testing.assert_array_equal(pm.size_bytes, p.size_bytes)
    np.testing.assert_array_equal(pm.lpips_mean, p.lpips_mean)
    assert "PromptMobile" in pm.metadata["derivation"]
