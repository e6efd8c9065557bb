"""traces: network traces (times in seconds, throughput in Mbit/s, latency in ms).

One in-memory representation, :class:`Trace`, for every file format and network model.
"""

from traces.formats import read_trace, write_cooked, write_mahimahi
from traces.models import NETWORK_MODELS, get_model
from traces.sets import load_traces
from traces.trace import Trace

__all__ = ["NETWORK_MODELS", "Trace", "get_model", "load_traces", "read_trace", "write_cooked", "write_mahimahi"]
