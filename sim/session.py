"""Run whole sessions: a policy against traces, on a ladder and a device, scored by a QoE."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from abr.ladder import Ladder
from abr.qoe import QoE
from policies.base import Policy
from sim.core import BatchSimulator, SimConfig, StepInfo
from sim.device import DeviceProfile
from sim.rng import session_keys
from traces.trace import Trace

__all__ = ["SessionResults", "SUMMARY_COLUMNS", "aggregate", "run_sessions"]

_CHUNK_FIELDS = (
    "rung", "size_bytes", "delay_s", "throughput_mbps", "decode_s", "stall_s",
    "wait_s", "buffer_s", "quality", "lpips", "severe_frac", "reward", "abandoned", "wasted_bytes",
)  # fmt: skip

#: Per-session summary columns and their meaning.
SUMMARY_COLUMNS = {
    "qoe_mean": "mean per-chunk QoE (chunks from the preset's score_from: 1 under Pensieve's presets)",
    "qoe_total": "sum of per-chunk QoE (same chunks)",
    "lpips_mean": "play-time weighted mean LPIPS",
    "stall_ratio": "stall time / (stall time + video time), startup excluded",
    "stall_s": "total stall time, seconds (startup excluded)",
    "stall_count": "number of chunks that stalled (startup excluded)",
    "startup_s": "startup delay, seconds",
    "switches": "number of rung changes",
    "kbps": "mean bitrate on the wire, kbit/s",
    "severe_frac": "fraction of frames with LPIPS above the ladder's severe threshold",
    "decode_ms_per_frame": "mean decode time per frame on the device, ms",
}


@dataclass(frozen=True, eq=False)
class SessionResults:
    """Per-chunk arrays of shape ``(chunks, sessions)`` plus the run's identity."""

    policy: str
    ladder: Ladder
    qoe: QoE
    device: str
    trace_names: list[str]
    session_ids: np.ndarray
    trace_index: np.ndarray
    chunks: dict[str, np.ndarray]
    score_from: int = 0  # first chunk in qoe_mean / qoe_total (PlayerConfig.score_from)

    @property
    def n_sessions(self) -> int:
        return len(self.session_ids)

    @classmethod
    def concat(cls, parts: Sequence[SessionResults]) -> SessionResults:
        """The sessions of ``parts`` (runs of one policy, ladder, QoE and trace list on disjoint
        session ids) as one result, in order. A session's results do not depend on the batch it
        ran in, so running in blocks and concatenating gives what one batch would."""
        first = parts[0]
        if len(parts) == 1:
            return first
        return replace(
            first,
            session_ids=np.concatenate([p.session_ids for p in parts]),
            trace_index=np.concatenate([p.trace_index for p in parts]),
            chunks={k: np.concatenate([p.chunks[k] for p in parts], axis=1) for k in first.chunks},
        )

    def summary_arrays(self) -> dict[str, np.ndarray]:
        """Per-session metrics (see :data:`SUMMARY_COLUMNS`).

        Every sum over chunks runs in chunk order, one session at a time (:func:`_chunk_sum`), so a
        session's summary is bit-identical whether it ran alone or in a batch of any size.
        """
        c, lad = self.chunks, self.ladder
        dur = lad.duration_s[:, None]
        frames = lad.frames[:, None]
        stall = _chunk_sum(c["stall_s"][1:])
        video_s = lad.total_duration_s
        rung = c["rung"]
        reward = _chunk_sum(c["reward"][self.score_from :])
        return {
            "qoe_mean": reward / (len(c["reward"]) - self.score_from),
            "qoe_total": reward,
            "lpips_mean": _chunk_sum(c["lpips"] * dur) / video_s,
            "stall_ratio": stall / (stall + video_s),
            "stall_s": stall,
            "stall_count": (c["stall_s"][1:] > 1e-9).sum(axis=0),
            "startup_s": c["stall_s"][0],
            "switches": (np.diff(rung, axis=0) != 0).sum(axis=0),
            "kbps": _chunk_sum(c["size_bytes"]) * 8.0 / video_s / 1000.0,
            "severe_frac": _chunk_sum(c["severe_frac"] * frames) / lad.frames.sum(),
            "decode_ms_per_frame": _chunk_sum(c["decode_s"]) / lad.frames.sum() * 1000.0,
        }

    def sessions_frame(self):
        """One row per session (pandas DataFrame)."""
        import pandas as pd

        df = pd.DataFrame(self.summary_arrays())
        df.insert(0, "trace", [self.trace_names[i] for i in self.trace_index])
        df.insert(0, "session", self.session_ids)
        df.insert(0, "policy", self.policy)
        return df

    def chunks_frame(self):
        """One row per session and chunk (pandas DataFrame)."""
        import pandas as pd

        k, n = self.chunks["rung"].shape
        data = {"session": np.tile(self.session_ids, k), "chunk": np.repeat(np.arange(k), n)}
        data.update({name: arr.reshape(-1) for name, arr in self.chunks.items()})
        df = pd.DataFrame(data)
        df.insert(0, "policy", self.policy)
        return df.sort_values(["session", "chunk"], kind="stable").reset_index(drop=True)


def aggregate(groups, metrics: dict[str, tuple[str, str | float]]):
    """Sessions to one row per group: ``metrics`` maps an output name to ``(column, how)``, the mean
    (``"mean"``) or a quantile (a number) of a per-session column of :meth:`SessionResults.sessions_frame`.

    The one place session summaries are aggregated: ``sim.run``'s table, what-if summaries and
    training validation all call it. ``groups`` is a pandas ``GroupBy``.
    """
    import pandas as pd

    return pd.DataFrame({name: groups[col].mean() if how == "mean" else groups[col].quantile(how)
                         for name, (col, how) in metrics.items()})  # fmt: skip


def _chunk_sum(values: np.ndarray) -> np.ndarray:
    """Sum a ``(chunks, sessions)`` float array over chunks, strictly in chunk order, for every session.

    ``ndarray.sum(axis=0)`` picks its order from the memory layout: pairwise over the chunks of a
    single session (a contiguous column), running sums across rows for a batch, so the last bits
    depend on the batch size. A cumulative sum has one order whatever the batch.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return np.zeros(values.shape[1:])
    return np.cumsum(values, axis=0)[-1]


def run_sessions(
    policy: Policy,
    traces: list[Trace],
    ladder: Ladder,
    device: DeviceProfile,
    qoe: QoE,
    *,
    config: SimConfig | None = None,
    sessions: int | None = None,
    seed: int = 0,
    session_ids: np.ndarray | None = None,
) -> SessionResults:
    """Run sessions in one batch; session ``i`` plays trace ``i mod len(traces)``.

    Results depend only on ``seed`` and each session's id, never on the batch it ran in.
    """
    sim = BatchSimulator(traces, ladder, device, qoe, config)
    ids = np.arange(sessions or len(traces)) if session_ids is None else np.asarray(session_ids, dtype=np.int64)
    tix = ids % len(traces)
    obs = sim.reset(tix, session_keys(seed, ids))
    policy.reset(sim.context, len(ids))
    abandon = policy.abandon if policy.can_abandon else None  # consulted in latency mode only
    rule = policy.abandon_rule if abandon is not None and policy.has_abandon_rule else None
    steps: list[StepInfo] = []
    done = False
    while not done:
        obs, info, done = sim.step(policy.act(obs), abandon=abandon, abandon_rule=rule)
        steps.append(info)
    chunks = {f: np.stack([getattr(s, f) for s in steps]) for f in _CHUNK_FIELDS}
    return SessionResults(
        policy=getattr(policy, "label", policy.name),
        ladder=ladder,
        qoe=qoe,
        device=device.name,
        trace_names=[t.name for t in traces],
        session_ids=ids,
        trace_index=tix,
        chunks=chunks,
        score_from=min(sim.config.player.score_from, ladder.n_chunks - 1),
    )
