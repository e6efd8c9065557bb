"""The batched simulator core: every session's state is one numpy array.

Model, per session (read top to bottom in :meth:`BatchSimulator.step`):

1. The policy picks rung r for chunk k; the request leaves at the session clock.
2. Network (``sim.network``): the chunk of ``size[k, r]`` bytes arrives at a_k.
3. Decoder: decoding ends at e_k = max(a_k, e_{k-1}) + D_k, with D_k = frames_k x the
   per-frame decode time of the rung's decoder on the session's device (drawn per session
   from a population), times, for a phone's NPU decoders, a per-chunk jitter draw and a
   throttling factor that follows the NPU's heat (``sim.device``).
4. Player: chunk k plays at p_k = max(e_k, p_{k-1} + L_{k-1}); the wait beyond the end of
   chunk k-1 is a stall (for k = 0, p_0 is the startup delay).
5. Buffer cap: when more than ``buffer_cap_s`` of downloaded video is unplayed, the
   downloader waits until it is not (in ``sleep_quantum_s`` steps, as Pensieve sleeps).
   With ``buffer_rule="before"`` (Sabre) it waits instead until the next chunk fits:
   buffer + next chunk's duration <= cap (a chunk as long as the cap waits for an empty buffer).
6. QoE of the chunk from ``abr.qoe`` (stall_0 = startup delay). Chunk 0 has no switch term,
   unless ``first_prev_rung`` names the rung it is compared with (Pensieve: rung 1).

Abandonment (latency mode only, for a policy that defines it): the download is checked every
``abandon_check_s`` of transfer; the policy may give it up for a lower rung, which is then
requested at once (paying the request latency again). The time and bytes of the abandoned
attempts count in the chunk's delay and in ``wasted_bytes``. For a policy with a
side-effect-free rule, the checks at which it abandons nothing are evaluated in bulk and
skipped (a download at rung 0, with nothing lower to go to, is not evaluated at all), so a slow
link costs a few policy calls per download, not one per check.

A decoder slower than real time therefore stalls playback even on a fast network. All
sessions advance one chunk per step, so a run of K chunks is K numpy steps whatever the
number of sessions. A single Gymnasium env runs ``sim/scalar.py``, a line-for-line scalar mirror
of :meth:`BatchSimulator.reset` and :meth:`BatchSimulator.step` that ``tests/test_scalar.py``
holds bit for bit to this code: change both together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from abr.errors import InputError
from abr.ladder import Ladder
from abr.qoe import QoE
from policies.base import DownloadProgress, Observation, PolicyContext
from sim.device import Device
from sim.network import NetworkConfig, TraceBank
from sim.rng import uniform
from traces.trace import Trace

__all__ = ["BatchSimulator", "DEFAULT_SIM", "PlayerConfig", "SimConfig", "SIM_PRESETS", "StepInfo"]

_STREAM_START, _STREAM_NOISE = 0, 1


@dataclass(frozen=True, slots=True)
class PlayerConfig:
    """The client.

    :param buffer_cap_s: most downloaded-but-unplayed video the player holds, seconds.
    :param sleep_quantum_s: the downloader waits in steps of this length (0 = exact).
    :param history: number of past chunks in the observation.
    :param abandon_check_s: transfer time between checks of a download a policy may abandon
        (latency mode; Sabre checks every 50 ms).
    :param abandon_check_bytes: when > 0, Sabre's progress schedule: a request's first check
        comes ``abandon_check_s`` after it leaves (latency included), and every check at least
        ``abandon_check_s`` and this many bytes after the previous one (Sabre: 12,000 bits).
    :param abandoned_in_sample: the chunk's throughput sample and delay in the observation
        include its abandoned attempts (bytes and time); False: only the kept request, as
        Sabre's estimator sees it.
    :param buffer_rule: ``after``: after a download, wait until the buffer is <= the cap
        (Pensieve); ``before``: wait until buffer + the next chunk's duration <= the cap (Sabre).
    :param first_prev_rung: rung chunk 0's switch term compares with (Pensieve's
        ``DEFAULT_QUALITY`` = 1); -1 = no switch term for chunk 0.
    :param score_from: first chunk counted in the session totals (Pensieve's evaluation
        sums chunks 1..K-1: 1); per-chunk rewards are always reported.
    :param wait_after_last: also apply the buffer-cap wait after the last chunk (Pensieve's
        env sleeps then too; it changes the last reported buffer only).
    """

    buffer_cap_s: float = 60.0
    sleep_quantum_s: float = 0.5
    history: int = 8
    abandon_check_s: float = 0.05
    abandon_check_bytes: float = 0.0
    abandoned_in_sample: bool = True
    buffer_rule: Literal["after", "before"] = "after"
    first_prev_rung: int = -1
    score_from: int = 0
    wait_after_last: bool = False

    def __post_init__(self) -> None:
        if self.buffer_cap_s <= 0:
            raise ValueError(f"PlayerConfig.buffer_cap_s must be > 0, got {self.buffer_cap_s}")
        if self.sleep_quantum_s < 0:
            raise ValueError(f"PlayerConfig.sleep_quantum_s must be >= 0, got {self.sleep_quantum_s}")
        if self.history < 1:
            raise ValueError(f"PlayerConfig.history must be >= 1, got {self.history}")
        if self.abandon_check_s <= 0:
            raise ValueError(f"PlayerConfig.abandon_check_s must be > 0, got {self.abandon_check_s}")
        if self.buffer_rule not in ("after", "before"):
            raise ValueError(f"PlayerConfig.buffer_rule must be 'after' or 'before', got {self.buffer_rule!r}")
        if self.first_prev_rung < -1 or self.score_from < 0:
            raise ValueError("PlayerConfig.first_prev_rung must be >= -1 and score_from >= 0")


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Network plus player; ``peer`` names the simulator whose semantics the policies should
    follow (``sabre``: nominal bitrates, latency apart; see :class:`policies.base.PolicyContext`)."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    player: PlayerConfig = field(default_factory=PlayerConfig)
    peer: str = ""


_PENSIEVE_PLAYER = PlayerConfig(first_prev_rung=1, score_from=1, wait_after_last=True)

#: Simulator presets (``--sim``):
#:
#: * ``promptabr``: our default. Pensieve's network (0.95 payload, 80 ms RTT, U(0.9, 1.1)
#:   noise, 60 s cap, 0.5 s sleeps) with a start uniform over time, the trace looping over
#:   its own span, no switch term for chunk 0 and every chunk scored (see the README for why).
#: * ``pensieve``: Pensieve's training simulator (``sim/env.py``) exactly: start at a sample
#:   index drawn uniformly, wrap to time 0, chunk 0 compared with rung 1, totals over chunks
#:   1..K-1, sleep after the last chunk.
#: * ``pensieve-fixed``: Pensieve's test simulator (``fixed_env.py``): the same without noise
#:   and random start.
#: * ``latency``: per-request latency from the trace, no noise, whole payload, 25 s cap
#:   reached by an exact wait after each download (our Sabre-like client).
#: * ``sabre``: Sabre's player: as ``latency``, but the downloader waits before a request
#:   until buffer + chunk fits the 25 s cap.
SIM_PRESETS: dict[str, SimConfig] = {
    "promptabr": SimConfig(),
    "pensieve": SimConfig(NetworkConfig(start="sample", wrap="zero"), _PENSIEVE_PLAYER),
    "pensieve-fixed": SimConfig(
        NetworkConfig(noise_low=1.0, noise_high=1.0, random_start=False, wrap="zero"), _PENSIEVE_PLAYER
    ),
    "latency": SimConfig(
        NetworkConfig(mode="latency", payload_fraction=1.0, noise_low=1.0, noise_high=1.0, random_start=False),
        PlayerConfig(buffer_cap_s=25.0, sleep_quantum_s=0.0),
    ),
    "sabre": SimConfig(
        NetworkConfig(mode="latency", payload_fraction=1.0, noise_low=1.0, noise_high=1.0, random_start=False),
        PlayerConfig(
            buffer_cap_s=25.0, sleep_quantum_s=0.0, buffer_rule="before", abandon_check_bytes=1500.0,
            abandoned_in_sample=False,
        ),
        peer="sabre",
    ),
}
#: The preset ``sim.run``, the env and training use when none is named.
DEFAULT_SIM = "promptabr"


@dataclass(frozen=True, eq=False)
class StepInfo:
    """Per-chunk metrics of one step, arrays of shape ``(sessions,)``.

    ``abandoned`` counts the downloads of the chunk given up before the one that completed
    (``rung``, ``size_bytes``); ``wasted_bytes`` are the bytes those received. Both are zero
    unless the policy abandons (latency mode).
    """

    chunk: int
    rung: np.ndarray
    size_bytes: np.ndarray
    delay_s: np.ndarray
    throughput_mbps: np.ndarray
    decode_s: np.ndarray
    stall_s: np.ndarray
    wait_s: np.ndarray
    buffer_s: np.ndarray
    quality: np.ndarray
    lpips: np.ndarray
    severe_frac: np.ndarray
    reward: np.ndarray
    abandoned: np.ndarray
    wasted_bytes: np.ndarray


class BatchSimulator:
    """Steps many streaming sessions of the same ladder at once.

    :param traces: the traces sessions can run on.
    :param ladder: the ladder.
    :param device: the receiving device.
    :param qoe: the QoE that scores each chunk.
    :param config: network and player configuration.
    """

    def __init__(self, traces: list[Trace], ladder: Ladder, device: Device, qoe: QoE, config: SimConfig | None = None):
        self.config = config or SimConfig()
        net = self.config.network
        self.bank = TraceBank(
            traces, payload_fraction=net.payload_fraction, default_latency_s=net.rtt_s, wrap_to_zero=net.wrap == "zero"
        )
        self.ladder = ladder
        self.device = device
        self.qoe = qoe
        self.quality = qoe.chunk_quality(ladder)
        self.decoder = device.decoder(ladder)
        self.decode = self.decoder.nominal  # what policies are told (PolicyContext.decode_s)
        self.chunk_s = ladder.duration_s
        self.content_end_s = np.cumsum(ladder.duration_s)  # S_j
        self.context = PolicyContext(
            ladder, qoe, self.quality, self.decode, self.config.player.buffer_cap_s, peer=self.config.peer
        )
        self.n = 0
        self.k = 0

    @property
    def n_chunks(self) -> int:
        return self.ladder.n_chunks

    # ------------------------------------------------------------------ reset
    def reset(self, trace_index: np.ndarray, keys: np.ndarray) -> Observation:
        """Start one session per entry of ``trace_index`` with random keys ``keys`` (uint64)."""
        tix = np.asarray(trace_index, dtype=np.int64)
        if tix.ndim != 1 or tix.size == 0:
            raise ValueError("trace_index must be a non-empty 1-D array")
        if tix.min() < 0 or tix.max() >= len(self.bank):
            raise InputError(f"trace index out of range 0..{len(self.bank) - 1}")
        n = self.n = len(tix)
        h = self.config.player.history
        self.tix = tix
        self.keys = np.asarray(keys, dtype=np.uint64)
        net, bank = self.config.network, self.bank
        if net.random_start and net.start == "sample":
            nseg = bank.n_segments(tix)
            j = np.minimum(np.floor(uniform(self.keys, 0, _STREAM_START) * nseg).astype(np.int64), nseg - 1)
            self.pos = bank.segment_start(tix, j)
        elif net.random_start:
            self.pos = uniform(self.keys, 0, _STREAM_START) * bank.total_s[tix]
        else:
            self.pos = bank.origin_s[tix].copy()
        self.cum = self.bank.bytes_before(tix, self.pos)  # C(pos), kept beside pos
        if net.mode == "pensieve" and net.noise_high > net.noise_low:
            draws = uniform(self.keys[:, None], np.arange(self.n_chunks)[None, :], _STREAM_NOISE)
            self.noise = net.noise_low + (net.noise_high - net.noise_low) * draws
        else:
            self.noise = np.full((n, self.n_chunks), net.noise_low)
        self.played = np.zeros(n, dtype=np.int64)  # chunks whose playback started by the clock
        self.k = 0
        self.clock = np.zeros(n)
        self.dec_free = np.zeros(n)
        self.heat = np.zeros(n)  # NPU heat (sim.device)
        self.play_start = np.zeros((n, self.n_chunks))
        self.play_end = np.zeros(n)
        self.last_rung = np.full(n, -1, dtype=np.int64)
        r0 = self.config.player.first_prev_rung
        self.last_q = np.full(n, self.quality[0, r0] if 0 <= r0 < self.ladder.n_rungs else np.nan)
        self.thr_hist = np.full((n, h), np.nan)
        self.delay_hist = np.full((n, h), np.nan)
        self.dec_hist = np.full((n, h), np.nan)
        self.lat_hist = np.full((n, h), np.nan)
        self.stall_total = np.zeros(n)
        self._no_abandon, self._no_waste = np.zeros(n, dtype=np.int64), np.zeros(n)  # StepInfo without abandonment
        self._no_abandon.setflags(write=False)
        self._no_waste.setflags(write=False)
        return self._observe(np.zeros(n))

    # ------------------------------------------------------------------- step
    def step(
        self, rungs: np.ndarray, abandon: Callable[[DownloadProgress], np.ndarray] | None = None,
        abandon_rule: Callable[[DownloadProgress], np.ndarray] | None = None,
    ) -> tuple[Observation, StepInfo, bool]:  # fmt: skip
        """Download, decode and schedule chunk ``k`` at ``rungs``; return the next observation.

        ``abandon`` (a policy's :meth:`~policies.base.Policy.abandon`) is consulted during
        downloads in latency mode only; None keeps the plain path. ``abandon_rule`` (the
        policy's :meth:`~policies.base.Policy.abandon_rule`, if it has one) lets the simulator
        skip the checks at which nothing is abandoned; the results are the same without it.
        """
        k, n = self.k, self.n
        if k >= self.n_chunks:
            raise RuntimeError("step() after the last chunk; call reset()")
        r = np.asarray(rungs, dtype=np.int64).reshape(-1)
        if r.shape != (n,):
            raise ValueError(f"expected {n} rungs, got shape {np.shape(rungs)}")
        if r.min() < 0 or r.max() >= self.ladder.n_rungs:
            raise ValueError(f"rung out of range 0..{self.ladder.n_rungs - 1}: {r.min()}..{r.max()}")
        net, player, bank = self.config.network, self.config.player, self.bank
        size = self.ladder.size_bytes[k, r]

        # 2. network
        abandoned, wasted = self._no_abandon, self._no_waste
        if net.mode == "pensieve":
            dl, self.pos, self.cum = bank.transfer(self.tix, self.pos, self.cum, size)
            delay = (dl + net.rtt_s) * self.noise[:, k]
            lat = np.zeros(n)
        elif abandon is not None:
            delay, r, wasted, abandoned, lat, spent = self._download_abandoning(k, r, abandon, abandon_rule)
            size = self.ladder.size_bytes[k, r]
        else:
            lat = bank.request_latency(self.tix, self.pos)
            pos = bank.advance(self.tix, self.pos, lat)
            dl, self.pos, self.cum = bank.transfer(self.tix, pos, bank.bytes_before(self.tix, pos), size)
            delay = lat + dl
        arrive = self.clock + delay

        # 3. decoder
        start = np.maximum(arrive, self.dec_free)
        dec, self.heat = self.decoder.chunk_s(self.keys, k, r, start - self.dec_free, self.heat)
        decoded = start + dec
        self.dec_free = decoded

        # 4. player
        if k == 0:
            play = decoded
            stall = decoded
        else:
            play = np.maximum(decoded, self.play_end)
            stall = play - self.play_end
            self.stall_total = self.stall_total + stall
        self.play_start[:, k] = play
        self.play_end = play + self.chunk_s[k]

        # 6. QoE
        q = self.quality[k, r]
        reward = self.qoe.reward(q, stall, self.last_q)

        # 5. buffer cap: wait until the unplayed video fits under the cap
        wait = np.zeros(n)
        last = k + 1 >= self.n_chunks
        if player.buffer_rule == "before" and not last:
            # a next chunk as long as the cap fits only into an empty buffer: at most all of it plays
            target = min(self.content_end_s[k] + self.chunk_s[k + 1] - player.buffer_cap_s, self.content_end_s[k])
        elif not last or player.wait_after_last:
            target = self.content_end_s[k] - player.buffer_cap_s  # content that must have played
        else:
            target = 0.0
        if target > 0:
            j = min(int(np.searchsorted(self.content_end_s, target, side="right")), k)  # chunk k+1 is not scheduled
            before = self.content_end_s[j - 1] if j > 0 else 0.0
            when = self.play_start[:, j] + (target - before)
            wait = np.maximum(when - arrive, 0.0)
            if player.sleep_quantum_s > 0:
                wait = np.ceil(wait / player.sleep_quantum_s - 1e-9) * player.sleep_quantum_s
            moved = wait > 0
            if moved.any():  # pos + 0 is pos; C(pos) is recomputed only where the session waited
                self.pos = bank.advance(self.tix, self.pos, wait)
                self.cum = np.where(moved, bank.bytes_before(self.tix, self.pos), self.cum)
        self.clock = arrive + wait

        if abandon is None:
            seen_delay = delay
            thr = size * 8.0 / delay / 1e6
        elif player.abandoned_in_sample:
            seen_delay = delay
            thr = (size + wasted) * 8.0 / delay / 1e6
        else:
            seen_delay = delay - spent
            thr = size * 8.0 / seen_delay / 1e6
        # fresh arrays, so an observation a policy keeps never changes under it
        self.thr_hist = np.concatenate([self.thr_hist[:, 1:], thr[:, None]], axis=1)
        self.delay_hist = np.concatenate([self.delay_hist[:, 1:], seen_delay[:, None]], axis=1)
        self.lat_hist = np.concatenate([self.lat_hist[:, 1:], lat[:, None]], axis=1)
        self.dec_hist = np.concatenate([self.dec_hist[:, 1:], dec[:, None]], axis=1)
        self.last_rung = r
        self.last_q = q
        self.k = k + 1
        buffer = self._buffer(self.clock)
        info = StepInfo(
            chunk=k,
            rung=r,
            size_bytes=size,
            delay_s=delay,
            throughput_mbps=thr,
            decode_s=dec,
            stall_s=stall,
            wait_s=wait,
            buffer_s=buffer,
            quality=q,
            lpips=self.ladder.lpips_mean[k, r],
            severe_frac=self.ladder.severe_frac[k, r],
            reward=reward,
            abandoned=abandoned,
            wasted_bytes=wasted,
        )
        return self._observe(buffer), info, self.k == self.n_chunks

    def _download_abandoning(
        self, k: int, r: np.ndarray, abandon: Callable[[DownloadProgress], np.ndarray],
        rule: Callable[[DownloadProgress], np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """Latency-mode download of chunk k that the policy may abandon (see the module docstring).

        Returns (delay, final rung, wasted bytes, abandon count, latency of the kept request,
        time of the abandoned attempts) and advances the trace position. A session never
        abandoned gets exactly the plain path's numbers. Without ``rule``, ``abandon`` is called
        at every check. With ``rule`` (the policy's side-effect-free
        :meth:`~policies.base.Policy.abandon_rule`), each round first moves every download's
        next check to the first one at which the rule gives it up (:meth:`_skip_checks`; a
        download at rung 0 has none), so ``abandon`` is called once per abandonment instead of
        once per check; the results are those of checking every time.
        """
        bank, tix, dt = self.bank, self.tix, self.config.player.abandon_check_s
        sizes = self.ladder.size_bytes[k]
        r = r.copy()
        spent = np.zeros(self.n)  # time of abandoned attempts
        wasted = np.zeros(self.n)
        count = np.zeros(self.n, dtype=np.int64)
        lat = bank.request_latency(tix, self.pos)
        start = bank.advance(tix, self.pos, lat)  # where the transfer begins
        c0 = bank.bytes_before(tix, start)
        dl, end_pos, end_cum = bank.transfer(tix, start, c0, sizes[r])
        min_bytes = self.config.player.abandon_check_bytes
        m = np.ones(self.n)  # the next check is m * dt into the transfer (plain schedule)

        def first_check(lat, start, c0):  # transfer time of a request's first check
            if min_bytes <= 0:
                return np.full(self.n, dt)
            return np.maximum(dt - lat, bank.transfer(tix, start, c0, np.full(self.n, min_bytes))[0])

        x = first_check(lat, start, c0)
        seen = self.clock.copy()  # per-session time of the last buffer query (never decreases)
        active = dl > x
        while active.any():
            if rule is not None:
                x, m, active = self._skip_checks(k, r, rule, active, x, m, lat, start, c0, dl, spent)
                if not active.any():
                    break
            got, local = self._received(tix, start, c0, x)
            seen = np.where(active, self.clock + spent + lat + x, seen)
            progress = DownloadProgress(
                chunk=k, active=active, rung=r, size_bytes=sizes[r], downloaded_bytes=np.where(active, got, 0.0),
                elapsed_s=lat + x, latency_s=lat, buffer_s=self._buffer(seen) if k > 0 else np.zeros(self.n),
            )  # fmt: skip
            to = np.asarray(abandon(progress), dtype=np.int64).reshape(-1)
            give_up = active & (to >= 0) & (to < r)
            if give_up.any():
                spent = np.where(give_up, spent + lat + x, spent)
                wasted = np.where(give_up, wasted + got, wasted)
                count += give_up
                r = np.where(give_up, to, r)
                req = bank.advance(tix, local, 0.0)  # the new request leaves where the old transfer stopped
                new_lat = bank.request_latency(tix, req)
                new_start = bank.advance(tix, req, new_lat)
                new_c0 = bank.bytes_before(tix, new_start)
                new_dl, new_end, new_cum = bank.transfer(tix, new_start, new_c0, sizes[r])
                lat = np.where(give_up, new_lat, lat)
                start = np.where(give_up, new_start, start)
                c0 = np.where(give_up, new_c0, c0)
                dl = np.where(give_up, new_dl, dl)
                end_pos = np.where(give_up, new_end, end_pos)
                end_cum = np.where(give_up, new_cum, end_cum)
                m = np.where(give_up, 1.0, m + 1.0)
            else:
                m = m + 1.0
            if min_bytes <= 0:
                x = m * dt
            else:
                later = self._next_check(tix, start, c0, x, got)
                x = np.where(give_up, first_check(lat, start, c0), later) if give_up.any() else later
            active &= dl > x
        self.pos, self.cum = end_pos, end_cum
        delay = np.where(count > 0, spent + lat + dl, lat + dl)
        return delay, r, wasted, count, lat, spent

    def _received(
        self, tix: np.ndarray, start: np.ndarray, c0: np.ndarray, x: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Bytes a transfer that began at ``start`` (where C = ``c0``) has received ``x`` seconds
        in, and the position it has reached (elementwise, any shape)."""
        bank = self.bank
        ahead = start + x
        loops = np.floor(ahead / bank.total_s[tix])
        local = ahead - loops * bank.total_s[tix]
        return bank.bytes_before(tix, local) + loops * bank.total_bytes[tix] - c0, local

    def _next_check(
        self, tix: np.ndarray, start: np.ndarray, c0: np.ndarray, x: np.ndarray, got: np.ndarray
    ) -> np.ndarray:
        """Sabre's schedule: the check after the one at ``x`` (``got`` bytes in) comes at least
        ``abandon_check_s`` and ``abandon_check_bytes`` later."""
        player = self.config.player
        return np.maximum(
            x + player.abandon_check_s, self.bank.transfer(tix, start, c0, got + player.abandon_check_bytes)[0]
        )

    def _skip_checks(
        self, k: int, r: np.ndarray, rule: Callable[[DownloadProgress], np.ndarray], active: np.ndarray,
        x: np.ndarray, m: np.ndarray, lat: np.ndarray, start: np.ndarray, c0: np.ndarray, dl: np.ndarray,
        spent: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """Move each active download's next check (``x``, and ``m`` of the plain schedule) to the
        first one, from ``x`` on, at which ``rule`` gives it up; a download the rule never gives
        up before it ends becomes inactive.

        The checks are taken in blocks that double in length (one ``rule`` call per block over all
        downloads still searching), computed with the same arithmetic as a check-by-check loop,
        so the checks found and their numbers are the ones that loop would reach.
        """
        player, sizes = self.config.player, self.ladder.size_bytes[k]
        x, m = x.copy(), m.copy()
        active = active & (r > 0)  # nothing below rung 0 to give a download up for
        rows = np.flatnonzero(active)
        cx, cm = x[rows], m[rows]  # the next check of each download still searching
        width = 8
        while len(rows):
            tix = self.tix[rows][:, None]
            if player.abandon_check_bytes <= 0:
                ms = cm[:, None] + np.arange(width)[None, :]
                xs = ms * player.abandon_check_s
                got = self._received(tix, start[rows][:, None], c0[rows][:, None], xs)[0]
            else:  # each check depends on the bytes at the one before
                ms = np.broadcast_to(cm[:, None], (len(rows), width))
                xs, got = np.empty((len(rows), width)), np.empty((len(rows), width))
                at, end = cx, dl[rows]
                for j in range(width):
                    xs[:, j] = at
                    got[:, j] = self._received(tix[:, 0], start[rows], c0[rows], at)[0]
                    at = self._next_check(tix[:, 0], start[rows], c0[rows], at, got[:, j])
                    if (at >= end).all():  # every download ends before its next check
                        xs[:, j + 1 :], got[:, j + 1 :] = np.inf, 0.0
                        break
            valid = xs < dl[rows][:, None]  # checks before the download ends (a prefix of each row)
            i, j = np.nonzero(valid)
            s = rows[i]
            seen = self.clock[s] + spent[s] + lat[s] + xs[i, j]
            progress = DownloadProgress(
                chunk=k, active=np.ones(len(s), dtype=bool), rung=r[s], size_bytes=sizes[r[s]],
                downloaded_bytes=got[i, j], elapsed_s=lat[s] + xs[i, j], latency_s=lat[s],
                buffer_s=self._buffer_at(s, seen)[0] if k > 0 else np.zeros(len(s)), session=s,
            )  # fmt: skip
            fire = np.zeros(valid.shape, dtype=bool)
            if len(s):
                to = np.asarray(rule(progress), dtype=np.int64).reshape(-1)
                fire[i, j] = (to >= 0) & (to < r[s])
            found = fire.any(axis=1)
            first = np.argmax(fire, axis=1)
            x[rows[found]] = xs[found, first[found]]
            m[rows[found]] = ms[found, first[found]]
            ended = ~found & ~valid[:, -1]
            active[rows[ended]] = False
            more = ~found & valid[:, -1]
            if player.abandon_check_bytes <= 0:
                cm = ms[more, -1] + 1.0
            else:
                cx = self._next_check(tix[more, 0], start[rows[more]], c0[rows[more]], xs[more, -1], got[more, -1])
                cm = cm[more]
            rows = rows[more]
            width = min(2 * width, max(8, (1 << 18) // max(len(rows), 1)))
        return x, m, active

    # -------------------------------------------------------------- internals
    def _buffer(self, t: np.ndarray) -> np.ndarray:
        """Downloaded but unplayed video at time ``t`` (chunks 0..k-1 downloaded, ``t`` non-decreasing)."""
        buffer, self.played = self._buffer_at(np.arange(self.n), t)
        return buffer

    def _buffer_at(self, rows: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Buffer of session ``rows[i]`` at time ``t[i]`` (no earlier than that session's last
        :meth:`_buffer` query), and the count of its chunks whose playback has started by then."""
        k = self.k
        started = self.played[rows]
        # advance the count of chunks whose playback has started by t (times only grow)
        while True:
            nxt = self.play_start[rows, np.minimum(started, k - 1)]
            move = (started < k) & (nxt <= t)
            if not move.any():
                break
            started = started + move
        j = np.maximum(started - 1, 0)  # chunk being played (or the last one started)
        before = self.content_end_s[j] - self.chunk_s[j]
        into = np.clip(t - self.play_start[rows, j], 0.0, self.chunk_s[j])
        played = np.where(started > 0, before + into, 0.0)
        return self.content_end_s[k - 1] - played, started

    def _observe(self, buffer: np.ndarray) -> Observation:
        return Observation(
            chunk=self.k,
            buffer_s=buffer,
            last_rung=self.last_rung,
            throughput_mbps=self.thr_hist,
            delay_s=self.delay_hist,
            decode_backlog_s=np.maximum(self.dec_free - self.clock, 0.0),
            clock_s=self.clock,
            stall_s=self.stall_total,
            play_end_s=self.play_end,
            decode_s=self.dec_hist,
            latency_s=self.lat_hist,
        )
