"""Shared pytest settings: headless plots and one torch thread (the CPU is shared)."""
import os
import sys

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_runtest_setup(item):
    # only where a test module already pulled torch in: never import it just for this
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)
