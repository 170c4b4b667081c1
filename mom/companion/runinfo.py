"""Where and how long a notebook ran, read from the machine (never typed).

Each notebook's first cell after its parameters calls :func:`start`, which reads the
clock, the CPU, the memory and the torch device, and prints :meth:`RunInfo.header`;
its last cell prints :meth:`RunInfo.footer` (the elapsed time). ``mom reproduce``
stores :func:`hardware` in each executed notebook's metadata as well, so a table of
runtimes and machines can be built from the executed copies without running them.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import time
from pathlib import Path

__all__ = ["RunInfo", "start", "hardware", "describe_hardware", "format_seconds"]


def _cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; else what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20  # kB -> GiB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def hardware(device: str = "auto") -> dict[str, object]:
    """``{"cpu", "cores", "memory_gib", "device", "gpu"}`` of this machine: the CPU
    model, the cores this process may use, the memory, the torch device ``device``
    resolves to (``mom.device.resolve_device``) and the GPU's name (None without one)."""
    from ..device import resolve_device
    dev = resolve_device(device)
    gpu = None
    if dev.type == "cuda":
        import torch
        gpu = torch.cuda.get_device_name(dev)
    memory = _memory_gib()
    return {"cpu": _cpu_model(), "cores": _cores(),
            "memory_gib": round(memory, 1) if memory is not None else None,
            "device": str(dev), "gpu": gpu}


def describe_hardware(hw: dict) -> str:
    """One line: "2 cores of <CPU>, 24 GiB; torch on cpu (no GPU)"."""
    memory = f", {hw['memory_gib']:g} GiB" if hw.get("memory_gib") else ""
    gpu = f"GPU {hw['gpu']}" if hw.get("gpu") else "no GPU"
    return f"{hw['cores']} cores of {hw['cpu']}{memory}; torch on {hw['device']} ({gpu})"


def format_seconds(seconds: float) -> str:
    """"42 s", "3 min 05 s", "1 h 02 min"."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """A notebook run: its parameter file, when it started and on what."""

    params: str
    started: float  # time.time() at the start
    hardware: dict

    def header(self) -> str:
        """What the first cell prints: parameters, start time, machine."""
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.started))
        return (f"params {self.params!r}; started {when} on "
                f"{describe_hardware(self.hardware)}")

    def elapsed(self) -> float:
        return time.time() - self.started

    def footer(self) -> str:
        """What the last cell prints: how long the notebook ran, and where."""
        return (f"this run of params {self.params!r} took {format_seconds(self.elapsed())} "
                f"on {describe_hardware(self.hardware)}")


def start(params: str, device: str = "auto") -> RunInfo:
    """The start of a notebook's run: the clock and the machine, read now."""
    return RunInfo(params=str(params), started=time.time(), hardware=hardware(device))
