"""traces: network traces (times in seconds, throughput in Mbit/s, latency in ms).

One in-memory representation, :class:`Trace`, for every file format and network model:

* :mod:`traces.formats`: readers/writers (Pensieve cooked, mahimahi, Sabre JSON, G-NetTrack
  CSV, ``second,bytes_per_second`` CSV, ``time_s,mbps[,rtt_ms]`` CSV), detection by content.
* :mod:`traces.models`: seeded generative models (``lte``, ``3g``, ``5g``, ``fcc``, ``wifi``
  fitted to real sets by ``python -m traces.fit``; ``genet`` randomized).
* :mod:`traces.sets`: ``load_traces(spec)`` for a model, file, folder or glob, with ``@train``/``@test``.
* :mod:`traces.transforms`: what-if transforms; :mod:`traces.cli`: the shared command-line options.

CLI: ``python -m traces info|convert|plot``. Only numpy is imported (matplotlib lazily by ``plot``).
"""

from traces.cli import add_trace_arguments, traces_from_args
from traces.formats import FORMATS, read_trace, write_cooked, write_mahimahi, write_trace
from traces.models import NETWORK_MODELS, get_model
from traces.sets import load_traces
from traces.split import split_files
from traces.stats import summarize
from traces.trace import Trace
from traces.transforms import apply_transforms, parse_transforms

__all__ = [
    "FORMATS",
    "NETWORK_MODELS",
    "Trace",
    "add_trace_arguments",
    "apply_transforms",
    "get_model",
    "load_traces",
    "parse_transforms",
    "read_trace",
    "split_files",
    "summarize",
    "traces_from_args",
    "write_cooked",
    "write_mahimahi",
    "write_trace",
]
