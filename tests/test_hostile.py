"""Hostile and careless input, one table row per case: every command-line entry point and file
reader answers bad input with exit status 2 and one line naming the file or option and the
problem; no traceback, no silently wrong result, no output left behind. Then: no code runs from
a planted file, the Promptus bitstream survives seeded mutants with valid CRCs, and output
folders are locked and swept of stale temporary files.

Rows run in-process (``main(argv)``, the way ``python -m`` calls it) in an empty folder that
holds only the row's input files; afterwards that folder must hold nothing else.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import struct
import subprocess
import sys
import tracemalloc
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from abr.errors import InputError
from codec.promptus.entropy import CODERS, ac_decode, ac_encode, decode_bytes

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    """One hostile input: ``module.main(argv)`` with ``{d}`` in argv replaced by the case folder.

    :param files: input files written into the case folder first (name -> text or bytes).
    :param match: regex the one error line must match (it names the option or file and the problem).
    :param env: environment variables set for the case.
    """

    id: str
    module: str
    argv: tuple[str, ...]
    match: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    kind: str = "traceback"  # what the issue found: "traceback", "silent" (wrong result) or "clean"


_COOKED = "".join(f"{t} {2.0 + (t % 3)}\n" for t in range(60))
_SABRE = json.dumps([{"duration_ms": 1000, "bandwidth_kbps": 2000, "latency_ms": 20}] * 30)
_LADDER_OK = None  # filled lazily: a valid ladder JSON to mistype


def _ladder_doc() -> dict:
    from abr.registry import get_ladder

    return get_ladder("synthetic:promptus").to_dict()


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _mistyped_ladder() -> str:
    doc = _ladder_doc()
    doc["rungs"][0]["kbps"] = "fast"
    return json.dumps(doc)


def _mistyped_device() -> str:
    return json.dumps({"name": "x", "decode_ms_per_frame": ["promptus", 1]})


RUN, TRAIN, WHATIF, TRACES = "sim.run", "sim.train", "sim.whatif", "traces.__main__"
ENC, DEC, LAD = "codec.encode", "codec.decode", "codec.ladder"
T = ("--trace", "{d}/t.txt")  # a small valid trace
TF = {"t.txt": _COOKED}

CASES: list[Case] = [
    # ---- device and ladder JSON
    Case("device-garbage-bytes", RUN, (*T, "--device", "{d}/dev.json"), r"dev\.json", {**TF, "dev.json": b"\xff\xfe\x00garbage"}),
    Case("device-mistyped", RUN, (*T, "--device", "{d}/dev.json"), r"dev\.json.*decode_ms_per_frame", {**TF, "dev.json": _mistyped_device()}),
    Case("device-nan-ms", RUN, (*T, "--device", "{d}/dev.json"), r"dev\.json|decode time", {**TF, "dev.json": '{"decode_ms_per_frame": {"*": NaN}}'}, kind="silent"),
    Case("device-huge-ms", RUN, (*T, "--device", "{d}/dev.json"), r"decode time", {**TF, "dev.json": '{"decode_ms_per_frame": {"*": 1e300}}'}, kind="silent"),
    Case("ladder-garbage-bytes", RUN, (*T, "--ladder", "{d}/lad.json"), r"lad\.json", {**TF, "lad.json": b"\xff\xfe\x00garbage"}),
    Case("ladder-mistyped", RUN, (*T, "--ladder", "{d}/lad.json"), r"lad\.json", {**TF, "lad.json": "@mistyped_ladder"}),
    Case("ladder-not-object", RUN, (*T, "--ladder", "{d}/lad.json"), r"lad\.json", {**TF, "lad.json": "[1, 2]"}),
    Case("ladder-deep-json", RUN, (*T, "--ladder", "{d}/lad.json"), r"lad\.json", {**TF, "lad.json": _nested(100000)}),
    Case("ladder-huge-repeat", RUN, (*T, "--ladder", "h265-measured*1000000000"), r"h265-measured\*1000000000"),
    # ---- traces
    Case("mahimahi-1e14-ms", RUN, ("--trace", "{d}/mm.log", "--trace-format", "mahimahi"), r"mm\.log", {"mm.log": "1\n5\n100000000000000\n"}),
    Case("lte-duration-1e12", RUN, ("--trace", "lte:duration_s=1e12"), r"duration_s"),
    Case("sabre-deep-json", RUN, ("--trace", "{d}/s.json"), r"s\.json", {"s.json": _nested(100000)}),
    Case("sabre-booleans", RUN, ("--trace", "{d}/s.json"), r"s\.json", {"s.json": json.dumps([{"duration_ms": True, "bandwidth_kbps": 2000, "latency_ms": 20}] * 3)}, kind="silent"),
    Case("sabre-latency-1e300", RUN, ("--trace", "{d}/s.json"), r"s\.json.*latency", {"s.json": json.dumps([{"duration_ms": 1000, "bandwidth_kbps": 2000, "latency_ms": 1e300}] * 3)}, kind="silent"),
    Case("cooked-rate-1e308", RUN, ("--trace", "{d}/c.txt"), r"c\.txt", {"c.txt": "0 1e308\n1 1e308\n2 1\n"}, kind="silent"),
    Case("cooked-rate-subnormal", RUN, ("--trace", "{d}/c.txt"), r"c\.txt", {"c.txt": "0 5e-324\n1 5e-324\n2 5e-324\n"}, kind="silent"),
    Case("cooked-nan", RUN, ("--trace", "{d}/c.txt"), r"c\.txt", {"c.txt": "0 nan\n1 2\n2 2\n"}),
    Case("trace-count-10M", RUN, ("--trace", "lte", "--trace-count", "10000000"), r"--trace-count.*--force", kind="silent"),
    # ---- simulator options
    Case("sessions-100M", RUN, (*T, "--sessions", "100000000"), r"--sessions.*--force", TF, kind="silent"),
    Case("sessions-zero", RUN, (*T, "--sessions", "0"), r"--sessions", TF, kind="clean"),
    Case("bola-gamma-nan", RUN, (*T, "--policy", "bola:gamma=nan"), r"gamma", TF, kind="silent"),
    Case("bba-reservoir-nan", RUN, (*T, "--policy", "bba:reservoir_s=nan"), r"reservoir_s", TF, kind="silent"),
    Case("bba-reservoir-inf", RUN, (*T, "--policy", "bba:reservoir_s=inf"), r"reservoir_s", TF, kind="silent"),
    Case("oracle-position-nan", RUN, (*T, "--policy", "oracle:position_s=nan"), r"position_s", TF, kind="silent"),
    Case("fixed-rung-99", RUN, (*T, "--policy", "fixed:rung=99"), r"rung.*99", TF, kind="silent"),
    Case("scale-nan", RUN, (*T, "--scale", "nan"), r"--scale|scale", TF, kind="silent"),
    Case("cap-inf", RUN, (*T, "--cap", "inf"), r"--cap|cap", TF, kind="silent"),
    Case("out-into-file", RUN, (*T, "--out", "{d}/t.txt/r.json"), r"t\.txt", TF),
    Case("out-dir-named-json", RUN, (*T, "--out", "{d}/r.json"), r"r\.json", {**TF, "r.json/keep": "x"}),
    Case("out-proc", RUN, (*T, "--out", "/proc/r.json"), r"/proc/r\.json", TF),
    Case("out-bad-suffix", RUN, (*T, "--out", "{d}/r.xyz"), r"r\.xyz", TF, kind="clean"),
    # ---- sim.train
    Case("train-lr-negative", TRAIN, (*T, "--lr", "-1", "--out", "{d}/o"), r"learning_rate", TF),
    Case("train-lr-nan", TRAIN, (*T, "--lr", "nan", "--out", "{d}/o"), r"learning_rate", TF),
    Case("train-batch-size-0", TRAIN, (*T, "--batch-size", "0", "--out", "{d}/o"), r"batch_size", TF),
    Case("train-n-steps-0", TRAIN, (*T, "--n-steps", "0", "--out", "{d}/o"), r"n_steps", TF),
    Case("train-seed-negative", TRAIN, (*T, "--seed", "-5", "--out", "{d}/o"), r"seed", TF),
    Case("train-config-garbage", TRAIN, ("--config", "{d}/c.json", "--out", "{d}/o"), r"c\.json", {"c.json": b"\x00\xff garbage"}),
    Case("train-config-mistyped", TRAIN, ("--config", "{d}/c.json", "--out", "{d}/o"), r"c\.json.*steps", {"c.json": '{"steps": "many"}'}),
    Case("train-config-list", TRAIN, ("--config", "{d}/c.json", "--out", "{d}/o"), r"c\.json", {"c.json": "[1]"}),
    Case("train-out-into-file", TRAIN, (*T, "--out", "{d}/t.txt"), r"t\.txt", TF),
    Case("train-time-limit-nan", TRAIN, (*T, "--time-limit-min", "nan", "--out", "{d}/o"), r"--time-limit-min", TF),
    Case("train-n-envs-huge", TRAIN, (*T, "--n-envs", "100000000", "--out", "{d}/o"), r"n_envs", TF),
    # ---- sim.whatif
    Case("whatif-max-stall-nan", WHATIF, (*T, "--max-stall", "nan", "--out", "{d}/o"), r"--max-stall", TF, kind="silent"),
    Case("whatif-sessions-100M", WHATIF, (*T, "--sessions", "100000000", "--out", "{d}/o"), r"--sessions|sessions.*--force", TF, kind="silent"),
    Case("whatif-out-into-file", WHATIF, (*T, "--out", "{d}/t.txt"), r"t\.txt", TF),
    Case("whatif-workers-0", WHATIF, (*T, "--workers", "0", "--out", "{d}/o"), r"workers", TF, kind="clean"),
    Case("whatif-ray-auto-no-cluster", WHATIF, (*T, "--executor", "ray", "--out", "{d}/o"), r"[Rr]ay", TF, env={"RAY_ADDRESS": "auto"}),
    Case("whatif-grid-garbage", WHATIF, ("--grid", "{d}/g.yaml", "--out", "{d}/o"), r"g\.yaml", {"g.yaml": b"\xff\xfe: [\x00"}),
    # ---- traces
    Case("traces-plot-bad-suffix", TRACES, ("plot", "{d}/t.txt", "--out", "{d}/x.xyz"), r"x\.xyz", TF),
    Case("traces-convert-huge-mahimahi", TRACES, ("convert", "{d}/c.txt", "{d}/o.log", "--to", "mahimahi"), r"c\.txt.*packets", {"c.txt": "0 100000\n10000 100000\n"}),
    Case("traces-info-nan-scale", TRACES, ("info", "{d}/t.txt", "--scale", "nan"), r"scale", TF, kind="silent"),
    # ---- codecs
    Case("encode-seed-negative", ENC, ("{d}/v.mp4", "--seed", "-1", "--out", "{d}/o"), r"--seed"),
    Case("encode-ranks-huge", ENC, ("{d}/v.mp4", "--ranks", "100000", "--out", "{d}/o"), r"--ranks.*4096"),
    Case("encode-target-loss-nan", ENC, ("{d}/v.mp4", "--target-loss", "nan", "--out", "{d}/o"), r"target.loss", kind="silent"),
    Case("decode-out-txt", DEC, ("{d}/s.prmt", "--out", "{d}/x.txt"), r"x\.txt.*--out must end", {"s.prmt": b"PRMT"}),
    Case("ladder-preset-unknown", LAD, ("{d}/v.mp4", "--preset", "nosuchpreset", "--out", "{d}/o"), r"nosuchpreset"),
]
# fmt: on

_MISTYPED = {"@mistyped_ladder": _mistyped_ladder}


def _materialize(case: Case, folder: Path) -> list[str]:
    for name, content in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str) and content in _MISTYPED:
            content = _MISTYPED[content]()
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return [a.replace("{d}", str(folder)) for a in case.argv]


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line_and_exit_2(case, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "case"
    folder.mkdir()
    argv = _materialize(case, folder)
    before = _listing(folder)
    for k, v in case.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(folder)
    main = importlib.import_module(case.module).main
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage line + "error:" line
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (code, err)
    assert err, "no error message"
    line = err[-1]
    assert "Traceback" not in "\n".join(err)
    assert "error:" in line, err
    if not line.startswith("error:"):  # argparse's own error: usage lines come first
        assert err[0].startswith("usage:"), err
    assert re.search(case.match, line), (case.match, line)
    assert _listing(folder) == before, "output left behind"
