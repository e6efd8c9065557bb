"""policies.rl pinned by hand, without training: the layout record, the normaliser, the safe
zip reading, the network config.json describes, loading checks and how a loaded policy acts.

Folders are written here from a fresh network (``build_policy_net``) and a fake model that
records its input, so every case runs in milliseconds. Expected numbers and messages are worked
out by hand from the module's docstrings.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import warnings
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import make_ladder

pytest.importorskip("stable_baselines3")

import torch  # noqa: E402
from gymnasium import spaces  # noqa: E402

from abr.errors import InputError  # noqa: E402
from abr.qoe import get_qoe  # noqa: E402
from policies import rl  # noqa: E402
from policies.base import Observation, PolicyContext  # noqa: E402
from policies.observation import ObservationBuilder  # noqa: E402
from policies.rl import (  # noqa: E402
    ObsNormalizer,
    RLPolicy,
    add_zip_members,
    build_policy_net,
    convert_legacy,
    load_rl_policy,
    observation_layout,
    read_zip_member,
    read_zip_state_dicts,
)

LOG = get_qoe("pensieve-log")
SCALES = {"throughput_mbps": 10.0, "delay_s": 10.0, "rate_mbps": 10.0}


# ---------------------------------------------------------------------------- layout


def test_observation_layout_by_hand():
    # size = 3H + 3R + 4 + 2 (L - 1) R: 24 + 18 + 4 = 46; 6 + 9 + 4 + 12 = 31
    assert observation_layout(8, 6) == {
        "builder": "policies.observation.ObservationBuilder/2", "history": 8, "n_rungs": 6, "lookahead": 1,
        "size": 46, "frame_stack": 1, "scales": SCALES, "high": 100.0,
    }  # fmt: skip
    lay = observation_layout(np.int64(2), np.int64(3), np.int64(4), np.int64(3))
    assert (lay["history"], lay["n_rungs"], lay["frame_stack"], lay["lookahead"], lay["size"]) == (2, 3, 4, 3, 31)
    # plain Python numbers (the layout is written to config.json and compared after reading it back)
    assert all(type(lay[k]) is int for k in ("history", "n_rungs", "frame_stack", "lookahead"))
    assert type(lay["high"]) is float


# ---------------------------------------------------------------------------- normaliser


def test_normalizer_applies_vecnormalize_by_hand():
    norm = ObsNormalizer([1.0, 2.0], [4.0, 0.0], 5)
    assert (norm.count, norm.clip, norm.epsilon) == (5, 10.0, 1e-8)
    out = norm(np.array([[5.0, 2.0], [1.0, 2.5], [-100.0, 1.0]]))
    # (5 - 1) / sqrt(4 + 1e-8) = 2; (2.5 - 2) / sqrt(1e-8) = 5000 -> 10; (-100 - 1) / 2 = -50.5 -> -10; -1e4 -> -10
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[2.0, 0.0], [0.0, 10.0], [-10.0, -10.0]], rtol=1e-6)
    tight = ObsNormalizer([0.0], [1.0], 1, clip=3.0, epsilon=3.0)  # / sqrt(4) = / 2, clipped to 3
    np.testing.assert_allclose(tight(np.array([[4.0], [10.0], [-10.0]])), [[2.0], [3.0], [-3.0]])


@pytest.mark.parametrize(
    ("args", "kw", "msg"),
    [
        (([1.0, 2.0], [1.0], 1), {}, r"normaliser mean and var must be vectors of one length, got \(2,\), \(1,\)"),
        (([[1.0]], [[1.0]], 1), {}, r"normaliser mean and var must be vectors of one length, got \(1, 1\), \(1, 1\)"),
        (([np.nan], [1.0], 1), {}, r"normaliser mean/var must be finite, var >= 0"),
        (([0.0], [np.inf], 1), {}, r"normaliser mean/var must be finite, var >= 0"),
        (([0.0], [-1e-9], 1), {}, r"normaliser mean/var must be finite, var >= 0"),
        (([0.0], [1.0], True), {}, r"normaliser count must be a finite number >= 0, got True"),
        (([0.0], [1.0], "1"), {}, r"normaliser count must be a finite number >= 0, got '1'"),
        (([0.0], [1.0], float("inf")), {}, r"normaliser count must be a finite number >= 0, got inf"),
        (([0.0], [1.0], -1), {}, r"normaliser count must be a finite number >= 0, got -1"),
        (([0.0], [1.0], 1), {"clip": -0.5}, r"normaliser clip must be a finite number >= 0, got -0.5"),
        (([0.0], [1.0], 1), {"epsilon": float("nan")}, r"normaliser epsilon must be a finite number >= 0, got nan"),
    ],
)
def test_normalizer_refuses_bad_statistics(args, kw, msg):
    with pytest.raises(ValueError, match=f"^{msg}$"):
        ObsNormalizer(*args, **kw)


def test_normalizer_stores_float64_statistics():
    norm = ObsNormalizer([1, 2], [3, 4], 1)  # Python ints
    assert norm.mean.dtype == norm.var.dtype == np.float64
    assert norm.to_dict()["mean"] == [1.0, 2.0] and type(norm.to_dict()["var"][0]) is float


def test_normalizer_accepts_zeros_and_round_trips_through_json():
    zero = ObsNormalizer([0.0], [0.0], 0, clip=0.0, epsilon=0.0)  # every bound is inclusive
    assert (zero.count, zero.clip, zero.epsilon) == (0, 0.0, 0.0)
    norm = ObsNormalizer([1.0, -2.0], [0.5, 3.0], 7.0, clip=4.0, epsilon=1e-6)
    doc = json.loads(json.dumps(norm.to_dict()))
    assert doc == {"format": "promptabr-obs-normalizer", "mean": [1.0, -2.0], "var": [0.5, 3.0], "count": 7.0,
                   "clip": 4.0, "epsilon": 1e-6}  # fmt: skip
    back = ObsNormalizer.from_dict(doc, "where")
    assert (back.mean.tolist(), back.var.tolist(), back.count, back.clip, back.epsilon) == (
        [1.0, -2.0], [0.5, 3.0], 7.0, 4.0, 1e-6,
    )  # fmt: skip
    assert back.mean.dtype == back.var.dtype == np.float64


def test_normalizer_from_vecnormalize_reads_its_statistics():
    venv = SimpleNamespace(obs_rms=SimpleNamespace(mean=[1, 2], var=[3, 4], count=9), clip_obs=5, epsilon=1e-4)
    norm = ObsNormalizer.from_vecnormalize(venv)
    assert (norm.mean.tolist(), norm.var.tolist(), norm.count, norm.clip, norm.epsilon) == (
        [1.0, 2.0], [3.0, 4.0], 9.0, 5.0, 1e-4,
    )  # fmt: skip
    assert all(type(x) is float for x in (norm.count, norm.clip, norm.epsilon))
    assert norm.mean.dtype == norm.var.dtype == np.float64


@pytest.mark.parametrize(
    ("doc", "msg"),
    [
        ([], "where: not a promptabr-obs-normalizer document"),
        ({"format": "other"}, "where: not a promptabr-obs-normalizer document"),
        ({"format": "promptabr-obs-normalizer", "mean": [0.0], "var": [1.0], "clip": 1, "epsilon": 0},
         "where: bad normaliser (KeyError: 'count')"),
        ({"format": "promptabr-obs-normalizer", "mean": [0.0], "var": [1.0], "count": -1, "clip": 1, "epsilon": 0},
         "where: bad normaliser (ValueError: normaliser count must be a finite number >= 0, got -1)"),
        ({"format": "promptabr-obs-normalizer", "mean": None, "var": [1.0], "count": 1, "clip": 1, "epsilon": 0},
         "where: bad normaliser (ValueError: normaliser mean and var must be vectors of one length, got (), (1,))"),
        ({"format": "promptabr-obs-normalizer", "mean": {}, "var": [1.0], "count": 1, "clip": 1, "epsilon": 0},
         "where: bad normaliser (TypeError: float() argument must be a string or a real number, not 'dict')"),
    ],
)  # fmt: skip
def test_normalizer_from_dict_refuses_bad_documents(doc, msg):
    with pytest.raises(InputError) as e:
        ObsNormalizer.from_dict(doc, "where")
    assert str(e.value) == msg


# ---------------------------------------------------------------------------- zip members


def _zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return path


def _pth(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_read_zip_member_and_its_size_limit(tmp_path, monkeypatch):
    z = _zip(tmp_path / "m.zip", {"a": b"1234", "b": b"12345"})
    assert read_zip_member(z, "a") == b"1234"
    assert read_zip_member(z, "none") is None
    monkeypatch.setattr(rl, "_MAX_MEMBER_BYTES", 4)  # 4 bytes is allowed, 5 is not
    assert read_zip_member(z, "a") == b"1234"
    with pytest.raises(InputError) as e:
        read_zip_member(z, "b")
    assert str(e.value) == f"{z}: member b declares 5 bytes (limit 4)"


def test_read_zip_member_refuses_what_is_not_a_zip(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError) as e:
        read_zip_member(bad, "a")
    assert str(e.value) == f"{bad}: cannot load model (BadZipFile: File is not a zip file)"
    with pytest.raises(InputError, match=r"^.*none\.zip: cannot load model \(FileNotFoundError: "):
        read_zip_member(tmp_path / "none.zip", "a")


def test_read_zip_state_dicts(tmp_path):
    z = _zip(tmp_path / "m.zip", {"policy.pth": _pth({"w": torch.tensor([1.0, 2.0])}), "opt.pth": _pth({"x": 3})})
    out = read_zip_state_dicts(z)
    assert list(out) == ["policy"] and out["policy"]["w"].tolist() == [1.0, 2.0]
    both = read_zip_state_dicts(z, ("policy", "opt"))
    assert list(both) == ["policy", "opt"] and both["opt"] == {"x": 3}
    with pytest.raises(InputError) as e:
        read_zip_state_dicts(z, ("policy", "value"))
    assert str(e.value) == f"{z}: cannot load model: no value.pth in the archive"


def test_read_zip_state_dicts_refuses_pickles_and_non_dicts(tmp_path):
    planted = _zip(tmp_path / "p.zip", {"policy.pth": pickle.dumps(SimpleNamespace(a=1))})
    with pytest.raises(InputError) as e:
        read_zip_state_dicts(planted)
    assert str(e.value).startswith(f"{planted}: cannot load model: policy.pth is not a plain state dict (")
    assert "\n" not in str(e.value)
    listed = _zip(tmp_path / "l.zip", {"policy.pth": _pth([1, 2])})
    with pytest.raises(InputError) as e:
        read_zip_state_dicts(listed)
    assert str(e.value) == f"{listed}: cannot load model: policy.pth is not a state dict"


def _retag(pth: bytes, old: bytes, new: bytes) -> bytes:
    """A torch.save archive whose storages claim another device (as a policy saved on a GPU)."""
    src, out = zipfile.ZipFile(io.BytesIO(pth)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for info in src.infolist():
            blob = src.read(info)
            if info.filename.endswith("data.pkl"):  # protocol 2 BINUNICODE: 'X', u32 length, text
                blob = blob.replace(b"X" + struct.pack("<I", len(old)) + old, b"X" + struct.pack("<I", len(new)) + new)
            zf.writestr(info, blob)
    return out.getvalue()


def test_a_policy_saved_on_a_gpu_loads_on_the_cpu(tmp_path):
    gpu = _retag(_pth({"w": torch.tensor([1.0, 2.0])}), b"cpu", b"cuda:0")
    assert b"cuda:0" in gpu
    out = read_zip_state_dicts(_zip(tmp_path / "m.zip", {"policy.pth": gpu}))["policy"]
    assert out["w"].device.type == "cpu" and out["w"].tolist() == [1.0, 2.0]


def test_read_zip_state_dicts_names_the_first_line_of_the_cause_cut_at_200(tmp_path, monkeypatch):
    # a dict holding an object: torch.load would rebuild it without weights_only
    planted = _zip(tmp_path / "p.zip", {"policy.pth": _pth({"w": SimpleNamespace(a=1)})})
    head = f"{planted}: cannot load model: policy.pth is not a plain state dict ("
    with pytest.raises(InputError) as e:
        read_zip_state_dicts(planted)
    assert str(e.value).startswith(head + "UnpicklingError: Weights only load failed.")

    def fail(*a, **k):
        raise RuntimeError("x" * 250 + "\nsecond line")

    monkeypatch.setattr(torch, "load", fail)
    with pytest.raises(InputError) as e:
        read_zip_state_dicts(planted)
    assert str(e.value) == head + f"RuntimeError: {'x' * 200})"


def test_weights_only_holds_even_where_the_environment_lifts_torchs_default(tmp_path, monkeypatch):
    # torch >= 2.6 loads without weights_only when this is set and the argument is not given (and
    # torch < 2.6, which pyproject allows, always did): the reader passes weights_only=True itself
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    planted = _zip(tmp_path / "p.zip", {"policy.pth": _pth({"w": SimpleNamespace(a=1)})})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match="is not a plain state dict"):
            read_zip_state_dicts(planted)


def test_add_zip_members_replaces_and_adds(tmp_path):
    z = _zip(tmp_path / "m.zip", {"a": b"old", "b": b"kept"})
    add_zip_members(z, {"a": b"new", "c": b"added"})
    with zipfile.ZipFile(z) as zf:
        assert sorted(zf.namelist()) == ["a", "b", "c"]
        assert (zf.read("a"), zf.read("b"), zf.read("c")) == (b"new", b"kept", b"added")
        assert zf.getinfo("c").compress_type == zipfile.ZIP_DEFLATED  # the archive is written compressed


# ---------------------------------------------------------------------------- the network


def _meta(history=2, n_rungs=2, frame_stack=1, **kw):
    meta = {"format": "promptabr-rl-policy", "version": 1, "algo": "ppo",
            "layout": observation_layout(history, n_rungs, frame_stack), "ladder": {"name": "test", "n_rungs": n_rungs},
            "qoe": "pensieve-log", "train": {"net_arch": [16, 8]}}  # fmt: skip
    meta.update(kw)
    return meta


def _linears(module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, torch.nn.Linear)]


def test_build_policy_net_follows_config_json():
    net = build_policy_net(_meta(frame_stack=2))  # 16 features x 2 frames
    assert net.observation_space.shape == (32,) and net.observation_space.high.max() == 100.0
    assert net.observation_space.low.min() == 0.0 and net.observation_space.dtype == np.float32
    assert net.action_space.n == 2
    assert _linears(net.mlp_extractor.policy_net) == [(32, 16), (16, 8)]
    assert _linears(net.action_net) == [(8, 2)]
    dqn = build_policy_net(_meta(algo="dqn", ladder={"n_rungs": 3}))
    assert _linears(dqn.q_net) == [(16, 16), (16, 8), (8, 3)]
    # without a train section: SB3's two layers of 64
    bare = build_policy_net({k: v for k, v in _meta().items() if k != "train"})
    assert _linears(bare.mlp_extractor.policy_net) == [(16, 64), (64, 64)]
    # layouts saved before lookahead existed mean lookahead 1
    old = _meta()
    del old["layout"]["lookahead"]
    assert build_policy_net(old).observation_space.shape == (16,)


# ---------------------------------------------------------------------------- loading


def _folder(tmp_path, meta, name="pol", state="fresh", normalizer=None, members=None):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(meta))
    if state is not None:
        zm = {"policy.pth": _pth(build_policy_net(meta).state_dict() if state == "fresh" else state)}
        if normalizer is not None:
            zm["normalizer.json"] = json.dumps(normalizer.to_dict()).encode()
        zm.update(members or {})
        _zip(folder / "model.zip", zm)
    return folder


def _load_error(folder) -> str:
    with pytest.raises(InputError) as e:
        RLPolicy.load(folder)
    return str(e.value)


def test_load_reads_weights_and_normaliser(tmp_path):
    meta = _meta(normalize_obs=True, start_rung=1)
    net = build_policy_net(meta)
    norm = ObsNormalizer(np.arange(16.0), np.full(16, 4.0), 3.0)
    folder = _folder(tmp_path, meta, state=net.state_dict(), normalizer=norm)
    pol = load_rl_policy(str(folder))
    assert isinstance(pol, RLPolicy) and pol.source == str(folder) and pol.start_rung == 1
    assert pol.normalizer.mean.tolist() == list(range(16)) and pol.normalizer.count == 3.0
    assert not pol.model.training
    for k, v in net.state_dict().items():
        assert torch.equal(pol.model.state_dict()[k], v)
    # normalize_obs false: the member is not read
    plain = _folder(tmp_path, _meta(), name="plain", members={"normalizer.json": b"garbage"})
    assert RLPolicy.load(plain).normalizer is None


def test_load_rl_policy_needs_a_folder():
    with pytest.raises(InputError) as e:
        load_rl_policy("")
    assert str(e.value) == "policy 'rl' needs a folder: --policy rl:DIR (written by python -m sim.train --out DIR)"


def test_load_refuses_broken_folders_with_one_line_each(tmp_path):
    assert _load_error(tmp_path / "none") == (
        f"{tmp_path / 'none'}: not a folder of a trained policy (train one with python -m sim.train)"
    )
    (tmp_path / "empty").mkdir()
    assert _load_error(tmp_path / "empty") == (
        f"{tmp_path / 'empty'}: no config.json: not a trained policy folder (python -m sim.train writes one)"
    )
    f = _folder(tmp_path, _meta(), state=None)
    cfg = f / "config.json"
    assert _load_error(f) == f"{f}: no model.zip (was training interrupted before the first evaluation?)"
    for meta, msg in [
        ([1], "not a promptabr-rl-policy config"),
        (_meta(format="x"), "not a promptabr-rl-policy config"),
        (_meta(version=2), "policy format version 2; this code reads 1"),
        ({k: v for k, v in _meta().items() if k != "version"}, "policy format version None; this code reads 1"),
        ({k: v for k, v in _meta().items() if k != "algo"}, "missing key 'algo'"),
        ({k: v for k, v in _meta().items() if k != "layout"}, "missing key 'layout'"),
        ({k: v for k, v in _meta().items() if k != "ladder"}, "missing key 'ladder'"),
    ]:
        cfg.write_text(json.dumps(meta))
        assert _load_error(f) == f"{cfg}: {msg}"


def _bad(meta: dict, *path_value) -> dict:
    meta = json.loads(json.dumps(meta))
    *keys, value = path_value
    d = meta
    for k in keys[:-1]:
        d = d[k]
    d[keys[-1]] = value
    return meta


@pytest.mark.parametrize(
    "change",
    [
        ("algo", "sac"),
        ("layout", "size", 0),
        ("layout", "size", 100_001),
        ("layout", "size", True),
        ("layout", "size", 2.0),
        ("layout", "frame_stack", 0),
        ("layout", "frame_stack", None),
        ("ladder", "n_rungs", 0),
        ("ladder", "n_rungs", 100_001),
        ("ladder", []),
        ("train", "net_arch", "64"),
        ("train", "net_arch", [16, 0]),
        ("train", []),
        ("start_rung", 1.0),
        ("start_rung", "1"),
    ],
)
def test_load_refuses_out_of_range_configs(tmp_path, change):
    f = _folder(tmp_path, _bad(_meta(), *change), state=None)
    assert _load_error(f) == f"{f / 'config.json'}: layout, ladder, algo or net_arch missing or out of range"


def test_load_accepts_the_limits_of_the_config(tmp_path):
    # every algorithm, sizes 1 and 100000 are in range (the network is not built before the checks pass)
    for i, algo in enumerate(("ppo", "a2c", "dqn")):
        RLPolicy.load(_folder(tmp_path, _meta(algo=algo), name=f"a{i}"))
    meta = _bad(_bad(_meta(), "train", "net_arch", [1, 100_000]), "start_rung", None)
    assert RLPolicy.load(_folder(tmp_path, meta, name="wide")).start_rung is None


def test_load_refuses_weights_of_another_network(tmp_path):
    other = build_policy_net(_meta(train={"net_arch": [4]})).state_dict()
    f = _folder(tmp_path, _meta(), state=other)
    msg = _load_error(f)
    assert msg.startswith(
        f"{f / 'model.zip'}: cannot load model: its weights do not fit the network config.json describes ("
    )
    assert "\n" not in msg


def test_load_refuses_extra_or_missing_weights(tmp_path, monkeypatch):
    state = build_policy_net(_meta()).state_dict()
    f = _folder(tmp_path, _meta(), state={**state, "extra": torch.zeros(1)})
    assert _load_error(f) == (
        f"{f / 'model.zip'}: cannot load model: its weights do not fit the network config.json describes "
        "(Error(s) in loading state_dict for ActorCriticPolicy:)"
    )
    g = _folder(tmp_path, _meta(), name="g", state={k: v for k, v in state.items() if k != "action_net.bias"})
    assert _load_error(g).endswith("(Error(s) in loading state_dict for ActorCriticPolicy:)")

    def fail(*a, **k):
        raise RuntimeError("y" * 250 + "\nsecond line")

    monkeypatch.setattr(torch.nn.Module, "load_state_dict", fail)
    assert _load_error(_folder(tmp_path, _meta(), name="h")).endswith(f"describes ({'y' * 200})")


def test_load_without_a_train_section_builds_sb3s_default_network(tmp_path):
    meta = {k: v for k, v in _meta().items() if k != "train"}
    pol = RLPolicy.load(_folder(tmp_path, meta))
    assert _linears(pol.model.mlp_extractor.policy_net) == [(16, 64), (64, 64)]


def test_load_names_a_config_that_is_not_json(tmp_path):
    f = _folder(tmp_path, _meta(), state=None)
    (f / "config.json").write_text("{")
    assert _load_error(f).startswith(f"{f / 'config.json'}:1: invalid JSON in policy config file (")


def test_load_refuses_a_missing_or_broken_normaliser(tmp_path):
    meta = _meta(normalize_obs=True)
    f = _folder(tmp_path, meta)
    z = f / "model.zip"
    base = f"{z}: no normalizer.json in the archive: the model was trained with observation normalisation"
    assert _load_error(f) == base
    (f / "vecnormalize.pkl").write_bytes(b"")
    assert _load_error(f) == base + (
        "; its statistics are in the pickle vecnormalize.pkl, which promptabr does not load (a pickle can run "
        f"code): if you trust it, convert the folder with python -m policies.rl convert {f} --trust-pickle"
    )
    g = _folder(tmp_path, meta, name="g", members={"normalizer.json": b"{"})
    assert _load_error(g).startswith(f"{g / 'model.zip'}: cannot read normalizer.json (JSONDecodeError: ")
    h = _folder(tmp_path, meta, name="h", members={"normalizer.json": b"\xff"})
    assert _load_error(h).startswith(f"{h / 'model.zip'}: cannot read normalizer.json (UnicodeDecodeError: ")
    k = _folder(tmp_path, meta, name="k", members={"normalizer.json": b"[]"})
    assert _load_error(k) == f"{k / 'model.zip'}:normalizer.json: not a promptabr-obs-normalizer document"


def test_policy_refuses_a_start_rung_off_the_ladder_and_mismatched_shapes():
    meta = _meta()
    net = build_policy_net(meta)
    RLPolicy(net, _meta(start_rung=0))
    RLPolicy(net, _meta(start_rung=1))
    for r in (-1, 2):
        with pytest.raises(InputError) as e:
            RLPolicy(net, _meta(start_rung=r), source="src")
        assert str(e.value) == f"src: start_rung {r} is not a rung of the trained ladder"
    with pytest.raises(InputError) as e:
        RLPolicy(net, _meta(frame_stack=2), source="src")
    assert str(e.value) == "src: model input has shape (16,) but its config says (32,)"
    with pytest.raises(InputError) as e:
        RLPolicy(net, meta, ObsNormalizer(np.zeros(15), np.ones(15), 1), source="src")
    assert str(e.value) == "src: normaliser has 15 features, the model 16"
    assert RLPolicy(net, meta).source == "model"


# ---------------------------------------------------------------------------- acting


class FakeModel:
    """Records the features it is given; picks rung (session index) mod 2."""

    def __init__(self, size: int):
        self.observation_space = spaces.Box(0.0, 100.0, (size,), np.float32)
        self.seen: list[np.ndarray] = []

    def predict(self, x, deterministic):
        assert deterministic is True
        self.seen.append(np.array(x))
        return np.arange(len(x), dtype=np.int32).reshape(-1, 1) % 2, None  # an int32 column: act() flattens it


def _ctx(name="test", n_rungs=2, qoe=LOG) -> PolicyContext:
    lad = make_ladder([[100e3 * (r + 1) for r in range(n_rungs)]] * 4)
    lad = type(lad)(**{**{f: getattr(lad, f) for f in lad.__dataclass_fields__}, "name": name})
    return PolicyContext(lad, qoe, qoe.chunk_quality(lad), np.zeros(lad.size_bytes.shape), 20.0)


def _obs(chunk, n=3, history=2, scale=1.0):
    h = np.full((n, history), 2.0 * scale)
    z = np.zeros(n)
    return Observation(chunk, z + 4.0 * scale, np.zeros(n, np.int64), h, h, z, z, z)


def test_reset_checks_the_ladder_and_warns_of_other_ladders_and_qoe():
    pol = RLPolicy(FakeModel(16), _meta(), source="src")
    with pytest.raises(InputError) as e:
        pol.reset(_ctx(n_rungs=3), 1)
    assert str(e.value) == (
        "src: the model was trained for a ladder with 2 rungs (test); this run's ladder test has 3: "
        "train a model for this ladder"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pol.reset(_ctx(), 1)  # same ladder name and QoE: silent
        RLPolicy(FakeModel(16), _meta(ladder={"n_rungs": 2}, qoe=None)).reset(_ctx(name="x"), 1)  # nothing to compare
    with pytest.warns(UserWarning) as w:
        pol.reset(_ctx(name="other", qoe=get_qoe("perceptual")), 1)
    assert [str(x.message) for x in w] == [
        "src: model trained on ladder 'test', running on 'other'",
        "src: model trained with QoE 'pensieve-log', running with 'perceptual'; its quality features are "
        "scaled differently",
    ]


def test_act_before_reset_and_with_another_history_fails_clearly():
    pol = RLPolicy(FakeModel(16), _meta(), source="src")
    with pytest.raises(RuntimeError, match=r"^call reset\(\) before act\(\)$"):
        pol.act(_obs(0))
    pol.reset(_ctx(), 3)
    with pytest.raises(InputError) as e:
        pol.act(_obs(0, history=3))
    assert str(e.value) == (
        "src: observation layout differs from the one the model was trained with "
        "(history: trained 2, now 3; size: trained 16, now 19)"
    )


def test_act_feeds_the_builder_vector_and_returns_one_int_rung_per_session():
    model = FakeModel(16)
    pol = RLPolicy(model, _meta())
    ctx = _ctx()
    pol.reset(ctx, 3)
    a = pol.act(_obs(0))
    assert a.dtype == np.int64 and a.tolist() == [0, 1, 0]
    # the builder itself is pinned by hand in test_pinned_observation.py
    np.testing.assert_array_equal(model.seen[0], ObservationBuilder.from_context(ctx, 2)(_obs(0)))


def test_a_layout_saved_before_lookahead_means_lookahead_1():
    meta = _meta()
    del meta["layout"]["lookahead"]
    model = FakeModel(16)
    pol = RLPolicy(model, meta)
    ctx = _ctx()
    pol.reset(ctx, 3)
    pol.act(_obs(0))
    np.testing.assert_array_equal(model.seen[0], ObservationBuilder.from_context(ctx, 2)(_obs(0)))


def test_start_rung_plays_the_first_chunk_without_asking_the_model():
    model = FakeModel(16)
    pol = RLPolicy(model, _meta(start_rung=np.int32(1)))  # any integer type: the rungs come back int64
    pol.reset(_ctx(), 2)
    a = pol.act(_obs(0, n=2))
    assert a.dtype == np.int64 and a.tolist() == [1, 1] and model.seen == []
    assert pol.act(_obs(1, n=2)).tolist() == [0, 1] and len(model.seen) == 1


def test_frame_stack_keeps_the_last_frames_and_restarts_at_the_first_decided_chunk():
    model = FakeModel(32)
    norm = ObsNormalizer(np.zeros(32), np.full(32, 4.0), 1, epsilon=0.0)  # halves every feature
    pol = RLPolicy(model, _meta(frame_stack=2, start_rung=0), norm)
    ctx = _ctx()
    pol.reset(ctx, 3)
    b = ObservationBuilder.from_context(ctx, 2)
    v1, v2, v3 = (b(_obs(k, scale=s)) for k, s in ((1, 1.0), (2, 2.0), (3, 3.0)))
    assert pol.act(_obs(0)).tolist() == [0, 0, 0]  # start rung: the model is not asked
    for k, s in ((1, 1.0), (2, 2.0), (1, 3.0)):  # chunk 1 again: a new episode restarts the stack
        pol.act(_obs(k, scale=s))
    zeros = np.zeros_like(v1)
    want = [np.hstack([zeros, v1]), np.hstack([v1, v2]), np.hstack([zeros, b(_obs(1, scale=3.0))])]
    for seen, w in zip(model.seen, want, strict=True):
        np.testing.assert_allclose(seen, w / 2, rtol=1e-6)
    assert not np.array_equal(v3, v2)
    # a reset starts a new stack whatever chunk comes next
    pol.reset(ctx, 3)
    pol.act(_obs(2, scale=2.0))
    np.testing.assert_allclose(model.seen[-1], np.hstack([zeros, v2]) / 2, rtol=1e-6)


# ---------------------------------------------------------------------------- converting old folders


def test_convert_moves_trusted_statistics_into_the_zip(tmp_path, capsys):
    f = _folder(tmp_path, _meta(normalize_obs=True))
    venv = SimpleNamespace(obs_rms=SimpleNamespace(mean=np.arange(16.0), var=np.ones(16), count=4), clip_obs=5.0,
                           epsilon=1e-8)  # fmt: skip
    (f / "vecnormalize.pkl").write_bytes(pickle.dumps(venv))
    assert rl.main(["convert", str(f)]) == 2
    assert "--trust-pickle" in capsys.readouterr().err and (f / "vecnormalize.pkl").exists()
    assert rl.main(["convert", str(f), "--trust-pickle"]) == 0
    assert capsys.readouterr().out == f"converted -> {f / 'model.zip'}\n"
    assert not (f / "vecnormalize.pkl").exists()
    norm = RLPolicy.load(f).normalizer
    assert (norm.mean.tolist(), norm.count, norm.clip) == (list(range(16)), 4.0, 5.0)
    with pytest.raises(InputError) as e:
        convert_legacy(f)
    assert str(e.value) == f"{f}: no vecnormalize.pkl: nothing to convert"
