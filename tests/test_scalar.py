"""The single env's fast path (sim.scalar) is the batched core, bit for bit, session for session.

Parametrized over every simulator preset and device (NPU jitter, throttling and device
populations included), so that a change of the core that the mirror does not follow fails
here; set-ups the mirror does not claim are checked to fall back to the core.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest

from abr import get_ladder, get_qoe
from sim import rng
from sim.core import SIM_PRESETS, BatchSimulator, PlayerConfig
from sim.device import DecoderModel, available_devices, get_device
from sim.env import ObservationBuilder, StreamingEnv, step_info
from sim.network import NetworkConfig
from sim.scalar import ScalarSession, session_key, supports, uniform
from traces.trace import Trace


def _traces(n: int = 4, seed: int = 0) -> list[Trace]:
    """Slow and fast stretches, outages, uneven segments; per-segment latency on half of them."""
    g = np.random.default_rng(seed)
    out = []
    for i in range(n):
        m = 60 + 20 * i
        mbps = np.exp(g.normal(np.log(0.3 + 0.6 * i), 1.0, size=m))
        mbps[g.integers(0, m, size=4)] = 0.0
        dur = g.uniform(0.2, 3.0, size=m)
        lat = g.uniform(5, 300, size=m) if i % 2 else None
        out.append(Trace(dur, mbps, latency_ms=lat, name=f"t{i}"))
    return out


LADDERS = {"pensieve": "synthetic:pensieve", "promptus": "promptus-paper-model"}
CONFIGS = {
    **{name: cfg for name, cfg in SIM_PRESETS.items()},
    # a small buffer cap: the downloader waits after nearly every chunk, in and out of quantum steps
    "promptabr-cap8": replace(SIM_PRESETS["promptabr"], player=PlayerConfig(buffer_cap_s=8.0, history=5)),
    "latency-cap6-quantum": replace(SIM_PRESETS["latency"], player=PlayerConfig(buffer_cap_s=6.0, sleep_quantum_s=0.3)),
    # Sabre's wait-before rule with a small cap, and Pensieve's sample start, zero wrap and rung-1 start
    "sabre-cap6": replace(
        SIM_PRESETS["sabre"], player=replace(SIM_PRESETS["sabre"].player, buffer_cap_s=6.0, sleep_quantum_s=0.25)
    ),
    "pensieve-cap8": replace(SIM_PRESETS["pensieve"], player=replace(SIM_PRESETS["pensieve"].player, buffer_cap_s=8.0)),
}


def _actions(n_chunks: int, n: int, n_rungs: int, seed: int) -> np.ndarray:
    """Random rungs for most sessions, plus always-top and always-bottom sessions."""
    a = np.random.default_rng(seed).integers(0, n_rungs, size=(n_chunks, n))
    a[:, 0], a[:, 1] = n_rungs - 1, 0
    return a


@pytest.mark.parametrize("ladder", sorted(LADDERS))
@pytest.mark.parametrize("device", available_devices())
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_scalar_session_equals_the_core_bit_for_bit(config, device, ladder):
    cfg, dev, lad, qoe = CONFIGS[config], get_device(device), get_ladder(LADDERS[ladder]), get_qoe("perceptual")
    traces = _traces()
    sim = BatchSimulator(traces, lad, dev, qoe, cfg)
    assert supports(cfg, dev, qoe, sim)  # every preset and built-in device is mirrored
    builder = ObservationBuilder.from_context(sim.context, cfg.player.history, lookahead=2)
    n = 8
    tix = np.arange(n) % len(traces)
    keys = rng.session_keys(7, np.arange(n))
    acts = _actions(lad.n_chunks, n, lad.n_rungs, seed=len(config) + len(device))
    obs = sim.reset(tix, keys)
    batch_obs, batch_info = [builder(obs)], []
    for k in range(lad.n_chunks):
        obs, info, done = sim.step(acts[k])
        batch_obs.append(builder(obs))
        batch_info.append(info)
    assert done
    one = ScalarSession(BatchSimulator(traces, lad, dev, qoe, cfg), builder)
    waited, jittered = 0, 0
    for i in range(n):
        one.reset(int(tix[i]), int(keys[i]))
        np.testing.assert_array_equal(one.features(), batch_obs[0][i])
        for k in range(lad.n_chunks):
            reward, last, info = one.step(int(acts[k, i]))
            assert info == step_info(batch_info[k], i), (i, k)  # every metric, exactly
            assert reward == info["reward"] and last == (k == lad.n_chunks - 1)
            np.testing.assert_array_equal(one.features(), batch_obs[k + 1][i])
            waited += info["wait_s"] > 0
            jittered += info["decode_s"] not in sim.decoder.base[:, k, info["rung"]]  # no member's nominal
    if device == "none" and "cap" in config:
        assert waited > 0  # the buffer-cap branch ran
    npu = not sim.decoder.constant and sim.decoder.npu.any()  # a rung of this ladder decodes on an NPU
    assert (jittered > 0) == bool(npu)  # the jitter/throttling branch ran exactly where it applies


def test_scalar_rng_is_sim_rng():
    keys = rng.session_keys(12345, np.arange(50))
    assert [session_key(12345, i) for i in range(50)] == [int(k) for k in keys]
    big = rng.session_keys(2**70 + 3, np.array([0, 2**40]))
    assert [session_key(2**70 + 3, 0), session_key(2**70 + 3, 2**40)] == [int(k) for k in big]
    draws = rng.uniform(keys[:, None], np.arange(30)[None, :], 1)
    assert [[uniform(int(k), c, 1) for c in range(30)] for k in keys] == draws.tolist()
    seeds = np.array([3, 3, 9], dtype=np.uint64)
    np.testing.assert_array_equal(rng.session_keys(seeds, np.array([0, 1, 0])),
                                  [session_key(3, 0), session_key(3, 1), session_key(9, 0)])  # fmt: skip


@pytest.mark.parametrize("config", sorted(SIM_PRESETS))
def test_supports_every_preset_and_device(config):
    qoe, cfg = get_qoe("perceptual"), SIM_PRESETS[config]
    assert all(supports(cfg, get_device(d), qoe) for d in available_devices())


@dataclass(frozen=True, slots=True)
class _WiderNetwork(NetworkConfig):
    """A network with a knob the mirror has never seen."""

    burst: float = 0.0


def test_supports_declines_what_it_does_not_mirror():
    lad, dev, qoe = get_ladder("synthetic:pensieve"), get_device("h200"), get_qoe("perceptual")
    cfg = SIM_PRESETS["promptabr"]
    assert supports(cfg, dev, qoe) and supports(SIM_PRESETS["latency"], dev, qoe)

    class Tweaked(BatchSimulator):
        pass

    assert not supports(cfg, dev, qoe, Tweaked(_traces(1), lad, dev, qoe, cfg))
    sim = BatchSimulator(_traces(1), lad, dev, qoe, cfg)
    assert supports(cfg, dev, qoe, sim)
    assert not supports(SIM_PRESETS["latency"], dev, qoe, sim)  # not this simulator's config
    assert not supports(cfg, get_device("none"), qoe, sim)  # not its device
    assert not supports(replace(cfg, network=_WiderNetwork()), dev, qoe)  # an unknown field
    burst = replace(cfg.network)
    object.__setattr__(burst, "mode", "burst")  # a mode added to the core later (validation bypassed)
    assert not supports(replace(cfg, network=burst), dev, qoe)
    with pytest.raises(ValueError, match="does not support"):
        ScalarSession(Tweaked(_traces(1), lad, dev, qoe, cfg), None)

    class OtherDecoder(DecoderModel):
        pass

    sim.decoder = OtherDecoder(**{f: getattr(sim.decoder, f) for f in sim.decoder.__dataclass_fields__})
    assert not supports(cfg, dev, qoe, sim)


def test_env_falls_back_to_the_core_where_the_mirror_declines():
    """A config with a knob the mirror does not know: the env runs the core and still plays."""
    kw = dict(traces=_traces(2), ladder="synthetic:promptus:chunks=4")
    env = StreamingEnv(config=replace(SIM_PRESETS["promptabr"], network=_WiderNetwork()), **kw)
    assert not env.fast and StreamingEnv(config="promptabr", **kw).fast
    env.reset(seed=0)
    done, n = False, 0
    while not done:
        _, reward, done, _, info = env.step(1)
        n += 1
        assert np.isfinite(reward) and info["rung"] == 1
    assert n == 4


@pytest.mark.parametrize("device", ["h200", "snapdragon-population"])
@pytest.mark.parametrize("config", sorted(SIM_PRESETS))
def test_env_fast_path_equals_env_on_the_core(config, device):
    """Whole episodes through the Gymnasium API: fast path vs the core with a batch of one."""
    kw = dict(traces=_traces(3), ladder="synthetic:promptus:chunks=20", config=config, device=device, lookahead=2)
    fast, slow = StreamingEnv(**kw), StreamingEnv(**kw)
    assert fast.fast
    slow._fast = None  # the fallback: the core, batch of one
    g = np.random.default_rng(1)
    for episode in range(3):
        seed = 40 + episode if episode != 1 else None
        o1, i1 = fast.reset(seed=seed)
        o2, i2 = slow.reset(seed=seed)
        np.testing.assert_array_equal(o1, o2)
        assert i1 == i2
        done = False
        while not done:
            a = int(g.integers(0, fast.action_space.n))
            o1, r1, done, t1, i1 = fast.step(a)
            o2, r2, d2, t2, i2 = slow.step(a)
            np.testing.assert_array_equal(o1, o2)
            assert (r1, done, t1, i1) == (r2, d2, t2, i2)
    assert fast.fast and not slow.fast


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_core_session_does_not_depend_on_its_batch(config):
    """A session run alone equals the same session in a batch (a waiting neighbour once changed it)."""
    cfg, lad, dev, qoe = CONFIGS[config], get_ladder("synthetic:pensieve"), get_device("none"), get_qoe("perceptual")
    traces = _traces()
    sim = BatchSimulator(traces, lad, dev, qoe, cfg)
    n = 8
    tix, keys = np.arange(n) % len(traces), rng.session_keys(3, np.arange(n))
    acts = _actions(lad.n_chunks, n, lad.n_rungs, seed=5)
    sim.reset(tix, keys)
    batch = [sim.step(acts[k])[1] for k in range(lad.n_chunks)]
    for i in (0, 3, 6):
        sim.reset(tix[i : i + 1], keys[i : i + 1])
        for k in range(lad.n_chunks):
            assert step_info(sim.step(acts[k, i : i + 1])[1]) == step_info(batch[k], i), (i, k)


@pytest.mark.parametrize("config", sorted(SIM_PRESETS))
@pytest.mark.parametrize("policy", ["bba", "throughput", "bola", "mpc"])
def test_scalar_session_replays_policies_decisions_exactly(policy, config):
    """Rungs chosen by real policies on the core (abandonment off), replayed on the mirror."""
    from policies.registry import get_policy

    cfg, lad, dev = SIM_PRESETS[config], get_ladder("promptus-paper-model"), get_device("h200")
    qoe, traces = get_qoe("perceptual"), _traces()
    sim = BatchSimulator(traces, lad, dev, qoe, cfg)
    n = 6
    tix, keys = np.arange(n) % len(traces), rng.session_keys(11, np.arange(n))
    pol = get_policy(policy)
    obs = sim.reset(tix, keys)
    pol.reset(sim.context, n)
    rungs, infos = [], []
    for _ in range(lad.n_chunks):
        a = pol.act(obs)
        obs, info, _ = sim.step(a)
        rungs.append(info.rung)
        infos.append(info)
    assert len({tuple(r) for r in rungs}) > 1  # the policy adapted
    one = ScalarSession(BatchSimulator(traces, lad, dev, qoe, cfg), ObservationBuilder.from_context(sim.context, 8))
    for i in range(n):
        one.reset(int(tix[i]), int(keys[i]))
        for k in range(lad.n_chunks):
            assert one.step(int(rungs[k][i]))[2] == step_info(infos[k], i), (policy, i, k)
