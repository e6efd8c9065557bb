"""The single env's fast path: :meth:`sim.core.BatchSimulator.step` for one session, on Python floats.

A batch of one pays numpy's per-call overhead (~1 us) some sixty times per chunk; the same
arithmetic on Python floats is ten times faster. This is not a second model:
:meth:`ScalarSession.reset` and :meth:`ScalarSession.step` mirror ``BatchSimulator.reset`` and
``BatchSimulator.step`` line for line (numbered as in :mod:`sim.core`), in the same order of
floating-point operations, with ``bisect_left``/``bisect_right`` for ``np.searchsorted``
``side="left"``/``"right"``, ``x if x >= y else y`` for ``np.maximum`` and
:func:`uniform`/:func:`session_key` for :mod:`sim.rng` on Python ints. The decoder
(:class:`sim.device.DecoderModel`: NPU jitter, throttling heat, a population's member draw)
uses numpy's own ``exp``/``cos``/``log1p`` (on one float per step, and on the session's
jitter draws of every chunk at reset), since libm's may differ from numpy's in the last bit.
``tests/test_scalar.py`` checks that both agree bit for bit for every simulator preset and
device. When the core changes, change the mirror with it.

Measured alternatives (``bench/bench_core.py``): the core with a batch of one runs at 0.03x the
plain Pensieve loop, this mirror at ~0.46x (1.6x that loop behind a Gymnasium API); in one later
run over the ``promptabr``, ``pensieve``, ``latency`` and ``sabre`` presets (``StreamingEnv``
steps, the plain loop interleaved), 0.47-0.53x for a constant decoder and 0.25-0.29x with a
phone's NPU model, 14-24x the core with a batch of one. A compiled
kernel (numba) was not tried: under cProfile the arithmetic of :meth:`ScalarSession.step` is
about a third of an env step, the rest being the Gymnasium side (info dict, observation array,
checks) that a kernel would not remove, and numba is not a dependency of the project.

:func:`supports` lists what the mirror knows: every field of :class:`~sim.core.SimConfig`,
:class:`~sim.core.PlayerConfig` and :class:`~sim.network.NetworkConfig` at every value they
validate (so all of ``SIM_PRESETS``), and every :class:`~sim.device.DeviceProfile` and
:class:`~sim.device.DevicePopulation`. A configuration, device or QoE with anything else (a
field added to them later, another network mode, a subclass, an empty trace) is not
supported, and :class:`sim.env.StreamingEnv` then runs the core with a batch of one instead.
Abandonment never applies: the env downloads every chunk it asks for, so the abandonment
knobs (``abandon_check_*``, ``abandoned_in_sample``) and ``peer`` (read by policies only)
change nothing here, and Sabre's preset runs on the mirror.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import fields

import numpy as np

from abr.qoe import QoE
from policies.observation import OBS_HIGH, OBS_SCALES
from sim import rng
from sim.core import _STREAM_NOISE, _STREAM_START, BatchSimulator, PlayerConfig, SimConfig
from sim.device import (
    _STREAM_JITTER_A,
    _STREAM_JITTER_B,
    _STREAM_MEMBER,
    _STREAM_SPIKE,
    DecoderModel,
    DevicePopulation,
    DeviceProfile,
    Variability,
)
from sim.network import NetworkConfig

__all__ = ["ScalarSession", "session_key", "supports", "uniform"]

#: what the mirror was written for; anything else falls back to the core
#: (the abandonment knobs and ``peer`` are read by nothing the env's plain path runs)
# fmt: off
_KNOWN_FIELDS = {
    SimConfig: {"network", "player", "peer"},
    NetworkConfig: {
        "mode", "payload_fraction", "rtt_s", "noise_low", "noise_high", "random_start", "start", "wrap",
    },
    PlayerConfig: {
        "buffer_cap_s", "sleep_quantum_s", "history", "abandon_check_s", "abandon_check_bytes",
        "abandoned_in_sample", "buffer_rule", "first_prev_rung", "score_from", "wait_after_last",
    },
    DeviceProfile: {"name", "decode_ms_per_frame", "sources", "description", "variability"},
    DevicePopulation: {"name", "members", "weights", "sources", "description"},
    Variability: {"npu_decoders", "p90_p50", "spike_prob", "spike_factor", "floor", "tau_s", "sources"},
    QoE: {"name", "quality", "stall_penalty", "switch_penalty"},
}
# fmt: on
_MODES = ("pensieve", "latency")
_STARTS = ("time", "sample")
_WRAPS = ("loop", "zero")
_BUFFER_RULES = ("after", "before")


def _known(obj: object) -> bool:
    cls = type(obj)
    return cls in _KNOWN_FIELDS and {f.name for f in fields(cls)} == _KNOWN_FIELDS[cls]


def _known_device(device: object) -> bool:
    members = device.members if type(device) is DevicePopulation else (device,)
    return _known(device) and all(_known(m) and _known(m.variability) for m in members)


def supports(
    config: SimConfig, device: DeviceProfile | DevicePopulation, qoe: QoE, sim: BatchSimulator | None = None
) -> bool:
    """Whether :class:`ScalarSession` reproduces the core exactly for this set-up (else use the core)."""
    if not all(_known(x) for x in (config, config.network, config.player, qoe)) or not _known_device(device):
        return False
    net, player = config.network, config.player
    if net.mode not in _MODES or net.start not in _STARTS or net.wrap not in _WRAPS:
        return False
    if player.buffer_rule not in _BUFFER_RULES:
        return False
    if sim is not None:
        if type(sim) is not BatchSimulator or (sim.config, sim.device, sim.qoe) != (config, device, qoe):
            return False
        if type(sim.decoder) is not DecoderModel:
            return False
        if not (np.all(sim.bank.total_bytes > 0) and np.all(sim.bank.total_s > 0)):
            return False  # the core's arithmetic on an empty trace is numpy's inf/nan; not mirrored
        if not np.all(sim.ladder.size_bytes > 0):
            return False  # a zero delay makes numpy's inf throughput; Python raises
    return True


class ScalarSession:
    """One session of ``sim`` (a :class:`BatchSimulator` that :func:`supports` accepts), stepped on floats.

    :meth:`reset` and :meth:`step` stand for ``sim.reset`` and ``sim.step`` with one session;
    :meth:`features` is :class:`policies.observation.ObservationBuilder` of its observation.
    """

    def __init__(self, sim: BatchSimulator, builder) -> None:
        if not supports(sim.config, sim.device, sim.qoe, sim):
            raise ValueError("ScalarSession does not support this simulator; use BatchSimulator")
        net, player, bank, lad = sim.config.network, sim.config.player, sim.bank, sim.ladder
        self.sim = sim
        self.pensieve = net.mode == "pensieve"
        self.rtt_s = net.rtt_s
        self.cap_s = player.buffer_cap_s
        self.quantum_s = player.sleep_quantum_s
        self.history = player.history
        self.before = player.buffer_rule == "before"
        self.wait_after_last = player.wait_after_last
        r0 = player.first_prev_rung
        self.first_prev_q = float(sim.quality[0, r0]) if 0 <= r0 < lad.n_rungs else None
        self.n_chunks, self.n_rungs = lad.n_chunks, lad.n_rungs
        self.size = lad.size_bytes.tolist()
        self.decode = sim.decode.tolist()
        dm = self.decoder = sim.decoder
        self.constant = dm.constant
        self.base, self.npu = dm.base.tolist(), dm.npu.tolist()
        self.cum_weight = dm.cum_weight.tolist()
        self.quality = sim.quality.tolist()
        self.lpips = lad.lpips_mean.tolist()
        self.severe = lad.severe_frac.tolist()
        self.chunk_s = sim.chunk_s.tolist()
        self.content_end = sim.content_end_s.tolist()
        self.mu, self.lam = sim.qoe.stall_penalty, sim.qoe.switch_penalty
        # the trace bank, as lists (global keys: the same comparisons as the core's searches)
        self.key_t, self.key_b = bank._key_t.tolist(), bank._key_b.tolist()
        self.seg_start_s, self.seg_start_b = bank.seg_start_s.tolist(), bank.seg_start_b.tolist()
        self.rate, self.latency_s = bank.rate_Bps.tolist(), bank.latency_s.tolist()
        self.seg_dur = bank.duration_s.tolist()
        self._bank = bank
        # observation: the builder's per-chunk table, clipped as the builder clips it
        h = builder.history
        if h != self.history:
            raise ValueError(f"builder history {h} != simulator history {self.history}")
        self.high = OBS_HIGH
        table = np.clip(np.where(np.isnan(builder.table), 0.0, builder.table), 0.0, OBS_HIGH)
        split = 3 * self.n_rungs  # the two per-step slots follow the bitrates, qualities and speeds
        self.row_a = table[:, :split].tolist()
        self.row_b = table[:, split + 2 :].tolist()
        self.inv_thr, self.inv_delay = 1.0 / OBS_SCALES["throughput_mbps"], 1.0 / OBS_SCALES["delay_s"]
        self.inv_cap = 1.0 / builder.buffer_cap_s
        self.inv_rungs = 1.0 / builder.n_rungs
        self.inv_dur = [1.0 / d for d in builder.duration_s.tolist()]

    # ------------------------------------------------------------ trace bank (sim.network.TraceBank)
    def _segment(self, pos: float) -> int:
        seg = bisect_right(self.key_t, self.base_t + pos, self.first, self.last + 1)
        return seg if seg < self.last else self.last

    def _bytes_before(self, pos: float) -> float:
        seg = self._segment(pos)
        return self.seg_start_b[seg] + (pos - self.seg_start_s[seg]) * self.rate[seg]

    def _transfer(self, pos: float, cum: float, size: float) -> tuple[float, float, float]:
        total_b = self.total_b
        target = cum + size
        loops = float(math.floor(target / total_b))
        rem = target - loops * total_b
        if rem <= 0 and loops > 0:  # exactly at the end of a loop: earliest time is that end
            loops, rem = loops - 1.0, total_b
        seg = bisect_left(self.key_b, self.base_b + rem, self.first, self.last + 1)
        seg = seg if seg < self.last else self.last
        rate = self.rate[seg]
        within = (rem - self.seg_start_b[seg]) / rate if rate > 0 else 0.0
        end_local = self.seg_start_s[seg] + within
        elapsed = loops * self.total_s + end_local - pos
        if end_local >= self.total_s:
            return elapsed, 0.0, 0.0
        return elapsed, end_local, rem

    def _request_latency(self, pos: float) -> float:
        """TraceBank.request_latency: one unit of latency, paid at each crossed segment's rate."""
        seg = self._segment(pos)
        left = self.seg_start_s[seg] + self.seg_dur[seg] - pos
        left = left if left >= 0.0 else 0.0
        total, units = 0.0, 1.0
        while True:
            lat = self.latency_s[seg]
            need = units * lat
            if need <= left:
                return total + need
            total = total + left
            units = units - left / (lat if lat > 0 else 1.0)
            seg = self.first if seg >= self.last else seg + 1
            left = self.seg_dur[seg]

    # ------------------------------------------------------------------ reset
    def reset(self, tix: int, key: int) -> None:
        """BatchSimulator.reset for one session on trace ``tix`` with key ``key``."""
        bank, net = self._bank, self.sim.config.network
        self.first, self.last = int(bank.first[tix]), int(bank.last[tix])
        self.base_t, self.base_b = float(bank._base_t[tix]), float(bank._base_b[tix])
        self.total_s, self.total_b = float(bank.total_s[tix]), float(bank.total_bytes[tix])
        self.key = key
        if net.random_start and net.start == "sample":
            nseg = self.last - self.first + 1
            j = min(math.floor(uniform(key, 0, _STREAM_START) * nseg), nseg - 1)
            self.pos = float(bank.origin_s[tix]) if j == 0 else self.seg_start_s[self.first + j]
        elif net.random_start:
            self.pos = uniform(key, 0, _STREAM_START) * self.total_s
        else:
            self.pos = float(bank.origin_s[tix])
        self.cum = self._bytes_before(self.pos)
        if self.pensieve and net.noise_high > net.noise_low:  # all chunks' draws at once, as the core does
            draws = rng.uniform(np.uint64(key), np.arange(self.n_chunks), _STREAM_NOISE)
            self.noise = (net.noise_low + (net.noise_high - net.noise_low) * draws).tolist()
        else:
            self.noise = [net.noise_low] * self.n_chunks
        self.k = 0
        self.played = 0
        self.clock = self.dec_free = self.play_end = self.stall_total = self.buffer = self.heat = 0.0
        if not self.constant:  # DecoderModel.member and .jitter; J_k of every chunk at once (numpy's exp, cos, log1p)
            dm, m = self.decoder, 0
            if len(self.cum_weight) > 1:
                m = min(bisect_right(self.cum_weight, uniform(key, 0, _STREAM_MEMBER)), len(self.cum_weight) - 1)
            self.member = m
            self.m_base, self.m_npu = self.base[m], self.npu[m]
            self.tau, self.floor = float(dm.tau_s[m]), float(dm.floor[m])
            keys, ks = np.uint64(key), np.arange(self.n_chunks)
            u1 = rng.uniform(keys, ks, _STREAM_JITTER_A)
            u2 = rng.uniform(keys, ks, _STREAM_JITTER_B)
            z = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)
            spike = rng.uniform(keys, ks, _STREAM_SPIKE) < dm.spike_prob[m]
            self.jitter = (np.exp(dm.sigma[m] * z) * np.where(spike, dm.spike_factor[m], 1.0)).tolist()
        self.play_start = [0.0] * self.n_chunks
        self.last_rung, self.last_q = -1, self.first_prev_q
        self.thr_obs = [0.0] * self.history  # the builder's view: scaled, NaN -> 0, clipped
        self.delay_obs = [0.0] * self.history
        self.dec_obs = [0.0] * self.history

    # ------------------------------------------------------------------- step
    def step(self, r: int) -> tuple[float, bool, dict]:
        """Chunk ``k`` at rung ``r``; returns (reward, done, info as :func:`sim.env.step_info`)."""
        k, n_chunks = self.k, self.n_chunks
        if k >= n_chunks:
            raise RuntimeError("step() after the last chunk; call reset()")
        size = self.size[k][r]

        # 2. network
        if self.pensieve:
            dl, pos, self.cum = self._transfer(self.pos, self.cum, size)
            delay = (dl + self.rtt_s) * self.noise[k]
        else:
            lat = self._request_latency(self.pos)
            pos = (self.pos + lat) % self.total_s
            dl, pos, self.cum = self._transfer(pos, self._bytes_before(pos), size)
            delay = lat + dl
        self.pos = pos
        arrive = self.clock + delay

        # 3. decoder
        dec_free = self.dec_free
        start = arrive if arrive >= dec_free else dec_free
        if self.constant:
            dec = self.decode[k][r]
        else:  # DecoderModel.chunk_s; np.exp on a float is the core's exp, bit for bit
            tau, npu = self.tau, self.m_npu[r]
            h, idle = self.heat, start - dec_free
            if h != 0.0 and idle != 0.0:  # else exp's factor changes nothing (exp(-0) is 1 exactly)
                h = h * float(np.exp(-idle / tau))  # cooled while idle
            speed = 1.0 - (1.0 - self.floor) * h
            dec = self.m_base[k][r]
            if npu:
                dec = dec * self.jitter[k] / speed
            e = float(np.exp(-dec / tau))
            self.heat = 1.0 - (1.0 - h) * e if npu else h * e
        decoded = start + dec
        self.dec_free = decoded

        # 4. player
        play_end = self.play_end
        if k == 0:
            play = decoded
            stall = decoded
        else:
            play = decoded if decoded >= play_end else play_end
            stall = play - play_end
            self.stall_total = self.stall_total + stall
        ps, content_end, chunk_s = self.play_start, self.content_end, self.chunk_s
        ps[k] = play
        self.play_end = play + chunk_s[k]

        # 6. QoE
        q = self.quality[k][r]
        last_q = self.last_q
        switch = 0.0 if last_q is None else abs(q - last_q)
        reward = q - self.mu * stall - self.lam * switch

        # 5. buffer cap
        wait = 0.0
        last = k + 1 >= n_chunks
        if self.before and not last:
            target = content_end[k] + chunk_s[k + 1] - self.cap_s
            target = target if target < content_end[k] else content_end[k]  # as the core: at most all plays
        elif not last or self.wait_after_last:
            target = content_end[k] - self.cap_s  # content that must have played
        else:
            target = 0.0
        if target > 0:
            j = bisect_right(content_end, target)
            j = j if j < k else k
            before = content_end[j - 1] if j > 0 else 0.0
            when = ps[j] + (target - before)
            wait = when - arrive
            wait = wait if wait >= 0.0 else 0.0
            quantum = self.quantum_s
            if quantum > 0:
                wait = math.ceil(wait / quantum - 1e-9) * quantum
            if wait > 0:
                self.pos = pos = (pos + wait) % self.total_s
                self.cum = self._bytes_before(pos)
        self.clock = clock = arrive + wait

        thr = size * 8.0 / delay / 1e6
        v, w, high = thr * self.inv_thr, delay * self.inv_delay, self.high
        self.thr_obs = self.thr_obs[1:] + [(v if v < high else high) if v > 0.0 else 0.0]
        self.delay_obs = self.delay_obs[1:] + [(w if w < high else high) if w > 0.0 else 0.0]
        d = dec * self.inv_delay
        self.dec_obs = self.dec_obs[1:] + [(d if d < high else high) if d > 0.0 else 0.0]
        self.last_rung = r
        self.last_q = q
        self.k = k = k + 1

        # BatchSimulator._buffer(clock)
        played = self.played
        while played < k and ps[played if played < k - 1 else k - 1] <= clock:
            played += 1
        self.played = played
        j = played - 1 if played > 1 else 0
        if played > 0:
            into = clock - ps[j]
            into = (into if into >= 0.0 else 0.0) if into <= chunk_s[j] else chunk_s[j]
            buffer = content_end[k - 1] - ((content_end[j] - chunk_s[j]) + into)
        else:
            buffer = content_end[k - 1] - 0.0
        self.buffer = buffer
        info = {
            "chunk": k - 1, "rung": r, "size_bytes": size, "delay_s": delay, "throughput_mbps": thr,
            "decode_s": dec, "stall_s": stall, "wait_s": wait, "buffer_s": buffer, "quality": q,
            "lpips": self.lpips[k - 1][r], "severe_frac": self.severe[k - 1][r], "reward": reward,
            "abandoned": 0, "wasted_bytes": 0.0,
        }  # fmt: skip
        return reward, k == n_chunks, info

    def features(self) -> np.ndarray:
        """The observation vector (float32) :class:`policies.observation.ObservationBuilder` makes of this state."""
        k, n, high = self.k, self.n_chunks, self.high
        row = k if k < n else n - 1
        b = self.buffer * self.inv_cap
        last = (self.last_rung + 1) * self.inv_rungs
        backlog = self.dec_free - self.clock
        backlog = backlog * self.inv_dur[row] if backlog > 0.0 else 0.0
        left = (n - k) / n
        head = [(b if b < high else high) if b > 0.0 else 0.0, last if last < high else high]
        tail = [backlog if backlog < high else high, left]
        return np.array(self.thr_obs + self.delay_obs + head + self.row_a[row] + tail + self.row_b[row] + self.dec_obs,
                        np.float32)  # fmt: skip


# ---------------------------------------------------------------- sim.rng on Python ints
_MASK = (1 << 64) - 1
_GOLDEN, _M1, _M2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _mix(z: int) -> int:
    """sim.rng._mix on one Python int."""
    z = (z + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * _M1) & _MASK
    z = ((z ^ (z >> 27)) * _M2) & _MASK
    return z ^ (z >> 31)


def session_key(seed: int, session_id: int) -> int:
    """:func:`sim.rng.session_keys` for one session."""
    return _mix(_mix(seed & _MASK) ^ ((session_id * _M1) & _MASK))


def uniform(key: int, counter: int, stream: int) -> float:
    """:func:`sim.rng.uniform` for one draw."""
    salt = (counter * 0x100000001B3 + stream * 0xC2B2AE3D27D4EB4F) & _MASK
    z = _mix(key ^ _mix(salt))
    return (z >> 11) * (1.0 / 9007199254740992.0)
