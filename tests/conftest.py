"""Shared pytest settings: headless plots and one torch thread (the CPU is shared)."""
import os
import sys

os.environ.setdefault("MPLBACKEND", "Agg")


import logging  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _no_leftover_log_handlers():
    """``mom.cli.main`` without ``-q`` adds a stderr handler to the "mom" logger; left
    there, it writes into a later test's captured (by then closed) stream as "--- Logging
    error ---". Each test ends with the handlers it started with."""
    logger = logging.getLogger("mom")
    before = list(logger.handlers)
    yield
    for handler in [h for h in logger.handlers if h not in before]:
        logger.removeHandler(handler)


def pytest_runtest_setup(item):
    # only where a test module already pulled torch in: never import it just for this
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


# ----------------------------------------------------------------- shared test data
import numpy as np  # noqa: E402


def unit_rows(n, d, seed=0):
    """(n, d) float32 standard-normal rows, L2-normalised; ``seed`` an int or a Generator."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(n_per=20, classes=4, dim=8, spread=0.35, seed=0, n=None):
    """Features (N, D) float32, L2-normalised, around one random centre per class, and
    labels (N,). Labels repeat in class order (``n_per`` each), or, with ``n``, are
    ``n`` uniform draws (unsorted)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim))
    labels = rng.integers(0, classes, n) if n is not None else np.repeat(np.arange(classes), n_per)
    x = centres[labels] + spread * rng.standard_normal((len(labels), dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels


def reference_cg(L, b, iterations, tol=1e-10):
    """Plain conjugate gradient for L x = b from x = 0, one right-hand side, stopping
    when ||r|| <= tol ||b||: the reference every CG fast path is checked against."""
    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rs = r @ r
    for _ in range(iterations):
        if np.sqrt(rs) <= tol * np.linalg.norm(b):
            break
        q = L @ p
        a = rs / (p @ q)
        x = x + a * p
        r = r - a * q
        rs_new = r @ r
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x
