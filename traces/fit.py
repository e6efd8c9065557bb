"""Fit the built-in network models to the real sets: ``python -m traces.fit``.

Reads the sets in ``../shared/data/traces`` (or ``--root``), fits one
:class:`~traces.models.FittedModel` per entry of :data:`FIT_SOURCES` and writes the
parameters, the files they came from and a fit check to ``traces/data/models.json``. The
data are never copied; only these figures are committed.

Preparation of every real file (:func:`prepare`): time-weighted means over 1-s steps
(full steps only); rates below :data:`OUTAGE_MBPS` count as outages (0); for sets where a
file's first and last idle stretches are the measurement starting and stopping (the 5G
download sessions, :attr:`FitSource.trim`), those are trimmed; elsewhere they are kept (a
walk out of WiFi range ends in a real outage).

Fit (:func:`fit_params`), per file: its outage share, the quantiles of ln(rate) over its
live steps at :data:`LIVE_PROBS`, and the latent AR(1) coefficient that reproduces the
file's lag-1 autocorrelation of the rate (corrected for the short-series bias, solved by
bisection on fixed-seed Monte-Carlo pairs, so the fit is deterministic). Files are weighted
by length. The fit check generates :data:`CHECK_REPEATS` traces per real file, of the same
length, and stores real and generated percentiles, mean, lag-1 autocorrelation and outage
share side by side.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from abr.errors import InputError, cli_main
from abr.io import read_json, write_json_atomic
from traces.catalog import REAL_SETS, default_trace_root, real_set_of
from traces.formats import read_trace
from traces.models import MODELS_PATH, FittedModel, model_rngs
from traces.stats import PERCENTILES, lag1_autocorr, pooled_quantiles

__all__ = ["FIT_SOURCES", "FitSource", "OUTAGE_MBPS", "STEP_S", "fit_all", "fit_model", "prepare", "main"]

STEP_S = 1.0
#: Largest per-file lag-1 autocorrelation kept (a constant file would give 1).
MAX_RHO = 0.995
#: Monte-Carlo pairs, bisection steps and seed of the per-file AR(1) calibration.
CALIBRATION_PAIRS = 8000
CALIBRATION_STEPS = 18
CALIBRATION_SEED = 20240601
#: Generated traces per real file in the fit check (same lengths as the real files).
CHECK_REPEATS = 20
#: Probabilities at which each file's live ln(rate) quantiles are kept.
LIVE_PROBS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0)
#: Rates below this (Mbit/s) are outages in the real data.
OUTAGE_MBPS = 0.05
#: Shortest prepared file used by the fit, in steps.
MIN_STEPS = 20


@dataclass(frozen=True, slots=True)
class FitSource:
    """Which real files a model is fitted to, and why those."""

    model: str
    folder: str
    pattern: str
    description: str
    why: str
    trim: bool = False

    def files(self, root: Path) -> list[Path]:
        base = root / self.folder
        return sorted(p for p in base.glob(self.pattern) if p.is_file() and p.suffix != ".md")


FIT_SOURCES: dict[str, FitSource] = {
    s.model: s
    for s in (
        FitSource(
            "lte",
            "belgium-4g-lte-sabre-json",
            "*.json",
            "4G/LTE while moving (Ghent, Belgium; bicycle/bus/car/foot/train/tram)",
            "all 40 Belgium logs; mahimahi LTE files are left out: other carriers, country and year, "
            "3-5x lower rates and only 6 files, so pooling would blend two populations",
        ),
        FitSource(
            "3g",
            "norway-hsdpa-3g-pensieve-cooked",
            "*",
            "3G/HSDPA commutes (Oslo, Norway; bus/car/ferry/metro/train/tram)",
            "the widely used Pensieve 'norway' cooked set (80 files)",
        ),
        FitSource(
            "5g",
            "ucc-5g-mmsys2020",
            "Download/**/*.csv",
            "5G NSA with LTE/3G fallback (Cork, Ireland; static and driving)",
            "file-download sessions only: they keep the link busy; the Netflix/Amazon logs idle "
            "whenever the player buffer is full, which is not network capacity; idle time before the "
            "first and after the last transfer of a session is trimmed",
            trim=True,
        ),
        FitSource(
            "fcc",
            "fcc-broadband-2016-pensieve-cooked",
            "test_fcc_trace_*",
            "US fixed broadband (FCC Measuring Broadband America 2016)",
            "the 41 files sampled every 1 s; the 59 five-second files would fake a 5-s autocorrelation",
        ),
        FitSource(
            "wifi",
            "sbu-fsc-wifi-cellular-pairs",
            "*_wifi.csv",
            "WiFi while walking (Stony Brook / FSC campuses)",
            "the 30 WiFi halves of the paired set",
        ),
    )
}


def prepare(trace_mbps_1s: np.ndarray, trim: bool = False) -> np.ndarray | None:
    """1-s rates of one file -> outages zeroed, optionally leading/trailing outages trimmed.

    None when the file has no live step or fewer than :data:`MIN_STEPS` steps.
    """
    x = np.where(trace_mbps_1s < OUTAGE_MBPS, 0.0, trace_mbps_1s)
    live = np.flatnonzero(x > 0)
    if live.size == 0:
        return None
    if trim:
        x = x[live[0] : live[-1] + 1]
    return x if x.size >= MIN_STEPS else None


def load_series(source: FitSource, root: Path) -> tuple[list[Path], list[np.ndarray]]:
    """The prepared 1-s series of a source's files (files too short to use are dropped)."""
    files, series = [], []
    for path in source.files(root):
        rs = real_set_of(path)
        tr = read_trace(path, unit=rs.unit if rs else None).resample(STEP_S)
        full = tr.duration_s >= STEP_S * (1 - 1e-9)
        x = prepare(tr.mbps[full], source.trim)
        if x is not None:
            files.append(path)
            series.append(x)
    if not series:
        raise InputError(f"no usable files match {source.pattern!r}", path=root / source.folder)
    return files, series


def _calibrate_rho(model: FittedModel, rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Latent AR(1) coefficient per row whose rate has lag-1 autocorrelation ``targets``.

    The autocorrelation of the rate rises monotonically with the latent's; it is estimated
    with common random numbers (fixed seed) and solved for all rows at once by bisection.
    """
    g = np.random.default_rng(CALIBRATION_SEED)
    z1, e = g.standard_normal(CALIBRATION_PAIRS), g.standard_normal(CALIBRATION_PAIRS)
    n = len(rows)
    h1 = model.rate_of_latent(np.broadcast_to(z1, (n, z1.size)), rows)
    h1 = h1 - h1.mean(axis=1, keepdims=True)
    lo, hi = np.zeros(n), np.full(n, MAX_RHO)
    for _ in range(CALIBRATION_STEPS):
        mid = 0.5 * (lo + hi)
        z2 = mid[:, None] * z1[None, :] + np.sqrt(1 - mid[:, None] ** 2) * e[None, :]
        h2 = model.rate_of_latent(z2, rows)
        h2 = h2 - h2.mean(axis=1, keepdims=True)
        den = np.sqrt((h1**2).sum(1) * (h2**2).sum(1))
        corr = np.divide((h1 * h2).sum(1), den, out=np.ones(n), where=den > 0)
        below = corr < targets
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return np.round(0.5 * (lo + hi), 4)


def fit_params(series: list[np.ndarray], name: str = "fit") -> np.ndarray:
    """Per-file rows ``(rho, outage_share, ln-rate quantiles at LIVE_PROBS)``."""
    share = np.array([float(np.mean(x == 0)) for x in series])
    quant = np.array([np.quantile(np.log(x[x > 0]), LIVE_PROBS) for x in series])
    rows = np.column_stack([np.zeros(len(series)), share, quant])
    # lag-1 of a length-n series is biased low by about (1 + 3 r) / n: aim the stationary model above it
    r = np.array([lag1_autocorr([x]) for x in series])
    n = np.array([x.size for x in series])
    targets = np.where(np.isfinite(r), r + (1 + 3 * np.nan_to_num(r)) / n, 1.0)
    shape_model = FittedModel(
        name, "", STEP_S, LIVE_PROBS, tuple(map(tuple, rows)), tuple(np.full(len(rows), 1 / len(rows)))
    )
    rows[:, 0] = _calibrate_rho(shape_model, rows, targets)
    return rows


def _stats(series: list[np.ndarray]) -> dict:
    allx = np.concatenate(series)
    return {
        "percentiles_mbps": {str(p): round(float(v), 4) for p, v in zip(PERCENTILES, pooled_quantiles(series))},
        "mean_mbps": round(float(allx.mean()), 4),
        "lag1_autocorr": round(lag1_autocorr(series), 4),
        "outage_share": round(float(np.mean(allx == 0)), 5),
    }


def generate_like(model: FittedModel, lengths: list[int], repeats: int, seed: int) -> list[np.ndarray]:
    """``repeats`` generated series for every real length (same step), seeded."""
    rngs = model_rngs(model.name, seed, len(lengths) * repeats, stream="fit-check")
    out: list[np.ndarray] = []
    order = np.repeat(np.asarray(lengths), repeats)
    for n in np.unique(order):
        idx = np.flatnonzero(order == n)
        out.extend(model.generate_mbps([rngs[i] for i in idx], int(n)))
    return out


def fit_model(source: FitSource, files: list[Path], series: list[np.ndarray], root: Path) -> dict:
    """Parameters (and a fit check) of one model as a JSON-ready dict."""
    rows = fit_params(series, source.model)
    params = {
        "description": source.description,
        "source": f"fitted to {len(files)} files of {source.folder} (see fit.files)",
        "step_s": STEP_S,
        "live_probs": list(LIVE_PROBS),
        "file_params": [[round(float(v), 5) for v in r] for r in rows],
        "file_weights": [x.size for x in series],
    }
    model = FittedModel.from_dict({"name": source.model, **params})
    lengths = [x.size for x in series]
    real = _stats(series)
    check = _stats(generate_like(model, lengths, CHECK_REPEATS, seed=0))
    params["fit"] = {
        "set": source.folder,
        "pattern": source.pattern,
        "why": source.why,
        "n_files": len(files),
        "hours": round(sum(lengths) * STEP_S / 3600.0, 3),
        "files": [p.relative_to(root / source.folder).as_posix() for p in files],
        "skipped": [p.relative_to(root / source.folder).as_posix() for p in source.files(root) if p not in set(files)],
        "skip_rule": f"no live step, or fewer than {MIN_STEPS} steps" + (" after trimming" if source.trim else ""),
        "columns": ["latent_rho", "outage_share", "ln_mbps_at_live_probs..."],
        "real": real,
        "generated": check,
    }
    return params


def fit_all(root: Path, names: list[str] | None = None, progress: bool = True) -> dict:
    """Fit every model (or ``names``) from the sets under ``root``; the models.json document."""
    missing = [s.folder for s in FIT_SOURCES.values() if not (root / s.folder).is_dir()]
    if missing:
        raise InputError(f"trace sets not found: {', '.join(missing)}", path=root)
    models = {}
    for name in names or list(FIT_SOURCES):
        src = FIT_SOURCES[name]
        files, series = load_series(src, root)
        models[name] = fit_model(src, files, series, root)
        if progress:
            r, g = models[name]["fit"]["real"], models[name]["fit"]["generated"]
            print(
                f"{name:5s} {len(files):3d} files"
                f"  median {r['percentiles_mbps']['50']:.3g}/{g['percentiles_mbps']['50']:.3g}"
                f"  lag1 {r['lag1_autocorr']:.3f}/{g['lag1_autocorr']:.3f}"
                f"  outage {r['outage_share']:.4f}/{g['outage_share']:.4f}  (real/generated)",
                file=sys.stderr,
            )
    return {
        "format": "promptabr-network-models",
        "version": 1,
        "generated_by": "python -m traces.fit",
        "data": "../shared/data/traces (see each set's PROVENANCE.md); only fitted figures are stored here",
        "step_s": STEP_S,
        "outage_mbps": OUTAGE_MBPS,
        "sets": {s.folder: REAL_SETS[s.folder].network for s in FIT_SOURCES.values()},
        "models": models,
    }


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m traces.fit", description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=default_trace_root(), help="folder of the real trace sets")
    ap.add_argument("--out", type=Path, default=MODELS_PATH, help="where to write the fitted parameters")
    ap.add_argument("--models", default=",".join(FIT_SOURCES), help="comma-separated subset to fit")
    args = ap.parse_args(argv)
    if not args.root.is_dir():
        print(
            f"error: real trace sets not found at {args.root}; the fit needs ../shared/data/traces beside the "
            f"repository (or --root). {args.out} was left unchanged.",
            file=sys.stderr,
        )
        return 2
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    bad = [n for n in names if n not in FIT_SOURCES]
    if bad:
        print(f"error: unknown model(s) {', '.join(bad)}; valid: {', '.join(FIT_SOURCES)}", file=sys.stderr)
        return 2
    print(f"fitting {', '.join(names)} from {args.root}", file=sys.stderr)
    doc = fit_all(args.root, names)
    if args.out.is_file() and set(names) != set(FIT_SOURCES):  # partial refit: keep the other models
        old = read_json(args.out, "network models")
        doc["models"] = {**old.get("models", {}), **doc["models"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, doc)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
