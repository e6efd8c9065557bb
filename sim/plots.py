"""The per-chunk view of one session, as ABR tools draw it: throughput, buffer, rung and decode
time against wall-clock time (matplotlib, Agg backend, PNG).

Times come from the per-chunk rows alone: chunk k's request leaves at
``t_k = sum_{j<k} (delay_j + wait_j)`` and arrives at ``a_k = t_k + delay_k`` (``sim.core``'s
clock); it decodes from ``max(a_k, e_{k-1})`` for ``decode_s``; ``buffer_s`` is the unplayed
video when the next request leaves, ``a_k + wait_k``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_session", "session_timeline"]


def session_timeline(chunks: dict[str, np.ndarray], column: int) -> dict[str, np.ndarray]:
    """Per-chunk times of session ``column`` of ``(chunks, sessions)`` arrays: request start,
    arrival, next request and decode start (seconds from the session's start)."""
    delay = np.asarray(chunks["delay_s"])[:, column]
    wait = np.asarray(chunks["wait_s"])[:, column]
    start = np.concatenate([[0.0], np.cumsum(delay + wait)[:-1]])
    arrive = start + delay
    dec = np.asarray(chunks["decode_s"])[:, column]
    dec_start = np.empty_like(arrive)
    free = 0.0
    for k in range(len(arrive)):  # the decoder takes chunks in order: e_k = max(a_k, e_{k-1}) + D_k
        dec_start[k] = max(arrive[k], free)
        free = dec_start[k] + dec[k]
    return {"start": start, "arrive": arrive, "next": arrive + wait, "decode_start": dec_start}


def plot_session(results, path: str | Path, session: int | None = None, title: str | None = None) -> Path:
    """Draw one session of a :class:`sim.session.SessionResults` to ``path`` (PNG).

    :param session: the session id to draw (default: the first one run).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from abr.io import write_atomic

    ids = list(np.asarray(results.session_ids))
    sid = ids[0] if session is None else session
    if sid not in ids:
        raise ValueError(f"session {sid} was not run (ran {ids[0]}..{ids[-1]})")
    col = ids.index(sid)
    c = results.chunks
    ladder = results.ladder
    t = session_timeline(c, col)
    rung = c["rung"][:, col]
    kbps = c["size_bytes"][:, col] * 8.0 / ladder.duration_s / 1000.0
    stall = c["stall_s"][:, col]

    fig, axes = plt.subplots(4, 1, figsize=(11, 9), sharex=True)
    ax = axes[0]
    ax.hlines(c["throughput_mbps"][:, col] * 1000.0, t["start"], t["arrive"], color="tab:blue", lw=2,
              label="measured throughput of each download")  # fmt: skip
    ax.step(t["start"], kbps, where="post", color="tab:orange", label="bitrate of the chosen rung")
    ax.set_ylabel("kbit/s")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper right")

    ax = axes[1]
    ax.plot(t["next"], c["buffer_s"][:, col], "o-", ms=3, color="tab:green", label="buffer at the next request")
    first = True
    for k in np.flatnonzero(stall[1:] > 1e-9) + 1:
        ax.axvspan(t["arrive"][k] - stall[k], t["arrive"][k], color="tab:red", alpha=0.25,
                   label="stall" if first else None)  # fmt: skip
        first = False
    if stall[0] > 0:
        ax.axvspan(0, stall[0], color="grey", alpha=0.2, label="startup")
    ax.set_ylabel("buffer, s")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper right")

    ax = axes[2]
    ax.step(t["start"], rung, where="post", color="tab:purple")
    ax.set_yticks(range(ladder.n_rungs))
    names = [f"{i}: {r.label or r.family} ({r.kbps:.0f} kbit/s)" for i, r in enumerate(ladder.rungs)]
    ax.set_yticklabels(names, fontsize=7)
    ax.set_ylim(-0.5, ladder.n_rungs - 0.5)
    ax.set_ylabel("rung")

    ax = axes[3]
    dec = c["decode_s"][:, col]
    ratio = dec / ladder.duration_s
    ax.barh(ratio / 2, dec, height=ratio, left=t["decode_start"], color="tab:brown", alpha=0.8,
            label="decoding (height: decode time / chunk duration)")  # fmt: skip
    ax.axhline(1.0, color="black", lw=0.8, ls="--", label="real time")
    ax.set_ylabel("decode time /\nchunk duration")
    ax.set_ylim(0, max(1.2, float(ratio.max()) * 1.1))
    ax.set_xlabel("time since the session started, s")
    ax.legend(fontsize=8, loc="upper right")

    name = results.trace_names[int(results.trace_index[col])]
    fig.suptitle(title or f"{results.policy} - session {sid} on {name} ({ladder.name}, {results.device})", fontsize=10)
    for a in axes:
        a.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)

    def save(tmp):
        fig.savefig(tmp, dpi=100, format="png")

    try:
        return write_atomic(path, save)
    finally:
        plt.close(fig)
