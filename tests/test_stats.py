"""mom.stats: t intervals against scipy, the sign-flip test against enumeration by hand."""
import itertools

import numpy as np
import pytest
from scipy import stats as st

from mom.stats import paired, sign_flip_p, summarize


def test_summarize_matches_scipy_t_interval():
    v = [91.2, 92.0, 91.7, 92.4, 91.1]
    s = summarize(v)
    lo, hi = st.t.interval(0.95, len(v) - 1, loc=np.mean(v), scale=st.sem(v))
    assert s["mean"] == pytest.approx(np.mean(v))
    assert s["std"] == pytest.approx(np.std(v, ddof=1))
    assert s["ci95"] == pytest.approx([lo, hi])
    assert s["n"] == 5


def test_one_value_has_no_spread_and_constant_values_a_point_interval():
    assert summarize([3.0]) == {"mean": 3.0, "std": None, "ci95": None, "n": 1}
    assert summarize([2.0, 2.0, 2.0])["ci95"] == [2.0, 2.0]
    d = paired([1.0], [0.5])
    assert d["p"] is None and d["ci95"] is None and d["mean"] == 0.5


def brute_sign_flip(d):
    d = np.asarray(d, float)
    obs = abs(d.mean())
    hits = [abs(np.mean(np.array(s) * d)) >= obs - 1e-12
            for s in itertools.product((1, -1), repeat=len(d))]
    return np.mean(hits)


@pytest.mark.parametrize("d", [[1, 2, 3, 4, 5], [1, -1, 2, -2, 0.5], [0.3, 0.1, -0.2, 0.4],
                               [0, 0, 0], [5, -5]])
def test_sign_flip_exact_equals_enumeration(d):
    assert sign_flip_p(d) == pytest.approx(brute_sign_flip(d))


def test_sign_flip_smallest_p_for_five_seeds_and_monte_carlo():
    assert sign_flip_p([1, 2, 3, 4, 5]) == pytest.approx(2 / 32)
    rng = np.random.default_rng(0)
    d = rng.normal(0.5, 1.0, size=20)
    exact = brute_sign_flip(d[:12])
    assert sign_flip_p(d[:12], max_exact=4, n_random=200_000) == pytest.approx(exact, abs=0.01)


def test_paired_differences_and_t_test():
    a = [92.4, 92.0, 91.9, 92.6, 92.2]
    b = [91.7, 91.8, 91.6, 91.9, 92.0]
    d = paired(a, b)
    diff = np.subtract(a, b)
    assert d["mean"] == pytest.approx(diff.mean())
    assert d["ci95"] == pytest.approx(list(st.t.interval(0.95, 4, loc=diff.mean(), scale=st.sem(diff))))
    assert d["p_t"] == pytest.approx(st.ttest_rel(a, b).pvalue)
    assert d["p"] == pytest.approx(2 / 32)  # all five seeds agree
    assert paired([1, 2], [1, 2])["p_t"] == 1.0


def test_bad_input():
    with pytest.raises(ValueError, match="same seeds"):
        paired([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="no values"):
        summarize([])
    with pytest.raises(ValueError, match="non-finite"):
        summarize([1.0, float("nan")])
