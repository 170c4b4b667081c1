"""Peak resident memory per stage (results.json ``peak_rss_mb``).

Linux keeps a process's peak resident set size (VmHWM in /proc/self/status) and lets
the process reset it to the current size (writing 5 to /proc/self/clear_refs), so the
peak of each stage can be read on its own. Elsewhere only the process-wide peak since
start is known (``resource.getrusage``); :func:`per_stage` says which.
"""
from __future__ import annotations

import resource
import sys
from pathlib import Path

__all__ = ["reset_peak", "peak_mb", "process_peak_mb", "current_mb", "per_stage"]

_STATUS, _CLEAR = Path("/proc/self/status"), Path("/proc/self/clear_refs")
_before_reset = 0.0  # the highest peak a reset has cleared, MiB


def _status_mb(field: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def per_stage() -> bool:
    """Whether peaks can be reset, i.e. measured per stage (Linux)."""
    return _CLEAR.exists() and _status_mb("VmHWM") is not None


def reset_peak() -> bool:
    """Reset the peak to the current resident size; False where that is not possible."""
    global _before_reset
    if not per_stage():
        return False
    peak = peak_mb()
    try:
        _CLEAR.write_text("5")
    except OSError:
        return False
    _before_reset = max(_before_reset, peak)  # the reset clears the kernel's process peak too
    return True


def peak_mb() -> float:
    """Peak resident memory in MiB since the last :func:`reset_peak` (else since start)."""
    hwm = _status_mb("VmHWM")
    return round(hwm, 1) if hwm is not None else process_peak_mb()


def process_peak_mb() -> float:
    """The process's peak resident memory since it started, MiB (resets included)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    now = kb / (1024.0 * 1024.0) if sys.platform == "darwin" else kb / 1024.0
    return round(max(now, _before_reset), 1)


def current_mb() -> float | None:
    """Resident memory now, MiB (None where unknown)."""
    rss = _status_mb("VmRSS")
    return None if rss is None else round(rss, 1)
