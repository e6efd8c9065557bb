"""Event-driven abandonment (``sim/core.py``): checks at which a policy's side-effect-free
``abandon_rule`` gives nothing up are skipped in bulk, and the results are those of polling the
policy at every check. The polling reference below is the simulator's check-by-check loop as it
was before, kept here to hold the fast path to it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from conftest import device, make_ladder

from abr.qoe import get_qoe
from abr.registry import DEFAULT_LADDER, get_ladder
from policies import DownloadProgress, get_policy
from policies.fixed import Fixed
from sim.core import SIM_PRESETS, BatchSimulator, PlayerConfig, SimConfig
from sim.device import get_device
from sim.rng import session_keys
from sim.run import build_parser
from sim.session import run_sessions
from traces.cli import traces_from_args
from traces.trace import Trace

PERCEPTUAL = get_qoe("perceptual")
LATENCY = SIM_PRESETS["latency"]
SABRE = SIM_PRESETS["sabre"]
# the latency preset with Sabre's byte-spaced check schedule
LATENCY_BYTES = SimConfig(LATENCY.network, PlayerConfig(25.0, 0.0, abandon_check_bytes=1500.0))


class PollingSimulator(BatchSimulator):
    """The simulator with the check-by-check download it had before abandonment became
    event-driven: the policy is asked at every check of every download, rung 0 included."""

    def _download_abandoning(self, k, r, abandon, rule=None):
        bank, tix, dt = self.bank, self.tix, self.config.player.abandon_check_s
        min_bytes = self.config.player.abandon_check_bytes
        sizes, n = self.ladder.size_bytes[k], self.n
        r = r.copy()
        spent, wasted, count = np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int64)
        lat = bank.request_latency(tix, self.pos)
        start = bank.advance(tix, self.pos, lat)
        c0 = bank.bytes_before(tix, start)
        dl, end_pos, end_cum = bank.transfer(tix, start, c0, sizes[r])
        m = np.ones(n)

        def first(lat, start, c0):
            if min_bytes <= 0:
                return np.full(n, dt)
            return np.maximum(dt - lat, bank.transfer(tix, start, c0, np.full(n, min_bytes))[0])

        x = first(lat, start, c0)
        seen = self.clock.copy()
        active = dl > x
        while active.any():
            ahead = start + x
            loops = np.floor(ahead / bank.total_s[tix])
            local = ahead - loops * bank.total_s[tix]
            got = bank.bytes_before(tix, local) + loops * bank.total_bytes[tix] - c0
            seen = np.where(active, self.clock + spent + lat + x, seen)
            progress = DownloadProgress(
                chunk=k, active=active, rung=r, size_bytes=sizes[r], downloaded_bytes=np.where(active, got, 0.0),
                elapsed_s=lat + x, latency_s=lat, buffer_s=self._buffer(seen) if k > 0 else np.zeros(n),
            )  # fmt: skip
            to = np.asarray(abandon(progress), dtype=np.int64)
            give_up = active & (to >= 0) & (to < r)
            spent = np.where(give_up, spent + lat + x, spent)
            wasted = np.where(give_up, wasted + got, wasted)
            count += give_up
            r = np.where(give_up, to, r)
            req = bank.advance(tix, local, 0.0)
            new_lat = bank.request_latency(tix, req)
            new_start = bank.advance(tix, req, new_lat)
            new_c0 = bank.bytes_before(tix, new_start)
            new_dl, new_end, new_cum = bank.transfer(tix, new_start, new_c0, sizes[r])
            lat, start = np.where(give_up, new_lat, lat), np.where(give_up, new_start, start)
            c0, dl = np.where(give_up, new_c0, c0), np.where(give_up, new_dl, dl)
            end_pos, end_cum = np.where(give_up, new_end, end_pos), np.where(give_up, new_cum, end_cum)
            m = np.where(give_up, 1.0, m + 1.0)
            if min_bytes <= 0:
                x = m * dt
            else:
                later = np.maximum(x + dt, bank.transfer(tix, start, c0, got + min_bytes)[0])
                x = np.where(give_up, first(lat, start, c0), later)
            active &= dl > x
        self.pos, self.cum = end_pos, end_cum
        return np.where(count > 0, spent + lat + dl, lat + dl), r, wasted, count, lat, spent


@dataclass
class Calls:
    abandon: int = 0
    rule: int = 0
    rule_entries: int = 0


def drive(sim_cls, policy, traces, ladder, config, sessions, use_rule=True):
    """Run sessions like :func:`sim.session.run_sessions`, counting the policy's calls."""
    calls = Calls()

    def abandon(p):
        calls.abandon += 1
        return policy.abandon(p)

    def rule(p):
        calls.rule += 1
        calls.rule_entries += len(p.rung)
        return policy.abandon_rule(p)

    sim = sim_cls(traces, ladder, device(), PERCEPTUAL, config)
    ids = np.arange(sessions)
    obs = sim.reset(ids % len(traces), session_keys(0, ids))
    policy.reset(sim.context, sessions)
    infos, done = [], False
    while not done:
        obs, info, done = sim.step(policy.act(obs), abandon=abandon, abandon_rule=rule if use_rule else None)
        infos.append(info)
    fields = ("rung", "size_bytes", "delay_s", "throughput_mbps", "buffer_s", "stall_s", "reward", "abandoned")
    fields += ("wasted_bytes",)
    return {f: np.stack([getattr(i, f) for i in infos]) for f in fields}, calls


def collapsing_traces(seed, n=4):
    """Fast stretches, slow stretches and outages, with per-segment latency."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        segs = 30
        mbps = np.where(rng.random(segs) < 0.5, rng.uniform(4.0, 20.0, segs), rng.uniform(0.02, 0.4, segs))
        mbps[rng.random(segs) < 0.15] = 0.0
        mbps[0] = 8.0
        out.append(Trace(rng.uniform(1.0, 12.0, segs), mbps, latency_ms=rng.uniform(10.0, 300.0, segs)))
    return out


LADDER = make_ladder(np.tile([3e4, 1e5, 3e5, 6e5], (16, 1)) * np.linspace(0.8, 1.2, 16)[:, None],
                     lpips=np.tile([0.3, 0.2, 0.1, 0.05], (16, 1)))  # fmt: skip


@pytest.mark.parametrize("spec", ["bola-e", "bola:variant=u", "throughput", "dynamic"])
@pytest.mark.parametrize("config", [LATENCY, LATENCY_BYTES, SABRE], ids=["plain", "bytes", "sabre"])
def test_skipping_checks_gives_the_results_of_polling_every_check(spec, config):
    traces = collapsing_traces(1)
    ref, ref_calls = drive(PollingSimulator, get_policy(spec), traces, LADDER, config, sessions=4)
    new, new_calls = drive(BatchSimulator, get_policy(spec), traces, LADDER, config, sessions=4)
    for name in ref:
        np.testing.assert_array_equal(new[name], ref[name], err_msg=name)
    # the policy's abandon() runs only at checks where some download is given up
    assert new_calls.abandon <= new["abandoned"].sum() and (new_calls.abandon > 0) == (new["abandoned"].sum() > 0)
    assert new_calls.abandon + new_calls.rule < ref_calls.abandon


def test_the_equivalence_cases_abandon_and_run_long_downloads():
    """The cases above would not test much if nothing were abandoned or every download were short."""
    for spec in ("bola-e", "throughput", "bola:variant=u", "dynamic"):
        new, calls = drive(BatchSimulator, get_policy(spec), collapsing_traces(1), LADDER, LATENCY, sessions=4)
        assert new["abandoned"].sum() >= 1, spec
        assert calls.rule_entries > 10 * calls.rule, spec  # blocks of many checks per rule call
        assert (new["delay_s"] > 10.0).any(), spec  # downloads of hundreds of checks


class GiveUpHalfway(Fixed):
    """Requests its rung and gives a download up for rung 0 once half of it has arrived."""

    name = "give-up-halfway"

    def abandon(self, progress):
        return self.abandon_rule(progress)

    def abandon_rule(self, progress):
        half = progress.downloaded_bytes >= 0.5 * progress.size_bytes
        return np.where(progress.active & half & (progress.rung > 0), 0, -1)


def test_a_late_abandonment_on_a_slow_link_matches_polling_with_few_calls():
    # 0.01 Mbit/s = 1250 B/s; rung 1 is 50 kB: 40 s, 800 checks; given up after 20 s (400 checks)
    trace = Trace([1000.0], [0.01], latency_ms=[50.0])
    ladder = make_ladder([[1_000, 50_000]] * 3)
    ref, ref_calls = drive(PollingSimulator, GiveUpHalfway(Fixed.Params(rung=1)), [trace], ladder, LATENCY, 2)
    new, calls = drive(BatchSimulator, GiveUpHalfway(Fixed.Params(rung=1)), [trace], ladder, LATENCY, 2)
    for name in ref:
        np.testing.assert_array_equal(new[name], ref[name], err_msg=name)
    assert new["abandoned"].tolist() == [[1, 1]] * 3
    assert new["wasted_bytes"] == pytest.approx(np.full((3, 2), 25_000.0), rel=1e-3)
    assert ref_calls.abandon > 3 * 400  # polling asks at every check, the rung 0 replacement included
    # blocks of 8, 16, ..., 256 checks reach check 400 in 6 calls per chunk; abandon() once per chunk
    assert calls.abandon == 3 and calls.rule <= 3 * 6


def test_bola_e_on_a_near_dead_link_finishes_in_a_few_policy_calls():
    """``python -m sim.run --sim latency --policy bola-e --trace lte --scale 0.00001`` (it polled for
    minutes): downloads last hours, at rung 0, which nothing can be abandoned for."""
    args = build_parser().parse_args(["--sim", "latency", "--trace", "lte", "--scale", "0.00001"])
    traces = traces_from_args(args, seed=0)[:4]
    ladder = get_ladder(DEFAULT_LADDER)
    policy = get_policy("bola-e")
    counted = Calls()
    abandon, rule = policy.abandon, policy.abandon_rule
    policy.abandon = lambda p: (setattr(counted, "abandon", counted.abandon + 1), abandon(p))[1]
    policy.abandon_rule = lambda p: (setattr(counted, "rule", counted.rule + 1), rule(p))[1]
    res = run_sessions(policy, traces, ladder, get_device("h200"), PERCEPTUAL, config=LATENCY)
    checks = res.chunks["delay_s"] / LATENCY.player.abandon_check_s  # what polling would have asked
    assert checks.sum() > 1e5
    assert counted.abandon + counted.rule <= 2 * ladder.n_chunks
    assert np.isfinite(res.summary_arrays()["qoe_mean"]).all()


def test_only_downloads_with_a_lower_rung_are_searched():
    calls = Calls()
    policy = GiveUpHalfway(Fixed.Params(rung=0))
    trace = Trace([1000.0], [0.01], latency_ms=[50.0])
    sim = BatchSimulator([trace], make_ladder([[100_000, 200_000]] * 2), device(), PERCEPTUAL, LATENCY)
    sim.reset(np.array([0]), session_keys(0, np.array([0])))
    policy.reset(sim.context, 1)

    def rule(p):
        calls.rule += 1
        return policy.abandon_rule(p)

    _, info, _ = sim.step(np.array([0]), abandon=policy.abandon, abandon_rule=rule)
    assert calls.rule == 0 and info.abandoned[0] == 0 and info.delay_s[0] == pytest.approx(80.05)



def _outage(seconds: float) -> Trace:
    """2 s at 20 Mbit/s (the policies climb to the top rung), an outage, then a fast link again."""
    return Trace([2.0, seconds, 5.0, 3000.0], [20.0, 0.0, 20.0, 0.001], latency_ms=[50.0] * 4)


@pytest.mark.parametrize("spec", ["bola-e", "bola:variant=u", "throughput", "dynamic"])
def test_an_outage_mid_download_matches_polling(spec):
    ref, _ = drive(PollingSimulator, get_policy(spec), [_outage(40.0)], LADDER, LATENCY, 1)
    new, calls = drive(BatchSimulator, get_policy(spec), [_outage(40.0)], LADDER, LATENCY, 1)
    for name in ref:
        np.testing.assert_array_equal(new[name], ref[name], err_msg=name)
    assert new["abandoned"].sum() >= 1 and new["delay_s"].max() > 40.0


def test_a_mostly_zero_trace_costs_a_few_calls_per_download():
    """The issue's hang: BOLA-E on a mostly-zero trace polled every 50 ms through the outage."""
    for spec in ("bola-e", "bola:variant=u", "throughput", "dynamic"):
        new, calls = drive(BatchSimulator, get_policy(spec), [_outage(20_000.0)], LADDER, LATENCY, 1)
        assert new["delay_s"].sum() / LATENCY.player.abandon_check_s > 4e5, spec  # checks polling would ask
        assert calls.abandon <= new["abandoned"].sum() and calls.rule <= 40, spec
