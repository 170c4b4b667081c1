"""Per-stage peak memory (mom/memory.py): a reset peak forgets an earlier allocation."""
import numpy as np
import pytest

from mom import memory


@pytest.mark.skipif(not memory.per_stage(), reason="peak reset needs Linux /proc")
def test_reset_peak_forgets_an_earlier_allocation():
    big = np.ones(200 * 2**20 // 8)  # 200 MiB touched
    before = memory.peak_mb()
    del big
    assert memory.reset_peak()
    after = memory.peak_mb()
    assert before - after > 150  # the freed 200 MiB no longer count
    small = np.ones(50 * 2**20 // 8)
    assert memory.peak_mb() - after > 40
    del small
    assert memory.process_peak_mb() >= before - 1  # the process-wide peak is never reset
    assert memory.current_mb() <= memory.peak_mb() + 1
