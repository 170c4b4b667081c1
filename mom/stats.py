"""Statistics over seeds: means with t confidence intervals, paired differences.

A study repeats each training over several seeds. For one row, a metric over
its seeds is summarised by the mean, the sample standard deviation (ddof 1) and
a two-sided 95% Student-t interval for the mean (``mean +- t_{0.975, n-1} *
std / sqrt(n)``). For two rows trained with the same seeds, the per-seed
differences are summarised the same way, and their ``p`` is the two-sided
**sign-flip permutation test** of a zero mean difference: under the null each
difference is equally likely to have either sign, so ``p`` is the share of the
``2^n`` sign assignments whose mean is at least as far from zero as the one
observed (exact enumeration up to ``max_exact`` seeds, Monte Carlo beyond).
With n seeds the smallest attainable ``p`` is ``2 / 2^n`` (0.0625 for 5 seeds),
so the t interval is the finer statement at small n; ``p_t`` (paired t-test)
is given beside it.

n < 2 gives ``std``, ``ci95`` and ``p`` as None: one run has no spread.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np
from scipy import stats as _st

__all__ = ["summarize", "paired", "sign_flip_p", "CI_LEVEL", "CI_METHOD", "TEST_METHOD"]

CI_LEVEL = 0.95
CI_METHOD = "two-sided 95% Student-t interval over seeds"
TEST_METHOD = "two-sided sign-flip permutation test on the per-seed differences (exact up to 16 seeds)"
_TOL = 1e-12  # ties of |mean| within rounding count as "at least as extreme"


def _values(values: Sequence[float], name: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError(f"{name}: no values to summarise")
    if not np.isfinite(v).all():
        raise ValueError(f"{name}: non-finite values {v.tolist()}")
    return v


def _t_interval(v: np.ndarray) -> tuple[float | None, list[float] | None]:
    n = v.size
    if n < 2:
        return None, None
    mean, std = float(v.mean()), float(v.std(ddof=1))
    half = float(_st.t.ppf(0.5 + CI_LEVEL / 2, n - 1)) * std / math.sqrt(n)
    return std, [mean - half, mean + half]


def summarize(values: Sequence[float], name: str = "values") -> dict:
    """``{"mean", "std", "ci95": [lo, hi], "n"}`` of one metric over seeds."""
    v = _values(values, name)
    std, ci = _t_interval(v)
    return {"mean": float(v.mean()), "std": std, "ci95": ci, "n": int(v.size)}


def sign_flip_p(diffs: Sequence[float], max_exact: int = 16, n_random: int = 100_000,
                seed: int = 0) -> float | None:
    """Two-sided sign-flip permutation p-value of ``mean(diffs) == 0``.

    Exact over all ``2^n`` sign vectors when ``n <= max_exact``; otherwise
    ``n_random`` seeded random sign vectors (plus the observed one).
    """
    d = _values(diffs, "diffs")
    n = d.size
    if n < 2:
        return None
    observed = abs(d.mean())
    if n <= max_exact:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))  # (2^n, n)
        means = np.abs(signs @ d) / n
        return float(np.mean(means >= observed - _TOL))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(n_random, n))
    means = np.abs(signs @ d) / n
    return float((np.sum(means >= observed - _TOL) + 1) / (n_random + 1))


def paired(a: Sequence[float], b: Sequence[float], name: str = "paired") -> dict:
    """Per-seed differences ``a - b``: ``{"mean", "std", "ci95", "p", "p_t", "n"}``.

    ``a[i]`` and ``b[i]`` must come from the same seed.
    """
    va, vb = _values(a, name), _values(b, name)
    if va.shape != vb.shape:
        raise ValueError(f"{name}: {va.size} and {vb.size} values; pairs need the same seeds")
    d = va - vb
    out = summarize(d, name)
    p_t = None
    if d.size >= 2:
        if np.all(d == 0):
            p_t = 1.0
        elif d.std() == 0:  # the same nonzero difference every seed: no spread to test against
            p_t = 0.0
        else:
            p_t = float(_st.ttest_1samp(d, 0.0).pvalue)
    out.update(p=sign_flip_p(d), p_t=p_t)
    return out
