"""``abr.ladder`` pinned by hand-made ladders: every validation rule (just inside and just
outside), the derived views, rung selection, truncation, repetition, decoder swaps, the JSON
document's errors, and combining/concatenating ladders. Expected values are worked out by hand.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from abr.errors import InputError
from abr.ladder import (
    DEFAULT_SEVERE_LPIPS,
    FORMAT,
    VERSION,
    Ladder,
    RungInfo,
    combine_ladders,
    concat_ladders,
    load_ladder,
    save_ladder,
)


def two_rungs() -> tuple[RungInfo, RungInfo]:
    # built in each test, not at import: constructors run under test (and under a mutant) then
    return RungInfo("promptus", "sd-turbo", 10.0, rank=2, interval=10), RungInfo("h265", "hevc", 300.0)


def lad(name="v", rungs=None, n=2, **kw) -> Ladder:
    """``n`` 2 s chunks of 60 frames; rung j of chunk i is 1000 (i + 1) (j + 1) bytes."""
    rungs = two_rungs() if rungs is None else rungs
    k = len(rungs)
    base = dict(
        name=name,
        rungs=rungs,
        duration_s=[2.0] * n,
        frames=[60] * n,
        size_bytes=[[1000.0 * (i + 1) * (j + 1) for j in range(k)] for i in range(n)],
        lpips_mean=[[(3 - j) / 10 for j in range(k)] for _ in range(n)],
        lpips_p95=[[(4 - j) / 10 for j in range(k)] for _ in range(n)],
        severe_frac=[[0.5 / (j + 1) for j in range(k)] for _ in range(n)],
    )
    base.update(kw)
    return Ladder(**base)


# -- RungInfo ------------------------------------------------------------------------------------


def test_rung_labels_and_validation():
    R = two_rungs()
    assert R[0].label == "promptus-r2"
    assert R[1].label == "h265-300k"
    assert RungInfo("h265", "hevc", 0.5).kbps == 0.5  # any positive rate
    assert RungInfo("av1", "dav1d", 250.5).label == "av1-250.5k"
    assert RungInfo("av1", "dav1d", 250.5, label="mine").label == "mine"
    for bad in [dict(family=""), dict(decoder="")]:
        with pytest.raises(ValueError, match="^RungInfo needs a family and a decoder$"):
            RungInfo(**{"family": "f", "decoder": "d", "kbps": 1.0, **bad})
    for kbps in (0.0, -5.0, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"^RungInfo.kbps must be positive, got -?(0.0|5.0|nan|inf)$"):
            RungInfo("f", "d", kbps)


# -- Ladder validation ---------------------------------------------------------------------------


def test_a_valid_ladder_and_its_views():
    x = lad(n=3, metadata={"synthetic": True})
    assert (x.n_chunks, x.n_rungs) == (3, 2)
    assert x.kbps.tolist() == [10.0, 300.0]
    # 1000 B in 2 s = 8000 bit / 2 s = 4 kbit/s; chunk 3 rung 2: 6000 B -> 24 kbit/s
    assert x.measured_kbps.tolist() == [[4.0, 8.0], [8.0, 16.0], [12.0, 24.0]]
    assert x.decoders == ("sd-turbo", "hevc")
    assert x.total_duration_s == 6.0
    assert x.is_synthetic and not lad().is_synthetic
    assert x.severe_lpips == DEFAULT_SEVERE_LPIPS == 0.25
    assert x.frames.dtype == np.int64 and x.size_bytes.dtype == np.float64
    for a in (x.duration_s, x.frames, x.size_bytes, x.lpips_mean, x.lpips_p95, x.severe_frac):
        assert not a.flags.writeable
    assert isinstance(lad(rungs=list(two_rungs())).rungs, tuple)
    # numbers of the other kind are converted: float durations/sizes, integer frames
    y = lad(duration_s=[2, 2], frames=[60.0, 1.0], size_bytes=[[1, 2], [3, 4]])
    assert y.duration_s.dtype == np.float64 and y.frames.dtype == np.int64 and y.size_bytes.dtype == np.float64
    assert y.frames.tolist() == [60, 1]  # one frame is a valid chunk


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(n=0, duration_s=[], frames=[]), "a ladder needs at least one chunk and one rung"),
        (dict(rungs=(), size_bytes=[[], []], lpips_mean=[[], []], lpips_p95=[[], []], severe_frac=[[], []]),
         "a ladder needs at least one chunk and one rung"),
        (dict(frames=[60]), r"frames has shape \(1,\), expected \(2,\)"),
        (dict(frames=[[60, 60]]), r"frames must be 1-D, got shape \(1, 2\)"),
        (dict(duration_s=[[2.0, 2.0]]), r"duration_s must be 1-D, got shape \(1, 2\)"),
        (dict(size_bytes=[1.0, 2.0]), r"size_bytes must be 2-D, got shape \(2,\)"),
        (dict(size_bytes=[[1.0, 2.0]]), r"size_bytes has shape \(1, 2\), expected \(2, 2\)"),
        (dict(severe_frac=[[0.1], [0.1]]), r"severe_frac has shape \(2, 1\), expected \(2, 2\)"),
        (dict(duration_s=[2.0, 0.0]), "duration_s must be positive"),
        (dict(frames=[60, 0]), "frames must be positive"),
        (dict(size_bytes=[[1.0, 0.0], [1.0, 1.0]]), "size_bytes must be positive"),
        (dict(lpips_mean=[[0.1, -0.01], [0.1, 0.1]]), "lpips_mean must be non-negative"),
        (dict(lpips_p95=[[0.1, 0.1], [-0.01, 0.1]]), "lpips_p95 must be non-negative"),
        (dict(severe_frac=[[0.1, 1.01], [0.1, 0.1]]), r"severe_frac must lie in \[0, 1\]"),
        (dict(severe_frac=[[0.1, 0.1], [-0.01, 0.1]]), r"severe_frac must lie in \[0, 1\]"),
        (dict(rungs="reversed"), r"rungs must be ordered by kbps, lowest first; got \[300.0, 10.0\]"),
    ],
)  # fmt: skip
def test_each_rule_is_checked(kw, message):
    if kw.get("rungs") == "reversed":
        kw = dict(rungs=two_rungs()[::-1])
    with pytest.raises(ValueError) as e:
        lad(**kw)
    assert re.fullmatch(message, str(e.value)), str(e.value)


def test_values_on_the_bounds_are_accepted():
    same = (RungInfo("a", "d", 5.0), RungInfo("b", "d", 5.0))  # equal kbps is still ordered
    x = lad(rungs=same, lpips_mean=[[0.0, 0.0]] * 2, lpips_p95=[[0.0, 0.0]] * 2, severe_frac=[[0.0, 1.0]] * 2)
    assert x.severe_frac.tolist() == [[0.0, 1.0]] * 2


# -- select, head, with_decoder, repeat ----------------------------------------------------------


def test_select():
    x = lad(rungs=(*two_rungs(), RungInfo("h265", "hevc", 900.0)))
    s = x.select([2, 0, 2])  # sorted, duplicates dropped
    assert s.name == "v[0,2]" and s.kbps.tolist() == [10.0, 900.0]
    assert s.size_bytes.tolist() == [[1000.0, 3000.0], [2000.0, 6000.0]]
    assert s.severe_frac.tolist() == [[0.5, 0.5 / 3]] * 2
    assert x.select((1,), name="only").name == "only"
    for bad in ([], [-1], [3], [0, 3]):
        with pytest.raises(InputError, match=r"out of range 0..2"):
            x.select(bad)


def test_head():
    x = lad(n=3)
    h = x.head(2)
    assert h.n_chunks == 2 and h.frames.tolist() == [60, 60]
    assert h.size_bytes.tolist() == [[1000.0, 2000.0], [2000.0, 4000.0]] and h.name == "v"
    assert x.head(3).n_chunks == 3 and x.head(1).lpips_p95.shape == (1, 2)
    for n in (0, 4):
        with pytest.raises(InputError, match=r"n_chunks must be in 1..3, got"):
            x.head(n)


def test_with_decoder():
    x = lad(metadata={"a": 1})
    y = x.with_decoder("phone", family="promptmobile")
    assert y.decoders == ("phone", "phone")
    # every rung moves to the new family, and its label with it
    assert [r.label for r in y.rungs] == ["promptmobile-r2", "promptmobile-300k"]
    assert [r.family for r in y.rungs] == ["promptmobile", "promptmobile"]
    assert y.name == "v:phone" and y.metadata == {"a": 1, "decoder": "phone"}
    z = x.with_decoder("npu", name="n")
    assert z.name == "n" and [r.family for r in z.rungs] == ["promptus", "h265"]
    assert [r.label for r in z.rungs] == ["promptus-r2", "h265-300k"]
    # a label of one's own keeps its text, with the family renamed in it
    c = lad(rungs=(RungInfo("promptus", "d", 5.0, rank=1, label="my promptus rung"),), size_bytes=[[1.0]] * 2,
            lpips_mean=[[0.1]] * 2, lpips_p95=[[0.1]] * 2, severe_frac=[[0.1]] * 2)  # fmt: skip
    assert c.with_decoder("m", family="pm").rungs[0].label == "my pm rung"


def test_repeat():
    x = lad(metadata={"a": 1})
    assert x.repeat(1) is x
    y = x.repeat(3)
    assert y.n_chunks == 6 and y.name == "v*3" and y.metadata == {"a": 1, "repeated": 3}
    assert y.size_bytes[:, 0].tolist() == [1000.0, 2000.0] * 3
    assert y.duration_s.tolist() == [2.0] * 6 and y.frames.tolist() == [60] * 6
    for t in (0, -1):
        with pytest.raises(InputError, match="1 or more times"):
            x.repeat(t)


# -- the JSON document ---------------------------------------------------------------------------


def test_document_round_trip(tmp_path):
    x = lad(metadata={"source": "hand"}, severe_lpips=0.3)
    doc = x.to_dict()
    assert (doc["format"], doc["version"]) == ("promptabr-ladder", 1) == (FORMAT, VERSION)
    assert doc["chunks"] == {"duration_s": [2.0, 2.0], "frames": [60, 60]}
    assert doc["rungs"][0] == dict(family="promptus", decoder="sd-turbo", kbps=10.0, rank=2, interval=10,
                                   gmacs_per_frame=None, label="promptus-r2")  # fmt: skip
    assert doc["size_bytes"] == [[1000.0, 2000.0], [2000.0, 4000.0]]
    back = load_ladder(save_ladder(x, tmp_path / "l.json"))
    assert back.rungs == x.rungs and back.name == "v" and back.severe_lpips == 0.3
    assert back.metadata == {"source": "hand"}
    for k in ("duration_s", "frames", "size_bytes", "lpips_mean", "lpips_p95", "severe_frac"):
        assert getattr(back, k).tolist() == getattr(x, k).tolist()
    del doc["severe_lpips"]
    doc["metadata"] = None
    y = Ladder.from_dict(doc)
    assert y.severe_lpips == DEFAULT_SEVERE_LPIPS and y.metadata == {}


def _broken(change):
    doc = lad().to_dict()
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "a ladder file must hold a JSON object"),
        (_broken(lambda d: d.pop("format")), "field 'format' must be 'promptabr-ladder', got None"),
        (_broken(lambda d: d.update(format="x")), "field 'format' must be 'promptabr-ladder', got 'x'"),
        (_broken(lambda d: d.update(version=2)), "field 'version' is 2; this promptabr reads version 1"),
        (_broken(lambda d: d.update(zz=1, aa=2)), r"unknown field\(s\) \['aa', 'zz'\]"),
        (_broken(lambda d: d.pop("name")), "missing field 'name'"),
        (_broken(lambda d: d.pop("chunks")), "missing field 'chunks'"),
        (_broken(lambda d: d.pop("severe_frac")), "missing field 'severe_frac'"),
        (_broken(lambda d: d.update(rungs={})), "field 'rungs' must be a list$"),
        (_broken(lambda d: d["rungs"].__setitem__(1, 3)), r"field 'rungs\[1\]' must be an object"),
        (_broken(lambda d: d["rungs"][1].update(x=1)), r"field 'rungs\[1\]' has unknown key\(s\) \['x'\]"),
        (_broken(lambda d: d["rungs"][0].pop("family")), r"field 'rungs\[0\]': .*family"),
        (_broken(lambda d: d["rungs"][0].update(kbps=0)), r"field 'rungs\[0\]': RungInfo.kbps must be positive"),
        (_broken(lambda d: d.update(chunks=[])), "field 'chunks' must be an object with 'duration_s' and 'frames'$"),
        (_broken(lambda d: d["chunks"].update(x=1)), "field 'chunks' must be an object with"),
        (_broken(lambda d: d["chunks"].update(frames=["a", "b"])), "field 'chunks.frames' must be a numeric array"),
        (_broken(lambda d: d.update(lpips_mean=[0.1, 0.1])), "field 'lpips_mean' must be 2-D, got 1-D"),
        (_broken(lambda d: d["chunks"].update(duration_s=2.0)), "field 'chunks.duration_s' must be 1-D, got 0-D"),
        (
            _broken(lambda d: d["lpips_p95"][0].__setitem__(0, math.nan)),
            "field 'lpips_p95' holds NaN or infinite values$",
        ),
        (_broken(lambda d: d["chunks"]["duration_s"].__setitem__(0, -2.0)), "duration_s must be positive$"),
    ],
)
def test_document_errors_name_the_source_and_field(doc, message):
    with pytest.raises(InputError, match="^f.json: " + message):
        Ladder.from_dict(doc, source="f.json")


def test_document_defaults_and_precision():
    with pytest.raises(InputError, match="^<ladder>: a ladder file must hold a JSON object$"):
        Ladder.from_dict(3)
    # sizes and qualities are written to 9 decimals
    x = lad(lpips_mean=[[0.1234567891234, 0.1]] * 2)
    assert x.to_dict()["lpips_mean"][0] == [0.123456789, 0.1]


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="^.*nope.json: ladder file not found$"):
        load_ladder(tmp_path / "nope.json")
    p = tmp_path / "bad.json"
    p.write_text('{\n\n  "format": nope\n}')
    with pytest.raises(InputError, match=r"bad.json:3: invalid JSON in ladder file \(Expecting value\)$"):
        load_ladder(p)
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match=r"bad.json: (ladder file: JSON nested too deeply|a ladder file must hold)"):
        load_ladder(p)
    p.write_text(json.dumps({"format": FORMAT, "version": VERSION}))
    with pytest.raises(InputError, match=r"bad.json: missing field 'name'"):
        load_ladder(p)


# -- combine and concatenate ---------------------------------------------------------------------


def test_combine_orders_rungs_by_kbps_then_by_argument_order():
    a = lad("a", rungs=(RungInfo("p", "pd", 10.0), RungInfo("p", "pd", 50.0)), metadata={"synthetic": True})
    b = lad("b", rungs=(RungInfo("h", "hd", 10.0), RungInfo("h", "hd", 20.0)), severe_lpips=0.4)
    c = combine_ladders(a, b)
    assert c.kbps.tolist() == [10.0, 10.0, 20.0, 50.0]
    assert [r.family for r in c.rungs] == ["p", "h", "h", "p"]  # the 10 kbit/s tie: a before b
    # a's rung 0, b's rung 0, b's rung 1, a's rung 1 (sizes 1000 (j + 1) in chunk 1)
    assert c.size_bytes[0].tolist() == [1000.0, 1000.0, 2000.0, 2000.0]
    assert c.severe_frac[0].tolist() == [0.5, 0.5, 0.25, 0.25]
    assert c.name == "a+b" and combine_ladders(a, b, name="ab").name == "ab"
    assert c.severe_lpips == DEFAULT_SEVERE_LPIPS  # the first ladder's
    assert combine_ladders(b, a).severe_lpips == 0.4
    assert c.metadata["combined_from"] == ["a", "b"] and c.metadata["synthetic"] is True
    assert c.metadata["parts"] == {"a": {"synthetic": True}, "b": {}}
    assert combine_ladders(b, b).metadata["synthetic"] is False
    with pytest.raises(InputError, match="^combine_ladders needs at least one ladder$"):
        combine_ladders()
    with pytest.raises(InputError, match="'a' and 'b' have different chunks"):
        combine_ladders(a, lad("b", n=3))
    with pytest.raises(InputError, match="'a' and 'b' have different chunks"):
        combine_ladders(a, lad("b", duration_s=[2.0, 2.5]))
    with pytest.raises(InputError, match="'a' and 'b' have different frame counts"):
        combine_ladders(a, lad("b", frames=[60, 61]))


def test_concat_chains_chunks_and_records_the_parts():
    a = lad("a", n=2, metadata={"k": 1})
    b = lad("b", n=1, duration_s=[1.0], frames=[30], metadata={"synthetic": True})
    c = concat_ladders(a, b, name="ab")
    assert c.name == "ab" and c.rungs == two_rungs()
    assert c.duration_s.tolist() == [2.0, 2.0, 1.0] and c.frames.tolist() == [60, 60, 30]
    assert c.size_bytes[:, 1].tolist() == [2000.0, 4000.0, 2000.0]
    assert c.metadata == {
        "synthetic": True,
        "concatenated": True,
        "parts": [
            {"name": "a", "first_chunk": 0, "chunks": 2, "metadata": {"k": 1}},
            {"name": "b", "first_chunk": 2, "chunks": 1, "metadata": {"synthetic": True}},
        ],
    }
    assert concat_ladders(a, a, name="aa").metadata["synthetic"] is False
    with pytest.raises(InputError, match="^concat_ladders needs at least one ladder$"):
        concat_ladders(name="x")
    with pytest.raises(InputError, match="'a' and 'b' have different rungs"):
        concat_ladders(a, lad("b", rungs=two_rungs()[:1], size_bytes=[[1.0]] * 2, lpips_mean=[[0.1]] * 2,
                              lpips_p95=[[0.1]] * 2, severe_frac=[[0.1]] * 2), name="x")  # fmt: skip
    with pytest.raises(InputError, match="'a' and 'b' use different severe thresholds"):
        concat_ladders(a, lad("b", severe_lpips=0.3), name="x")
