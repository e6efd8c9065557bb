"""The one JSON-file reader (abr.io.read_json) and the callers that go through it."""

from __future__ import annotations

import pytest

import abr.io
from abr.errors import InputError
from abr.io import parse_json, read_json


def _callers():
    from abr.importers import import_sabre_movie
    from abr.ladder import load_ladder
    from sim.device import load_device
    from sim.sweep import load_grid
    from traces.formats import read_trace

    return {
        "ladder": load_ladder,
        "device profile": load_device,
        "grid": load_grid,
        "Sabre movie": import_sabre_movie,
        "Sabre trace": lambda p: read_trace(p, "sabre"),
    }


BAD = {
    "not UTF-8": (b'["\xff\xfe"]', "not UTF-8 text"),
    "bad JSON": (b'{"a": 1,\n  oops}', "invalid JSON in {kind} file"),
    "deep": (b"[" * 100_000, "JSON nested too deeply"),
}


@pytest.mark.parametrize("kind", ["ladder", "device profile", "grid", "Sabre movie", "Sabre trace"])
@pytest.mark.parametrize("case", list(BAD))
def test_every_reader_names_the_file_in_one_line(tmp_path, kind, case):
    data, message = BAD[case]
    path = tmp_path / "input.json"
    path.write_bytes(data)
    with pytest.raises(InputError) as exc:
        _callers()[kind](path)
    msg = str(exc.value)
    if case == "not UTF-8" and kind == "Sabre trace":  # traces are read as text first, by abr.io.read_text
        message = "cannot read trace file"
    assert msg.startswith(str(path)) and message.format(kind=kind) in msg and "\n" not in msg
    if case == "bad JSON":
        assert msg.startswith(f"{path}:2: ")  # the line of the error


@pytest.mark.parametrize("kind", ["ladder", "device profile", "grid", "Sabre movie"])
def test_oversized_files_are_refused_before_reading(tmp_path, monkeypatch, kind):
    path = tmp_path / "big.json"
    path.write_text("[" + "0," * 600 + "0]")
    monkeypatch.setattr(abr.io, "MAX_JSON_BYTES", 1000)
    with pytest.raises(InputError, match=r"big\.json: .*file too large \(1,203 bytes; the limit is 1,000\)"):
        _callers()[kind](path)


def test_read_json(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b'\xef\xbb\xbf{"x": [1, 2.5, "s"]}')  # a byte-order mark is allowed
    assert read_json(path, "test") == {"x": [1, 2.5, "s"]}
    assert read_json(path, "test", max_bytes=path.stat().st_size) == {"x": [1, 2.5, "s"]}
    with pytest.raises(InputError, match="too large"):
        read_json(path, "test", max_bytes=path.stat().st_size - 1)
    with pytest.raises(InputError, match=f"^{tmp_path / 'none.json'}: test file not found$"):
        read_json(tmp_path / "none.json", "test")
    with pytest.raises(InputError, match=f"^{tmp_path}: expected a test file, got a folder$"):
        read_json(tmp_path, "test")
    with pytest.raises(InputError, match=r"^x\.json: invalid JSON in test file \(Exceeds"):
        parse_json("1" * 5000, "x.json", "test")  # Python's integer digit limit
