"""BOLA (Spiteri, Urgaonkar, Sitaraman, INFOCOM 2016) and BOLA-E (Spiteri, Sitaraman,
Sparacio, MMSys 2018), on perceptual utilities (:func:`policies.rules.utilities`).

BOLA picks ``argmax_m (V (v_m + gamma p) - B) / S_m``. The variants follow Sabre:

* ``basic``: that rule alone, with ``V = (Q_max - p) / (v_max + gamma p)``;
* ``o`` / ``u`` (BOLA-O / BOLA-U): the buffer target shrinks near the start and the end of
  the video (``Q = min(Q_max, max(min(k, K - k) / 2, 3) p)``); an up-switch is limited by
  the rung the throughput estimate sustains, ``m_t``: to ``max(m_prev, m_t)`` for BOLA-O and
  to ``m_t + 1`` for BOLA-U (unless m_prev is already higher); downloads may be abandoned
  when a lower rung scores better on what is left (latency mode only).

BOLA-O's pause (waiting instead of downloading when the buffer is high) is not modelled: the
simulator has no policy-requested wait, only the buffer-cap wait.

``decode_aware`` (any variant): the first chunk is planned for its start-up as decode-aware
MPC plans it (one chunk ahead, prior throughput ``startup_mbps``, decode time included), and
a later choice whose decode time, as this session's past chunks predict it
(:class:`policies.decode.DecodeEstimate`), exceeds the chunk's play time steps down to the
best rung that fits (:func:`policies.decode.faster_rung`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.base import DownloadProgress, Observation, Policy, PolicyContext
from policies.decode import DecodeEstimate, faster_rung
from policies.estimators import Ewma
from policies.mpc import plan
from policies.rate import IBR_SAFETY_INIT, IBR_SAFETY_MIN, insufficient_buffer_cap
from policies.rules import (
    PEER_OPTIONS,
    follows_sabre,
    nominal_rung,
    nominal_sizes,
    realtime_rungs,
    throughput_rung,
    utilities,
)  # fmt: skip

__all__ = ["BOLA", "BOLAE", "bola_choice"]

_VARIANTS = ("basic", "o", "u")


def bola_choice(v: np.ndarray, size: np.ndarray, allowed: np.ndarray, V: float, gp: float, level: np.ndarray,
                raw: bool = False):  # fmt: skip
    """``argmax_m (V (v_m + gp) - level) / S_m`` over allowed rungs, per session.

    Above ``V (v_max + gp)`` every score is negative: BOLA would pause until the best rung's
    score reaches zero and then fetch it, so the best-utility rung (cheapest on ties) is taken
    (the simulator has no policy pause; the argmax would pick the largest chunk instead).
    ``raw`` keeps the plain argmax there, as Sabre's BOLA-U and BOLA-E do.
    """
    score = np.where(allowed[None, :], (V * (v[None, :] + gp) - level[:, None]) / size[None, :], -np.inf)
    if raw:
        return np.argmax(score, axis=1)
    top = int(np.argmax(np.where(allowed, v - size * 1e-15, -np.inf)))
    return np.where(score.max(axis=1) < 0, top, np.argmax(score, axis=1))


def _sabre_view(ctx: PolicyContext, k: int, offset: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sabre's BOLA inputs for chunk k: utilities ``offset + ln(R_m / R_0)`` of the nominal
    bitrates, nominal sizes, every rung allowed."""
    kbps = ctx.ladder.kbps
    return offset + np.log(kbps / kbps[0]), nominal_sizes(ctx, k), np.ones(len(kbps), dtype=bool)


def _limit_upswitch(m, m_t, last, allowed, plus_one: bool, always_plus: bool = False):
    """Sabre's up-switch limit: a switch up beyond the throughput rung m_t goes to
    max(last, m_t), plus one rung for the U variants (BOLA-U: only when last <= m_t;
    BOLA-E: always)."""
    cond = (m > last) & (m > m_t)
    base = np.maximum(last, m_t)
    if plus_one:
        nxt = np.minimum(base + 1, len(allowed) - 1)
        step = allowed[nxt] if always_plus else allowed[nxt] & (last <= m_t)
        base = np.where(step, nxt, base)
    return np.where(cond, base, m)


class BOLA(Policy):
    """BOLA-BASIC, BOLA-O or BOLA-U (``variant``); see the module docstring.

    The up-switch limit compares with BOLA's own last choice (as Sabre's BOLA does; inside
    :class:`policies.dynamic.Dynamic` that differs from the fetched rung). With Sabre's
    semantics (``peer``), utilities and sizes come from nominal bitrates, the throughput rung
    keeps latency apart, the first chunk is rung 0 and the default variant is BOLA-U.
    """

    name = "bola"

    @dataclass(frozen=True, slots=True)
    class Params:
        """:param gamma: gamma * p, the rebuffer-aversion term in seconds (BOLA's default 5).
        :param qmax: buffer target Q_max in seconds (BOLA's default 25).
        :param variant: ``basic``, ``o`` (BOLA-O), ``u`` (BOLA-U) or ``auto`` (BOLA-U, Sabre's
            default, under Sabre's semantics; ``basic`` otherwise).
        :param half_life_fast_s: short EWMA half-life of the throughput estimate (o/u).
        :param half_life_slow_s: long EWMA half-life (o/u).
        :param abandon: abandon downloads (o/u, latency mode only).
        :param decode_aware: plan the start-up and avoid rungs predicted to decode slower than
            real time (see the module docstring).
        :param startup_mbps: prior throughput of the start-up plan (decode-aware only).
        :param peer: ``auto`` (follow the simulator preset), ``sabre`` or ``none``."""

        gamma: float = 5.0
        qmax: float = 25.0
        variant: str = "auto"
        half_life_fast_s: float = 3.0
        half_life_slow_s: float = 8.0
        abandon: bool = True
        decode_aware: bool = False
        startup_mbps: float = 0.4
        peer: str = "auto"

        def __post_init__(self) -> None:
            if self.gamma <= 0 or self.qmax <= 0:
                raise ValueError("gamma and qmax must be > 0")
            if self.variant not in (*_VARIANTS, "auto"):
                raise ValueError(f"variant must be one of {', '.join(_VARIANTS)} or auto, got {self.variant!r}")
            if not (np.isfinite(self.startup_mbps) and self.startup_mbps > 0):
                raise ValueError(f"startup_mbps must be > 0, got {self.startup_mbps}")
            if self.peer not in PEER_OPTIONS:
                raise ValueError(f"peer must be one of {', '.join(PEER_OPTIONS)}, got {self.peer!r}")

    def reset(self, ctx: PolicyContext, n_sessions: int) -> None:
        super().reset(ctx, n_sessions)
        p = self.params
        self.sabre = follows_sabre(p.peer, ctx)
        self.variant = p.variant if p.variant != "auto" else ("u" if self.sabre else "basic")
        self.ewma = Ewma((p.half_life_fast_s, p.half_life_slow_s), self.sabre, float(ctx.ladder.duration_s[0]))
        self.ewma.reset(n_sessions)
        self.last = np.zeros(n_sessions, dtype=np.int64)  # BOLA's own last choice
        self._plan: tuple[np.ndarray, float] | None = None
        self.decode_est = DecodeEstimate()
        self.decode_est.reset(ctx, n_sessions)

    def act(self, obs: Observation) -> np.ndarray:
        ctx, k, p = self.ctx, obs.chunk, self.params
        if self.sabre:
            v, size, allowed = _sabre_view(ctx, k, 0.0)
        else:
            q, size, allowed = ctx.quality[k], ctx.ladder.size_bytes[k], realtime_rungs(ctx, k)
            v = utilities(q, size, allowed)
        chunk_s = ctx.ladder.duration_s[k]
        qmax = p.qmax
        if self.variant != "basic":
            left = min(k, ctx.ladder.n_chunks - k)
            qmax = min(qmax, max(left / 2.0, 3.0) * chunk_s)
        V = max(qmax - chunk_s, 1e-6) / (v[allowed].max() + p.gamma)
        self._plan = (v, V)
        est = self.ewma.update(obs) if self.variant != "basic" else None
        if self.sabre and k == 0:  # Sabre fetches the first segment at rung 0, outside the rule
            return np.zeros(obs.n_sessions, dtype=np.int64)
        m = bola_choice(v, size, allowed, V, p.gamma, obs.buffer_s, raw=self.sabre)
        if self.variant != "basic":
            if self.sabre:
                m_t = nominal_rung(ctx, k, est, self.ewma.latency_s)
            else:
                m_t = throughput_rung(ctx, k, est)
            m = _limit_upswitch(m, m_t, self.last, allowed, plus_one=self.variant == "u")
        self.last = m.astype(np.int64)  # BOLA's own choice, before any decode-aware change
        if p.decode_aware:
            return self._decode_aware(obs, self.last).astype(np.int64)
        return self.last

    def _decode_aware(self, obs: Observation, m: np.ndarray) -> np.ndarray:
        ctx, k = self.ctx, obs.chunk
        self.decode_est.update(obs)
        pred = self.decode_est.predict(k, k + 1)
        if k > 0:
            return faster_rung(m, pred[:, 0], ctx.ladder.duration_s[k], ctx.quality[k], ctx.ladder.size_bytes[k])
        n = obs.n_sessions
        first, _ = plan(
            np.full(n, self.params.startup_mbps * 1e6 / 8.0), np.zeros(n), np.zeros(n), np.full(n, np.nan),
            ctx.ladder.size_bytes[:1], ctx.quality[:1], pred, ctx.ladder.duration_s[:1], ctx.buffer_cap_s, ctx.qoe,
        )  # fmt: skip
        return first

    @property
    def can_abandon(self) -> bool:
        return self.params.abandon and getattr(self, "variant", self.params.variant) not in ("basic", "auto")

    def abandon(self, progress: DownloadProgress) -> np.ndarray:
        """Sabre's rule (:meth:`abandon_rule`); the rung abandoned to becomes BOLA's last choice."""
        to = self.abandon_rule(progress)
        self.last = np.where(to >= 0, to, self.last)
        return to

    def abandon_rule(self, progress: DownloadProgress) -> np.ndarray:
        """Abandon for the lower rung with the best BOLA score on the bytes left (Sabre's rule)."""
        k, p = progress.chunk, self.params
        v, V = self._plan
        size, allowed = _abandon_sizes(self, progress)
        remain = progress.size_bytes - progress.downloaded_bytes
        with np.errstate(divide="ignore", invalid="ignore"):
            score = (V * (p.gamma + v[progress.rung]) - progress.buffer_s) / remain
        ok = progress.active & (progress.downloaded_bytes > 0) & (remain > 0) & (score >= 0) & (k > 0 or not self.sabre)
        return _best_lower(v, size, allowed, V, p.gamma, progress.buffer_s, progress.rung, remain, score, ok)


def _abandon_sizes(policy, progress: DownloadProgress) -> tuple[np.ndarray, np.ndarray]:
    """Sizes of the alternatives to a download in flight, and the allowed rungs: the real
    sizes, or under Sabre's semantics the current size scaled by nominal bitrates (per session)."""
    ctx, k = policy.ctx, progress.chunk
    if not policy.sabre:
        return ctx.ladder.size_bytes[k], realtime_rungs(ctx, k)
    kbps = ctx.ladder.kbps
    return progress.size_bytes[:, None] * kbps[None, :] / kbps[progress.rung][:, None], np.ones(len(kbps), bool)


def _best_lower(v, size, allowed, V, gp, level, rung, remain, score, ok):
    """The lower allowed rung whose whole chunk is smaller than ``remain`` and scores best, if it beats ``score``.

    ``size`` is per rung, or per session and rung."""
    size = size if size.ndim == 2 else size[None, :]
    other = (V * (gp + v[None, :]) - level[:, None]) / size
    lower = allowed[None, :] & (np.arange(size.shape[1])[None, :] < rung[:, None]) & (size < remain[:, None])
    other = np.where(lower, other, -np.inf)
    best = np.argmax(other, axis=1)
    better = other[np.arange(len(best)), best] > score
    return np.where(ok & better, best, -1).astype(np.int64)


class BOLAE(Policy):
    """BOLA-E as in Sabre and dash.js: BOLA-O/U plus a placeholder buffer, the
    insufficient-buffer rule and abandonment.

    * Utilities ``v_m = 1 + (perceptual utility)``; the buffer target is
      ``max(min_buffer + per_level x rungs, buffer cap)`` (0 = the player's cap), and
      ``gamma p = (v_max - 1) / (target / min_buffer - 1)``, ``V = min_buffer / gamma p``.
    * Startup: the first chunk is the lowest rung; the second goes to the throughput rung,
      with a placeholder (virtual buffer) just large enough for BOLA to choose that rung.
    * Steady state: BOLA on buffer + placeholder with the up-switch limit of BOLA-O/U; the
      placeholder grows by the time the downloader waits on the buffer cap, shrinks when the
      effective buffer exceeds the level at which the chosen rung stays optimal, and is
      clamped after each download (Sabre's ``report_download``).
    * Insufficient-buffer rule: as :class:`policies.rate.Throughput`.
    * Abandonment (latency mode): estimate the buffer and bytes left after a new request's
      latency; abandon for a lower rung whose full chunk is smaller and scores better.
    """

    name = "bola-e"

    @dataclass(frozen=True, slots=True)
    class Params:
        """:param min_buffer_s: BOLA-E's minimum buffer (10 s).
        :param per_level_s: extra buffer per rung (2 s).
        :param target_s: buffer target; 0 takes the player's buffer cap.
        :param variant: ``u`` (BOLA-U up-switch limit, Sabre's default) or ``o``.
        :param ibr: apply the insufficient-buffer rule.
        :param abandon: abandon downloads (latency mode only).
        :param half_life_fast_s: short EWMA half-life.
        :param half_life_slow_s: long EWMA half-life.
        :param peer: ``auto`` (follow the simulator preset), ``sabre`` (nominal bitrates, latency
            apart, insufficient-buffer rule on B - latency) or ``none``."""

        min_buffer_s: float = 10.0
        per_level_s: float = 2.0
        target_s: float = 0.0
        variant: str = "u"
        ibr: bool = True
        abandon: bool = True
        half_life_fast_s: float = 3.0
        half_life_slow_s: float = 8.0
        peer: str = "auto"

        def __post_init__(self) -> None:
            if self.peer not in PEER_OPTIONS:
                raise ValueError(f"peer must be one of {', '.join(PEER_OPTIONS)}, got {self.peer!r}")
            if self.min_buffer_s <= 0 or self.per_level_s < 0 or self.target_s < 0:
                raise ValueError("min_buffer_s must be > 0, per_level_s and target_s >= 0")
            if self.variant not in ("o", "u"):
                raise ValueError(f"variant must be 'o' or 'u', got {self.variant!r}")

    def reset(self, ctx: PolicyContext, n_sessions: int) -> None:
        super().reset(ctx, n_sessions)
        p = self.params
        self.sabre = follows_sabre(p.peer, ctx)
        self.ewma = Ewma((p.half_life_fast_s, p.half_life_slow_s), self.sabre, float(ctx.ladder.duration_s[0]))
        self.ewma.reset(n_sessions)
        self.placeholder = np.zeros(n_sessions)
        self.steady = np.zeros(n_sessions, dtype=bool)
        self.ibr_safety = np.full(n_sessions, IBR_SAFETY_INIT)
        self.abandoned_to = np.full(n_sessions, -1, dtype=np.int64)
        self.prev_clock = np.zeros(n_sessions)
        self.abandoned_s = np.zeros(n_sessions)
        self._levels: dict[int, tuple] = {}

    # ------------------------------------------------------------ per chunk
    def _chunk(self, k: int) -> tuple:
        """(v, gp, V, min level, max level, allowed) of chunk k: the buffer levels between
        which BOLA prefers each rung."""
        if k in self._levels:
            return self._levels[k]
        ctx, p = self.ctx, self.params
        if self.sabre:
            v, size, allowed = _sabre_view(ctx, k, 1.0)
        else:
            size, allowed = ctx.ladder.size_bytes[k], realtime_rungs(ctx, k)
            v = utilities(ctx.quality[k], size, allowed, offset=1.0)
        target = p.target_s or ctx.buffer_cap_s
        target = max(p.min_buffer_s + p.per_level_s * int(allowed.sum()), target)
        gp = max(float(v[allowed].max()) - 1.0, 1e-9) / max(target / p.min_buffer_s - 1.0, 1e-6)
        V = p.min_buffer_s / gp
        max_level = V * (v + gp)
        min_level = np.zeros(len(v))
        for m in range(len(v)):
            for j in range(m):
                if allowed[j] and v[j] < v[m] and size[m] != size[j]:
                    cross = V * (gp + (size[m] * v[j] - size[j] * v[m]) / (size[m] - size[j]))
                    min_level[m] = max(min_level[m], cross)
        out = (v, gp, V, min_level, max_level, allowed)
        if len(self._levels) > 4:
            self._levels.clear()
        self._levels[k] = out
        return out

    def act(self, obs: Observation) -> np.ndarray:
        ctx, k, p = self.ctx, obs.chunk, self.params
        est = self.ewma.update(obs)
        B = obs.buffer_s
        if k > 0:
            self._after_download(obs, k - 1)
        v, gp, V, min_level, max_level, allowed = self._chunk(k)
        size = nominal_sizes(ctx, k) if self.sabre else ctx.ladder.size_bytes[k]
        last = np.maximum(obs.last_rung, 0)
        if self.sabre:
            lat = self.ewma.latency_s
            m_t, level = nominal_rung(ctx, k, est, lat), B - lat
        else:
            m_t, level = throughput_rung(ctx, k, est), B
        steady = self.steady
        start = ~steady & np.isfinite(est)  # first decision with an estimate
        ph = self.placeholder

        m = bola_choice(v, size, allowed, V, gp, B + ph, raw=self.sabre)
        m = _limit_upswitch(m, m_t, last, allowed, plus_one=p.variant == "u", always_plus=True)
        excess = B + ph - max_level[m]
        ph_steady = np.where(excess > 0, ph - np.minimum(excess, ph), ph)
        if p.ibr:
            safe = self.ibr_safety * level * est * 1e6 / 8.0
            self.ibr_safety = np.where(
                steady, np.maximum(self.ibr_safety * IBR_SAFETY_INIT, IBR_SAFETY_MIN), self.ibr_safety
            )
            capped = insufficient_buffer_cap(size, m, np.where(steady, safe, np.nan))
            ph_steady = np.where(capped < m, np.minimum(ph_steady, np.maximum(min_level[capped] - B, 0.0)), ph_steady)
            m = capped
        out = np.where(steady, m, np.where(start, m_t, last))
        ph_start = np.maximum(min_level[m_t] - B, 0.0)
        self.placeholder = np.where(steady, ph_steady, np.where(start, ph_start, ph))
        self.steady = steady | start
        self.abandoned_to = np.full(len(out), -1, dtype=np.int64)
        self.abandoned_s = np.zeros(len(out))
        self.prev_clock = obs.clock_s
        return out.astype(np.int64)

    def _after_download(self, obs: Observation, j: int) -> None:
        """Clamp the placeholder after chunk j's download; add the buffer-cap wait to it (an
        abandonment has already lowered it, in :meth:`abandon`)."""
        v, gp, V, min_level, max_level, allowed = self._chunk(j)
        delay = obs.delay_s[:, -1]  # the kept request's when the observation leaves abandoned attempts out
        wait = np.maximum(obs.clock_s - self.prev_clock - delay - self.abandoned_s, 0.0)
        level = obs.buffer_s + wait  # buffer when the chunk arrived
        ph = self.placeholder
        level_was = level + delay
        r = obs.last_rung
        ph = np.minimum(ph, np.maximum(max_level[r] - level_was, 0.0))
        ph = np.where(level > 0, np.maximum(ph, min_level[r] - level_was), ph)
        self.placeholder = ph + wait

    # ----------------------------------------------------------- abandoning
    @property
    def can_abandon(self) -> bool:
        return self.params.abandon

    def abandon(self, progress: DownloadProgress) -> np.ndarray:
        """Sabre's BOLA-E rule (:meth:`abandon_rule`), and what an abandonment does to the placeholder."""
        to = self.abandon_rule(progress)
        self.abandoned_to = np.where(to >= 0, to, self.abandoned_to)
        # Sabre's report_download of an abandoned attempt: lower the placeholder to a conservative
        # level, judged on the buffer at the abandonment
        min_level = self._chunk(progress.chunk)[3]
        want = np.where(to > 0, min_level[np.maximum(to, 0)], self.params.min_buffer_s)
        lowered = np.minimum(self.placeholder, np.maximum(want - progress.buffer_s, 0.0))
        self.placeholder = np.where(to >= 0, lowered, self.placeholder)
        if self.sabre:  # Sabre's observation leaves abandoned attempts out of the delay: remember their time
            self.abandoned_s = np.where(to >= 0, self.abandoned_s + progress.elapsed_s, self.abandoned_s)
        return to

    def abandon_rule(self, progress: DownloadProgress) -> np.ndarray:
        """Project buffer and bytes left past a new request's latency; abandon for a lower rung
        whose whole chunk is smaller and scores better."""
        v, gp, V, _, _, allowed = self._chunk(progress.chunk)
        size, _ = _abandon_sizes(self, progress)
        ttfb = progress.latency_s
        dl_s = progress.elapsed_s - ttfb
        level = np.maximum(progress.buffer_s + progress.per_entry(self.placeholder) - ttfb, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(dl_s > 0, progress.downloaded_bytes / dl_s, 0.0)
            left = progress.size_bytes - progress.downloaded_bytes - ttfb * rate
            score = (V * (gp + v[progress.rung]) - level) / left
        ok = progress.active & (progress.downloaded_bytes > 0) & (dl_s > 0) & (left > 0)
        ok &= progress.chunk > 0 or not self.sabre  # Sabre never checks the first segment
        return _best_lower(v, size, allowed, V, gp, level, progress.rung, left, score, ok)
