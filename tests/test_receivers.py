"""The receiver-variant table (codec.receivers): no cycle, table and registrations agree, and every
variant has a decode time on every device profile of sim/data/devices* (or a clear refusal)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from abr.errors import InputError
from codec.receivers import RECEIVER_MODULES, RECEIVERS, available_receivers, receiver_class
from sim.device import DevicePopulation, available_devices, get_device


def test_promptus_never_imports_promptmobile():
    code = (
        "import sys; from codec.promptus.receiver import get_receiver, parse_receiver_spec; "
        "parse_receiver_spec('promptus:max_batch=1'); "
        "print(any(m.startswith('codec.promptmobile') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_table_and_registrations_agree():
    pytest.importorskip("torch")
    for module in dict.fromkeys(RECEIVER_MODULES.values()):
        importlib.import_module(module)
    assert set(RECEIVERS) == set(RECEIVER_MODULES)  # every registered variant has its table line
    for name, module in RECEIVER_MODULES.items():
        cls = receiver_class(name)
        assert cls.name == name and cls.__module__ == module
    assert available_receivers() == list(RECEIVER_MODULES)
    with pytest.raises(InputError, match="unknown receiver 'nope'; valid names: promptmobile, .*promptus$"):
        receiver_class("nope")


def _profiles():
    """Every profile of sim/data/devices.json and sim/data/devices/, population members included."""
    out = {}
    for name in available_devices():
        dev = get_device(name)
        for prof in dev.members if isinstance(dev, DevicePopulation) else (dev,):
            out[prof.name] = prof
    return out


@pytest.mark.parametrize("device", sorted(_profiles()))
@pytest.mark.parametrize("variant", list(RECEIVER_MODULES))
def test_every_variant_has_a_decode_time_on_every_device(variant, device):
    prof = _profiles()[device]
    table = prof.decode_ms_per_frame
    if variant not in table and "*" not in table:
        with pytest.raises(InputError, match=f"device {device!r} has no decode time for decoder {variant!r}; it knows"):
            prof.ms_per_frame(variant)
        return
    ms = prof.ms_per_frame(variant)
    assert ms == table.get(variant, table.get("*")) and 0 <= ms <= 1e6
    if variant in table:
        assert prof.sources.get(variant), f"{device}: the {variant} figure has no source"


def test_phone_and_gpu_profiles_know_every_variant():
    """The measured and published profiles carry an explicit figure for each variant, so adding a
    variant without its decode times fails here (only ``none``, 0 ms for everything, uses ``*``)."""
    for name, prof in _profiles().items():
        if name == "none":
            continue
        missing = [v for v in RECEIVER_MODULES if v not in prof.decode_ms_per_frame]
        assert not missing, f"device {name!r} has no decode time for {missing}"
