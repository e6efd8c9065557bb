"""Network models: seeded generation, Genet options, and the fit to the real sets.

Fit tolerances (each model against the real set it was fitted to, both prepared as the fit
does: 1-s means, rates < 0.05 Mbit/s are outages, 5G sessions' leading/trailing idle trimmed; 40
generated traces per real file, of the same length, with a seed the fit did not use):

* marginal: at the real 10/25/50/75/90th percentiles ``q``, the generated share of time
  below ``q`` is within :data:`CDF_TOL` (0.04) of the percentile (allowing for atoms at 0);
* time-weighted mean within :data:`MEAN_REL_TOL` (10 %);
* within-trace lag-1 autocorrelation of the 1-s rate within :data:`LAG1_TOL` (0.05);
* outage share within :data:`OUTAGE_TOL` (0.02) + 20 % of the real share.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from abr.errors import InputError
from traces import fit
from traces.models import MODELS_PATH, NETWORK_MODELS, FittedModel, GenetModel, get_model, model_rngs, normal_cdf
from traces.sets import load_traces
from traces.stats import lag1_autocorr

FITTED = ("lte", "3g", "5g", "fcc", "wifi")
CDF_TOL = 0.04
MEAN_REL_TOL = 0.10
LAG1_TOL = 0.05
OUTAGE_TOL = 0.02


@pytest.fixture(scope="module")
def doc() -> dict:
    return json.loads(MODELS_PATH.read_text())


def test_models_json_names_its_sources(doc):
    assert set(doc["models"]) == set(FITTED)
    for name, m in doc["models"].items():
        assert m["fit"]["set"] == fit.FIT_SOURCES[name].folder
        assert len(m["fit"]["files"]) == m["fit"]["n_files"] == len(m["file_params"]) == len(m["file_weights"])
        assert name in NETWORK_MODELS and isinstance(NETWORK_MODELS[name], FittedModel)


# ----------------------------------------------------------------------------- against the real sets


@pytest.fixture(scope="module")
def real_root(shared_data):
    return shared_data / "traces"


@pytest.mark.parametrize("name", FITTED)
def test_model_matches_its_real_set(name, real_root, doc):
    files, real = fit.load_series(fit.FIT_SOURCES[name], real_root)
    listed = doc["models"][name]["fit"]["files"]
    assert [p.relative_to(real_root / fit.FIT_SOURCES[name].folder).as_posix() for p in files] == listed
    gen = fit.generate_like(NETWORK_MODELS[name], [x.size for x in real], repeats=40, seed=7)
    r, g = np.concatenate(real), np.concatenate(gen)
    for p in (10, 25, 50, 75, 90):
        q = np.percentile(r, p)
        below, at_or_below = np.mean(g < q), np.mean(g <= q)
        assert below - CDF_TOL <= p / 100 <= at_or_below + CDF_TOL, f"{name} p{p}: q={q:.3g} F={below:.3f}"
    assert g.mean() == pytest.approx(r.mean(), rel=MEAN_REL_TOL)
    assert lag1_autocorr(gen) == pytest.approx(lag1_autocorr(real), abs=LAG1_TOL)
    real_out = np.mean(r == 0)
    assert np.mean(g == 0) == pytest.approx(real_out, abs=OUTAGE_TOL + 0.2 * real_out)


def test_refit_reproduces_committed_parameters(real_root, doc):
    """The committed figures come from the script and the data (checked on the smallest set)."""
    src = fit.FIT_SOURCES["wifi"]
    files, series = fit.load_series(src, real_root)
    rows = fit.fit_params(series, "wifi")
    np.testing.assert_allclose(rows, np.array(doc["models"]["wifi"]["file_params"]), atol=2e-5)
    assert doc["models"]["wifi"]["file_weights"] == [x.size for x in series]


def test_fit_script_says_when_data_is_missing(tmp_path, capsys):
    out = tmp_path / "m.json"
    assert fit.main(["--root", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "real trace sets not found" in capsys.readouterr().err
    assert not out.exists()


# ----------------------------------------------------------------------------- generation


@pytest.mark.parametrize("name", [*FITTED, "genet"])
def test_seeded_and_independent_of_count(name):
    a = load_traces(name, seed=3, count=4)
    b = load_traces(name, seed=3, count=6)
    c = load_traces(name, seed=4, count=4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.mbps, y.mbps)
    assert not np.array_equal(a[0].mbps, c[0].mbps)
    for t in b:
        assert t.total_s == pytest.approx(600.0)
        assert np.all(np.isfinite(t.mbps)) and np.all(t.mbps >= 0) and t.mean_mbps > 0


def test_train_and_test_streams_differ():
    tr, te = load_traces("lte@train", count=2), load_traces("lte@test", count=2)
    assert not np.array_equal(tr[0].mbps, te[0].mbps)


def test_duration_option():
    t = load_traces("fcc:duration_s=123.5", count=1)[0]
    assert t.total_s == pytest.approx(123.5) and t.duration_s[-1] == pytest.approx(0.5)
    with pytest.raises(InputError, match="unknown option 'rho'; valid keys: duration_s$"):
        get_model("lte:rho=3")
    with pytest.raises(InputError, match="unknown network model 'nope'"):
        get_model("nope")


def _one_file_model(rho: float, share: float) -> FittedModel:
    probs = (0.0, 0.5, 1.0)
    return FittedModel("t", "", 1.0, probs, ((rho, share, 0.0, np.log(2.0), np.log(4.0)),), (1.0,))


def test_outage_share_and_quantiles_of_one_file_model():
    m = _one_file_model(0.0, 0.3)
    x = m.generate_mbps(model_rngs("t", 0, 4), 20_000).ravel()
    assert np.mean(x == 0) == pytest.approx(0.3, abs=0.01)
    live = x[x > 0]
    assert live.min() >= 1.0 - 1e-9 and live.max() <= 4.0 + 1e-9
    assert np.median(live) == pytest.approx(2.0, rel=0.03)  # ln-rate quantile 0.5 -> 2 Mbit/s


def test_autocorrelation_rises_with_rho():
    lag = [
        lag1_autocorr(list(_one_file_model(r, 0.1).generate_mbps(model_rngs("t", 1, 8), 2000))) for r in (0.2, 0.6, 0.9)
    ]
    assert lag[0] < lag[1] < lag[2]
    assert lag[0] > 0.05


def test_normal_cdf_accuracy():
    from math import erf, sqrt

    z = np.linspace(-6, 6, 1001)
    np.testing.assert_allclose(normal_cdf(z), [0.5 * (1 + erf(v / sqrt(2))) for v in z], atol=2e-6)


def test_model_validation():
    with pytest.raises(ValueError, match="rows must be"):
        FittedModel("t", "", 1.0, (0.0, 1.0), ((0.5, 0.0, 1.0),), (1.0,))
    with pytest.raises(ValueError, match="non-decreasing"):
        FittedModel("t", "", 1.0, (0.0, 1.0), ((0.5, 0.0, 2.0, 1.0),), (1.0,))
    with pytest.raises(ValueError, match="file_weights"):
        replace(_one_file_model(0.5, 0.0), file_weights=(0.5,))


# ----------------------------------------------------------------------------- Genet


def test_genet_options_and_ranges():
    traces = load_traces("genet:min_mbps=1/2,max_mbps=5/6,interval_s=3,rtt_ms=40/60,duration_s=100", seed=1, count=20)
    for t in traces:
        assert t.total_s == pytest.approx(100.0)
        assert t.mbps.min() >= 1.0 and t.mbps.max() <= 6.0
        assert np.all(t.latency_ms == t.latency_ms[0]) and 40 <= t.latency_ms[0] <= 60
        assert np.all(t.duration_s[:-1] >= 1.5 - 1e-9) and np.all(t.duration_s <= 4.5 + 1e-9)  # U(0.5,1.5) x 3 s


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("genet:foo=1", "unknown option"),
        ("genet:min_mbps=3/1", "LO/HI"),
        ("genet:max_mbps=x", "bad value 'x' for option 'max_mbps' \\(expected 2 finite numbers"),
        ("genet:interval_s=0", "interval_s must be > 0"),
        ("genet:duration_s", "expected key=value"),
    ],
)
def test_genet_bad_options(spec, message):
    with pytest.raises(InputError, match=message):
        get_model(spec)


def test_genet_is_registered():
    assert isinstance(NETWORK_MODELS["genet"], GenetModel)
