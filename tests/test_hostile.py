"""Hostile and careless input, one table row per case: every command-line entry point and file
reader answers bad input with exit status 2 and one line naming the file or option and the
problem; no traceback, no silently wrong result, no output left behind. Then: no code runs from
a planted file, the Promptus bitstream survives seeded mutants with valid CRCs, and output
folders are locked and swept of stale temporary files.

Rows run in-process (``main(argv)``, the way ``python -m`` calls it) in an empty folder that
holds only the row's input files; afterwards that folder must hold nothing else.
"""

# ruff: noqa: E501  (the case table keeps one case per line)
from __future__ import annotations

import importlib
import json
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
    Case("train-lr-negative", TRAIN, (*T, "--lr", "-1", "--out", "{d}/o"), r"^error: --lr must be in \(0, 1\]", TF),
    Case("train-lr-nan", TRAIN, (*T, "--lr", "nan", "--out", "{d}/o"), r"--lr must be a finite number", TF),
    Case("train-batch-size-0", TRAIN, (*T, "--batch-size", "0", "--out", "{d}/o"), r"--batch-size must be in", TF),
    Case("train-n-steps-0", TRAIN, (*T, "--n-steps", "0", "--out", "{d}/o"), r"--n-steps must be in", TF),
    Case("train-seed-negative", TRAIN, (*T, "--seed", "-5", "--out", "{d}/o"), r"--seed must be in", TF),
    Case("train-config-garbage", TRAIN, ("--config", "{d}/c.json", "--out", "{d}/o"), r"c\.json", {"c.json": b"\x00\xff garbage"}),
    Case("train-config-mistyped", TRAIN, ("--config", "{d}/c.json", "--out", "{d}/o"), r"c\.json.*steps", {"c.json": '{"steps": "many"}'}),
    Case("train-config-list", TRAIN, ("--config", "{d}/c.json", "--out", "{d}/o"), r"c\.json", {"c.json": "[1]"}),
    Case("train-out-into-file", TRAIN, (*T, "--out", "{d}/t.txt"), r"t\.txt", TF),
    Case("train-time-limit-nan", TRAIN, (*T, "--time-limit-min", "nan", "--out", "{d}/o"), r"--time-limit-min", TF),
    Case("train-n-envs-huge", TRAIN, (*T, "--n-envs", "100000000", "--out", "{d}/o"), r"--n-envs must be <= 65536", TF),
    # ---- sim.whatif
    Case("whatif-max-stall-nan", WHATIF, (*T, "--max-stall", "nan", "--out", "{d}/o"), r"--max-stall", TF, kind="silent"),
    Case("whatif-sessions-100M", WHATIF, (*T, "--sessions", "100000000", "--out", "{d}/o"), r"--sessions|sessions.*--force", TF, kind="silent"),
    Case("whatif-out-into-file", WHATIF, (*T, "--out", "{d}/t.txt"), r"t\.txt", TF),
    Case("whatif-workers-0", WHATIF, (*T, "--workers", "0", "--out", "{d}/o"), r"workers", TF, kind="clean"),
    Case("whatif-ray-auto-no-cluster", WHATIF, (*T, "--executor", "ray", "--out", "{d}/o"), r"[Rr]ay", TF, env={"RAY_ADDRESS": "auto"}),
    Case("whatif-grid-garbage", WHATIF, ("--grid", "{d}/g.yaml", "--out", "{d}/o"), r"g\.yaml", {"g.yaml": b"\xff\xfe: [\x00"}),
    # ---- traces
    Case("traces-plot-bad-suffix", TRACES, ("plot", "{d}/t.txt", "--out", "{d}/x.xyz"), r"x\.xyz", TF),
    Case("traces-convert-huge-mahimahi", TRACES, ("convert", "{d}/c.txt", "{d}/o.log", "--to", "mahimahi"), r"c\.txt.*packets", {"c.txt": "0 9000\n100000 9000\n"}),
    Case("traces-info-nan-scale", TRACES, ("info", "{d}/t.txt", "--scale", "nan"), r"scale", TF, kind="silent"),
    # ---- codecs
    Case("encode-seed-negative", ENC, ("{d}/v.mp4", "--seed", "-1", "--out", "{d}/o"), r"--seed"),
    Case("encode-ranks-huge", ENC, ("{d}/v.mp4", "--ranks", "100000", "--out", "{d}/o"), r"--ranks.*4096"),
    Case("encode-target-loss-nan", ENC, ("{d}/v.mp4", "--target-loss", "nan", "--out", "{d}/o"), r"target.loss", kind="silent"),
    Case("decode-out-txt", DEC, ("{d}/s.prmt", "--out", "{d}/x.txt"), r"x\.txt.*--out must end", {"s.prmt": b"PRMT"}),
    Case("ladder-preset-unknown", LAD, ("{d}/v.mp4", "--preset", "nosuchpreset", "--out", "{d}/o"), r"nosuchpreset"),
    # ---- more of the same kinds, beyond the list
    Case("run-policy-unknown", RUN, (*T, "--policy", "nosuch"), r"nosuch", TF, kind="extra"),
    Case("run-policy-bad-key", RUN, (*T, "--policy", "bola:gama=5"), r"gama", TF, kind="extra"),
    Case("run-policy-rl-missing", RUN, (*T, "--policy", "rl:{d}/none"), r"none.*not a folder", TF, kind="extra"),
    Case("run-policy-rl-garbage-config", RUN, (*T, "--policy", "rl:{d}/pol"), r"config\.json", {**TF, "pol/config.json": _nested(100000)}, kind="extra"),
    Case("run-qoe-unknown", RUN, (*T, "--qoe", "nosuch"), r"nosuch", TF, kind="extra"),
    Case("run-sim-unknown", RUN, (*T, "--sim", "nosuch"), r"nosuch", TF, kind="extra"),
    Case("run-device-unknown", RUN, (*T, "--device", "nosuch"), r"nosuch", TF, kind="extra"),
    Case("run-trace-empty-file", RUN, ("--trace", "{d}/e.txt"), r"e\.txt", {"e.txt": ""}, kind="extra"),
    Case("run-trace-missing", RUN, ("--trace", "{d}/missing.txt"), r"missing\.txt", kind="extra"),
    Case("run-trace-count-zero", RUN, ("--trace", "lte", "--trace-count", "0"), r"count", kind="extra"),
    Case("run-shift-nan", RUN, (*T, "--shift", "nan"), r"shift", TF, kind="extra"),
    Case("run-rtt-inf", RUN, (*T, "--rtt-ms", "inf"), r"rtt", TF, kind="extra"),
    Case("run-outages-negative", RUN, (*T, "--outages", "-1"), r"outages", TF, kind="extra"),
    Case("run-test-fraction-nan", RUN, ("--trace", "{d}/tr@test", "--test-fraction", "nan"), r"fraction", {"tr/a.txt": _COOKED, "tr/b.txt": _COOKED}, kind="extra"),
    Case("run-mahimahi-letters", RUN, ("--trace", "{d}/mm.log", "--trace-format", "mahimahi"), r"mm\.log:2", {"mm.log": "1\nabc\n"}, kind="extra"),
    Case("run-sabre-not-list", RUN, ("--trace", "{d}/s.json", "--trace-format", "sabre"), r"s\.json", {"s.json": '{"a": 1}'}, kind="extra"),
    Case("run-ladder-missing", RUN, (*T, "--ladder", "{d}/none.json"), r"none\.json", TF, kind="extra"),
    Case("train-gamma-nan", TRAIN, (*T, "--gamma", "nan", "--out", "{d}/o"), r"gamma", TF, kind="extra"),
    Case("train-reward-scale-inf", TRAIN, (*T, "--reward-scale", "inf", "--out", "{d}/o"), r"--reward-scale must be a finite", TF, kind="extra"),
    Case("train-val-fraction-nan", TRAIN, (*T, "--val-fraction", "nan", "--out", "{d}/o"), r"--val-fraction must be a finite", TF, kind="extra"),
    Case("train-eval-every-0", TRAIN, (*T, "--eval-every", "0", "--out", "{d}/o"), r"--eval-every must be >= 1", TF, kind="extra"),
    Case("train-net-zero", TRAIN, (*T, "--net", "0,8", "--out", "{d}/o"), r"--net must be positive", TF, kind="extra"),
    Case("train-start-rung-99", TRAIN, (*T, "--start-rung", "99", "--out", "{d}/o"), r"start-rung 99", TF, kind="extra"),
    Case("train-resume-foreign-checkpoint", TRAIN, (*T, "--resume", "--out", "{d}/o"), r"o/config\.json.*not found", {**TF, "o/last/checkpoint.zip": b"not a zip"}, kind="extra"),
    Case("whatif-lo-nan", WHATIF, (*T, "--crossover", "--ladder", "h265-measured,promptus-paper-model", "--lo", "nan", "--out", "{d}/o"), r"--lo", TF, kind="extra"),
    Case("whatif-block-negative", WHATIF, (*T, "--block", "-1", "--out", "{d}/o"), r"block", TF, kind="extra"),
    Case("whatif-grid-deep-yaml", WHATIF, ("--grid", "{d}/g.yaml", "--out", "{d}/o"), r"g\.yaml", {"g.yaml": _nested(100000)}, kind="extra"),
    Case("whatif-vary-nan", WHATIF, (*T, "--vary", "shift_s=nan/1", "--out", "{d}/o"), r"shift.*nan", TF, kind="extra"),
    Case("whatif-grid-deep", WHATIF, ("--grid", "{d}/g.json", "--out", "{d}/o"), r"g\.json", {"g.json": _nested(100000)}, kind="extra"),
    Case("whatif-executor-unknown", WHATIF, (*T, "--executor", "nosuch", "--out", "{d}/o"), r"executor", TF, kind="extra"),
    Case("traces-convert-to-proc", TRACES, ("convert", "{d}/t.txt", "/proc/x.json", "--to", "sabre"), r"/proc/x\.json", TF, kind="extra"),
    Case("traces-info-gnettrack-garbage", TRACES, ("info", "{d}/g.csv", "--trace-format", "gnettrack"), r"g\.csv", {"g.csv": "a,b\n1,2\n"}, kind="extra"),
    Case("decode-damaged-stream", DEC, ("{d}/s.prmt", "--out", "{d}/x.mp4"), r"s\.prmt.*corrupt", {"s.prmt": b"PRMT\x01\x00H\xff\xff\xff\xff"}, kind="extra"),
    Case("decode-not-a-stream", DEC, ("{d}/s.prmt", "--out", "{d}/x.mp4"), r"s\.prmt.*magic", {"s.prmt": b"GIF89a......"}, kind="extra"),
    Case("encode-interval-zero", ENC, ("{d}/v.mp4", "--interval", "0", "--out", "{d}/o"), r"--interval", kind="extra"),
    Case("encode-fps-nan", ENC, ("{d}/v.mp4", "--fps", "nan", "--out", "{d}/o"), r"--fps", kind="extra"),
    Case("encode-out-into-file", ENC, ("{d}/v.mp4", "--out", "{d}/v.mp4/o"), r"v\.mp4", {"v.mp4": b"x"}, kind="extra"),
    Case("ladder-kbps-nan", LAD, ("{d}/v.mp4", "--kbps", "nan,100", "--out", "{d}/o"), r"kbps", kind="extra"),
    Case("ladder-chunk-inf", LAD, ("{d}/v.mp4", "--chunk", "inf", "--out", "{d}/o"), r"chunk", kind="extra"),
    Case("rl-convert-untrusted", "policies.rl", ("convert", "{d}/pol"), r"--trust-pickle", kind="extra"),
    Case("ladder-lpips-stride-zero", LAD, ("{d}/v.mp4", "--lpips-stride", "0", "--out", "{d}/o"), r"lpips_stride", kind="extra"),
    Case("run-splice-at-nan", RUN, (*T, "--splice", "lte", "--splice-at", "nan"), r"splice", TF, kind="extra"),
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


def test_case_counts():
    """The table covers every entry point; counts by what the issue found (see the module docstring)."""
    kinds = {k: sum(c.kind == k for c in CASES) for k in ("traceback", "silent", "clean", "extra")}
    modules = {c.module for c in CASES}
    assert modules == {RUN, TRAIN, WHATIF, TRACES, ENC, DEC, LAD, "policies.rl"}
    assert kinds["traceback"] >= 30 and kinds["silent"] >= 18, kinds


def test_broken_pipe_is_quiet(tmp_path):
    """``python -m traces info lte | head -1``: the closed pipe ends the command quietly."""
    code = (
        "import sys; from abr.errors import cli_main\n"
        "@cli_main\n"
        "def main():\n"
        "    for i in range(200000): print('line', i)\n"
        "    return 0\n"
        "sys.exit(main())\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) in (0, 141) and "Traceback" not in err and "BrokenPipe" not in err, err
# ---------------------------------------------------------------------------- bitstream fuzz
def _records(data: bytes) -> list[tuple[int, int]]:
    """(start, payload length) of every record of a valid stream."""
    out, pos = [], 6
    while pos < len(data):
        _, n = struct.unpack_from("<BI", data, pos)
        out.append((pos, n))
        pos += 5 + n + 4
    return out


def _rebuild(data: bytes, start: int, payload: bytes) -> bytes:
    """``data`` with the record at ``start`` given a new payload, its length and CRC recomputed."""
    tag, n = struct.unpack_from("<BI", data, start)
    head = struct.pack("<BI", tag, len(payload))
    rec = head + payload + struct.pack("<I", zlib.crc32(head + payload) & 0xFFFFFFFF)
    return data[:start] + rec + data[start + 5 + n + 4 :]


def _mutants(data: bytes, rng: np.random.Generator, count: int):
    recs = _records(data)
    for _ in range(count):
        start, n = recs[rng.integers(len(recs))]
        payload = bytearray(data[start + 5 : start + 5 + n])
        kind = rng.integers(5)
        if kind == 0 and n:  # flip a few bits
            for _ in range(rng.integers(1, 4)):
                i = rng.integers(n)
                payload[i] ^= 1 << int(rng.integers(8))
        elif kind == 1 and n >= 2:  # an extreme little-endian u16/u32 somewhere (sizes, counts, ranks)
            width = int(rng.choice([2, 4]))
            i = int(rng.integers(max(n - width, 0) + 1))
            value = int(rng.choice([0, 1, 0xFF, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF]))
            payload[i : i + width] = value.to_bytes(8, "little")[:width]
        elif kind == 2:  # cut the payload
            payload = payload[: int(rng.integers(n + 1))]
        elif kind == 3:  # append bytes
            payload += bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
        else:  # random bytes over a stretch
            i = int(rng.integers(n + 1))
            k = int(rng.integers(1, 9))
            payload[i : i + k] = bytes(rng.integers(0, 256, k, dtype=np.uint8))
        yield _rebuild(data, start, bytes(payload))


def _same(a, b) -> bool:
    ka = [(k.frame, k.length, k.u_q, k.v_q, k.u.tobytes(), k.v.tobytes()) for k in a.keyframes]
    kb = [(k.frame, k.length, k.u_q, k.v_q, k.u.tobytes(), k.v.tobytes()) for k in b.keyframes]
    return (a.header == b.header and ka == kb and a.latent.qp == b.latent.qp
            and a.latent.q.tobytes() == b.latent.q.tobytes())  # fmt: skip


@pytest.mark.parametrize("coder", ["raw", "zlib", "lzma", "ac"])
def test_bitstream_mutants_with_valid_crcs_fail_cleanly_or_are_valid_streams(coder):
    """100 seeded mutants per coder, CRCs recomputed: every one is an InputError or a valid
    stream (it re-encodes to a stream that decodes to the same content), none allocates more
    than 32 MiB, and every record kind is hit."""
    from codec.promptus.bitstream import KeyframeRecord, LatentRecord, StreamHeader, decode_stream_bytes, encode_stream
    from codec.promptus.quant import QParams

    rng = np.random.default_rng(CODERS[coder])
    L, D, r = 8, 32, 3
    header = StreamHeader("tiny", "0123456789abcdef", "promptus", 64, 64, (4, 8, 8), (L, D), r, 5, 30.0, 7, 11, 3)
    latent = LatentRecord(rng.integers(0, 256, (1, 4, 8, 8), dtype=np.uint8), QParams(0.02, 120.5))
    kfs = [KeyframeRecord(np.clip(rng.normal(128, 20, (L, r)), 0, 255).astype(np.uint8),
                          np.clip(rng.normal(128, 20, (r, D)), 0, 255).astype(np.uint8),
                          QParams(0.01, 3.0), QParams(0.5, -7.0), frame=f, length=ln)
           for f, ln in ((0, 1), (5, 5), (10, 5))]  # fmt: skip
    data, _ = encode_stream(header, latent, kfs, coder=coder)
    assert _same(decode_stream_bytes(data), decode_stream_bytes(data))
    outcome = {"refused": 0, "valid": 0}
    tracemalloc.start()
    try:
        for mutant in _mutants(data, rng, 100):
            tracemalloc.reset_peak()
            try:
                s = decode_stream_bytes(mutant)
            except InputError as exc:
                assert "corrupt Promptus stream" in str(exc) and "\n" not in str(exc)
                outcome["refused"] += 1
            else:
                again, _ = encode_stream(s.header, s.latent, s.keyframes, coder="raw")
                assert _same(decode_stream_bytes(again), s)
                outcome["valid"] += 1
            assert tracemalloc.get_traced_memory()[1] < 32 << 20
    finally:
        tracemalloc.stop()
    assert outcome["refused"] > 50, outcome


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("latent_shape", (255, 4096, 4096), "latent of 4278190080 elements"),
        ("prompt_shape", (4096, 4096), "prompt 4096x4096"),
        ("rank", 60000, "rank 60000"),
        ("fps", float("inf"), "fps inf"),
        ("fps", float("nan"), "zero or negative"),
        ("n_frames", 4_000_000_000, "4000000000 frames"),
        ("width", 60000, "frame size 60000x64"),
    ],
)
def test_bitstream_header_beyond_limits_is_refused_before_allocating(field, value, message):
    from codec.promptus.bitstream import _header_payload, decode_stream_bytes

    base = dict(generator="g", fingerprint="0123456789abcdef", receiver="promptus", width=64, height=64,
                latent_shape=(4, 8, 8), prompt_shape=(8, 32), rank=3, interval=5, fps=30.0, seed=1, n_frames=11,
                n_keyframes=3)  # fmt: skip
    from codec.promptus.bitstream import StreamHeader

    payload = _header_payload(StreamHeader(**{**base, field: value}))
    head = struct.pack("<BI", ord("H"), len(payload))
    data = b"PRMT" + struct.pack("<H", 1) + head + payload + struct.pack("<I", zlib.crc32(head + payload))
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=re.escape(message)):
            decode_stream_bytes(data)
        assert tracemalloc.get_traced_memory()[1] < 1 << 20
    finally:
        tracemalloc.stop()


def test_entropy_decoders_are_bounded():
    """A zlib bomb stops at the expected size; arithmetic-coded input too short or too long
    for its size is refused before decoding."""
    bomb = zlib.compress(bytes(50 << 20), 9)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="does not end after 1000 bytes"):
            decode_bytes(1, bomb, 1000)
        assert tracemalloc.get_traced_memory()[1] < 4 << 20
    finally:
        tracemalloc.stop()
    with pytest.raises(ValueError, match="cannot hold"):
        ac_decode(b"\0" * 6, 10_000_000)
    with pytest.raises(ValueError, match="more than"):
        ac_decode(b"\0" * 1000, 10)
    data = bytes(range(256)) * 4
    assert ac_decode(ac_encode(data), len(data)) == data


# ---------------------------------------------------------------------------- no code from files
class _Marker:
    """Unpickling this writes a marker file: proof that a loader ran code from a file."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.write_text, (Path(self.path), "pwned"))


def _evil(path: Path) -> bytes:
    import pickle

    return pickle.dumps({"x": _Marker(path)})


def _evil_zip(dest: Path, marker: Path, members: tuple[str, ...]) -> None:
    import zipfile

    with zipfile.ZipFile(dest, "w") as zf:
        for m in members:
            zf.writestr(m, _evil(marker) if m != "data" else json.dumps({"observation_space": {":serialized:": __import__("base64").b64encode(_evil(marker)).decode()}}))


RL_PPO = ROOT / "bench" / "results" / "rl-ppo"


def test_the_marker_really_runs_code_when_unpickled(tmp_path):
    import pickle

    pickle.loads(_evil(tmp_path / "m"))  # noqa: S301 - the control: plain pickle runs it
    assert (tmp_path / "m").read_text() == "pwned"


def test_rl_policy_folder_runs_no_code(tmp_path):
    """A planted vecnormalize.pkl, model.zip data and policy.pth: refused, nothing runs."""
    pytest.importorskip("stable_baselines3")
    import shutil

    from policies.registry import get_policy

    marker = tmp_path / "marker"
    folder = tmp_path / "pol"
    shutil.copytree(RL_PPO, folder)
    # 1) an old-format folder: statistics in a (planted) pickle, none in model.zip
    import zipfile

    from policies.rl import NORMALIZER_MEMBER

    with zipfile.ZipFile(RL_PPO / "model.zip") as src, zipfile.ZipFile(folder / "model.zip", "w") as dst:
        for info in src.infolist():
            if info.filename == NORMALIZER_MEMBER:
                continue
            blob = src.read(info)
            dst.writestr(info, _evil(marker) if info.filename == "data" else blob)
    (folder / "vecnormalize.pkl").write_bytes(_evil(marker))
    with pytest.raises(InputError, match="does not load.*--trust-pickle"):
        get_policy(f"rl:{folder}")
    # 2) weights that are a pickle with code
    _evil_zip(folder / "model.zip", marker, ("data", "policy.pth", "pytorch_variables.pth"))
    with pytest.raises(InputError, match="policy.pth is not a plain state dict"):
        get_policy(f"rl:{folder}")
    assert not marker.exists()


def test_train_resume_runs_no_code(tmp_path):
    """sim.train --resume on a planted checkpoint (new and old layout): refused, nothing runs."""
    pytest.importorskip("stable_baselines3")
    from sim.train import TrainConfig, train

    marker = tmp_path / "marker"
    traces = tmp_path / "traces"
    traces.mkdir()
    for i in range(4):
        (traces / f"t{i}.txt").write_text(_COOKED)
    cfg = TrainConfig(traces=(str(traces),), ladder="synthetic:promptus", steps=64, n_envs=2, n_steps=32,
                      batch_size=64, eval_every=64, net_arch=(8,))  # fmt: skip
    out = tmp_path / "run"
    (out / "last").mkdir(parents=True)
    (out / "config.json").write_text(json.dumps({"train": cfg.to_dict()}))
    (out / "last" / "state.json").write_text("{}")
    (out / "last" / "vecnormalize.pkl").write_bytes(_evil(marker))
    (out / "last" / "model.zip").write_bytes(b"")
    _evil_zip(out / "last" / "model.zip", marker, ("data", "policy.pth"))
    with pytest.raises(InputError, match="older promptabr"):
        train(cfg, out, resume=True, progress=False)
    _evil_zip(out / "last" / "checkpoint.zip", marker, ("data", "policy.pth", "policy.optimizer.pth"))
    import zipfile

    with zipfile.ZipFile(out / "last" / "checkpoint.zip", "a") as zf:  # readable state, planted weights
        zf.writestr("state.json", json.dumps({"timesteps": 64}))
        zf.writestr("vecnormalize.json", "{}")
    with pytest.raises(InputError, match="not a plain state dict"):
        train(cfg, out, resume=True, progress=False)
    assert not marker.exists()


def test_promptus_fit_checkpoint_runs_no_code_and_real_ones_still_load(tmp_path):
    import torch

    from codec.promptus.fit import KeyframeFit, _atomic_save, _ckpt_doc, _load_ckpt
    from codec.promptus.quant import QParams, QuantFactors

    rng = np.random.default_rng(0)
    q = QuantFactors(rng.integers(0, 256, (8, 3), dtype=np.uint8), rng.integers(0, 256, (3, 16), dtype=np.uint8),
                     QParams(0.01, 3.0), QParams(0.5, -7.0))  # fmt: skip
    kf = KeyframeFit(5, 5, q, torch.randn(1, 4, 8, 8), 0.25, np.array([0.1, 0.2]), 40, 1.5)
    _atomic_save(_ckpt_doc(kf, "abc"), tmp_path / "kf.pt")
    back = _load_ckpt(tmp_path / "kf.pt", "abc")
    assert back is not None and back.frame == 5 and np.array_equal(back.factors.u, q.u)
    assert np.array_equal(back.frame_mse, kf.frame_mse) and torch.equal(back.latent, kf.latent)
    assert _load_ckpt(tmp_path / "kf.pt", "other") is None
    marker = tmp_path / "marker"
    torch.save({"digest": "abc", "u": _Marker(marker)}, tmp_path / "evil.pt")
    assert _load_ckpt(tmp_path / "evil.pt", "abc") is None
    assert not marker.exists()


def test_committed_rl_policy_loads_safely_and_acts_as_before():
    """bench/results/rl-ppo, converted to the safe format, takes the actions SB3's own loader and
    the old pickled statistics gave (48 seeded inputs, recorded before the conversion)."""
    pytest.importorskip("stable_baselines3")
    from policies.rl import RLPolicy

    policy = RLPolicy.load(RL_PPO)
    x = np.random.default_rng(20).uniform(0, 3, size=(48, 62)).astype(np.float32)
    actions = policy.model.predict(policy.normalizer(x), deterministic=True)[0]
    assert "".join(map(str, actions)) == "443534254454543534354435535345435445355544553552"
    assert not (RL_PPO / "vecnormalize.pkl").exists()


def test_normalizer_matches_vecnormalize():
    pytest.importorskip("stable_baselines3")
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from policies.rl import ObsNormalizer

    env = DummyVecEnv([lambda: gym.make("CartPole-v1")])
    vn = VecNormalize(env, clip_obs=2.0)
    rng = np.random.default_rng(1)
    vn.obs_rms.update(rng.normal(3, 2, (50, 4)))
    x = rng.normal(3, 4, (20, 4)).astype(np.float32)
    norm = ObsNormalizer.from_vecnormalize(vn)
    np.testing.assert_array_equal(norm(x), vn.normalize_obs(x))
    again = ObsNormalizer.from_dict(json.loads(json.dumps(norm.to_dict())), "x")
    np.testing.assert_array_equal(again(x), vn.normalize_obs(x))
    with pytest.raises(InputError, match="bad normaliser"):
        ObsNormalizer.from_dict({**norm.to_dict(), "var": [float("nan")] * 4}, "x")


# ---------------------------------------------------------------------------- locks, stale files, workers
def test_folder_lock_refuses_a_second_writer_and_recovers_from_a_dead_one(tmp_path):
    from abr.lock import LOCK_NAME, folder_lock

    out = tmp_path / "out"
    hold = subprocess.Popen([sys.executable, "-c", "import sys, time; from abr.lock import folder_lock\n"
                             f"with folder_lock({str(out)!r}, 'holder'):\n print('held', flush=True); time.sleep(60)"],
                            stdout=subprocess.PIPE, cwd=ROOT)  # fmt: skip
    assert hold.stdout.readline().strip() == b"held"
    with pytest.raises(InputError, match=rf"in use by PID {hold.pid} .*holder"):
        with folder_lock(out):
            pass
    hold.kill()  # kill -9: the lock file stays, but its flock died with the process
    hold.wait()
    assert (out / LOCK_NAME).exists()
    (out / ".summary.csv.x1y2.tmp").write_text("partial")
    (out / "cells").mkdir()
    (out / "cells" / ".ab.parquet.z.tmp.parquet").write_text("partial")
    (out / "keep.csv").write_text("done")
    with folder_lock(out):
        with folder_lock(out):  # re-entrant in one process
            pass
        assert {p.name for p in out.rglob("*")} == {"cells", LOCK_NAME, "keep.csv"}
    assert not (out / LOCK_NAME).exists()


def test_whatif_refuses_a_locked_out_folder(tmp_path, capsys):
    from sim.whatif import main

    (tmp_path / "t.txt").write_text(_COOKED)
    out = tmp_path / "o"
    hold = subprocess.Popen([sys.executable, "-c", "import time; from abr.lock import folder_lock\n"
                             f"with folder_lock({str(out)!r}, 'other'):\n print('held', flush=True); time.sleep(60)"],
                            stdout=subprocess.PIPE, cwd=ROOT)  # fmt: skip
    try:
        assert hold.stdout.readline().strip() == b"held"
        assert main(["--trace", str(tmp_path / "t.txt"), "--out", str(out), "--fresh", "--no-progress"]) == 2
        assert re.search(r"in use by PID \d+", capsys.readouterr().err)
    finally:
        hold.kill()
        hold.wait()


def test_process_workers_die_with_their_parent(tmp_path):
    """kill -9 of a driver using ProcessExecutor: its workers are gone within seconds."""
    script = (
        "import os, time\n"
        "from sim.sweep._executors import ProcessExecutor\n"
        "ex = ProcessExecutor(2, start_method='fork')\n"
        "it = ex.map(time.sleep, [600] * 4)\n"
        "import threading; threading.Thread(target=lambda: next(it), daemon=True).start()\n"
        "while ex._pool is None or len(ex._pool._processes or {}) < 2: time.sleep(0.05)\n"
        "time.sleep(0.5)\n"
        "print(' '.join(str(p) for p in ex._pool._processes), flush=True)\n"
        "time.sleep(600)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=ROOT)
    pids = [int(x) for x in p.stdout.readline().split()]
    assert len(pids) == 2
    p.kill()
    p.wait()
    import time

    deadline = time.monotonic() + 20
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]
        time.sleep(0.2)
    assert not alive, f"workers {alive} outlived their parent"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_legacy_policy_folder_converts_only_when_trusted(tmp_path, capsys):
    """An old folder (statistics in vecnormalize.pkl) is refused until converted with
    --trust-pickle; converted, it acts exactly as the committed policy."""
    pytest.importorskip("stable_baselines3")
    import shutil
    import zipfile

    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from policies.rl import NORMALIZER_MEMBER, RLPolicy, main

    class _Env(gym.Env):
        observation_space = gym.spaces.Box(0, 100, (62,), np.float32)
        action_space = gym.spaces.Discrete(6)

        def reset(self, *, seed=None, options=None):
            return np.zeros(62, np.float32), {}

        def step(self, action):
            return np.zeros(62, np.float32), 0.0, True, False, {}

    folder = tmp_path / "old"
    shutil.copytree(RL_PPO, folder)
    with zipfile.ZipFile(RL_PPO / "model.zip") as src:
        norm = json.loads(src.read(NORMALIZER_MEMBER))
        with zipfile.ZipFile(folder / "model.zip", "w") as dst:
            for info in src.infolist():
                if info.filename != NORMALIZER_MEMBER:
                    dst.writestr(info, src.read(info))
    vn = VecNormalize(DummyVecEnv([_Env]), clip_obs=norm["clip"], epsilon=norm["epsilon"])
    vn.obs_rms.mean, vn.obs_rms.var = np.array(norm["mean"]), np.array(norm["var"])
    vn.save(str(folder / "vecnormalize.pkl"))
    with pytest.raises(InputError, match="convert"):
        RLPolicy.load(folder)
    assert main(["convert", str(folder)]) == 2 and "--trust-pickle" in capsys.readouterr().err
    assert main(["convert", str(folder), "--trust-pickle"]) == 0
    assert not (folder / "vecnormalize.pkl").exists()
    policy = RLPolicy.load(folder)
    x = np.random.default_rng(20).uniform(0, 3, size=(48, 62)).astype(np.float32)
    actions = policy.model.predict(policy.normalizer(x), deterministic=True)[0]
    assert "".join(map(str, actions)) == "443534254454543534354435535345435445355544553552"
