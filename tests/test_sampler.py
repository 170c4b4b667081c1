"""sample_epoch against a brute-force loop, and its distribution (seeded)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from conftest import unit_rows
from mom.sampler import Tuples, hardest_negatives, sample_epoch


@dataclass
class FakePools:
    """The fields of mom.mining.Pools that the sampler reads."""

    anchors: np.ndarray
    positives: list
    positive_weights: list
    negatives: list
    method: str = "mom"
    extra: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.anchors)


def random_pools(rng, n=60, n_anchors=12, max_pos=6, max_neg=15):
    anchors = rng.choice(n, n_anchors, replace=False)
    pos, w, neg = [], [], []
    for a in anchors:
        others = np.setdiff1d(np.arange(n), [a])
        p = rng.choice(others, rng.integers(1, max_pos + 1), replace=False)
        q = rng.choice(np.setdiff1d(others, p), rng.integers(1, max_neg + 1), replace=False)
        pos.append(p.astype(np.int64))
        w.append(rng.random(len(p)).astype(np.float32))
        neg.append(q.astype(np.int64))
    return FakePools(anchors.astype(np.int64), pos, w, neg)


def brute_force(pools, emb, T, h, K, seed):
    """The docs/method.md §7 definition, one tuple at a time, consuming the same variates."""
    rng = np.random.default_rng(seed)
    a = rng.integers(len(pools), size=T)
    u = rng.random(T)
    keys = rng.random((T, h))
    out = []
    for t in range(T):
        i = a[t]
        P, W, N = pools.positives[i], pools.positive_weights[i], pools.negatives[i]
        j = int(u[t] * len(P))
        r = pools.anchors[i]
        sims = [float(np.dot(emb[r].astype(np.float64), emb[m].astype(np.float64))) for m in N]
        near = [N[q] for q in sorted(range(len(N)), key=lambda q: -sims[q])][:h]
        slots = sorted(range(len(near)), key=lambda s: keys[t, s])
        negs = [near[slots[k % len(near)]] for k in range(K)]
        out.append((r, P[j], negs, W[j]))
    return out


@pytest.mark.parametrize("K,h", [(1, 10), (3, 5), (4, 2)])
def test_matches_brute_force(K, h):
    rng = np.random.default_rng(1)
    pools = random_pools(rng)
    emb = unit_rows(60, 8, rng)
    got = sample_epoch(pools, emb, 300, hard_negatives=h, n_negatives=K, rng=7)
    ref = brute_force(pools, emb, 300, h, K, seed=7)
    assert isinstance(got, Tuples) and got.negative.shape == (300, K)
    assert got.anchor.dtype == np.int64 and got.weight.dtype == np.float32
    for t, (r, p, negs, w) in enumerate(ref):
        assert got.anchor[t] == r and got.positive[t] == p
        assert list(got.negative[t]) == negs
        assert got.weight[t] == pytest.approx(w)
    anchor, positive, negative, weight = got  # unpacks like the contract's 4-tuple
    assert anchor is got.anchor


def test_distribution_uniform_over_hardest():
    rng = np.random.default_rng(2)
    n, h = 40, 3
    emb = unit_rows(n, 6, rng)
    anchors = np.array([0, 1], dtype=np.int64)
    pos = [np.array([5, 6, 7, 8]), np.array([9])]
    neg = [np.arange(10, 30), np.arange(30, 32)]  # second anchor: fewer than h candidates
    pools = FakePools(anchors, pos, [np.ones(4, np.float32), np.full(1, 0.25, np.float32)], neg)
    T = 40000
    tup = sample_epoch(pools, emb, T, hard_negatives=h, rng=0)
    # anchors uniform with replacement
    frac0 = np.mean(tup.anchor == 0)
    assert abs(frac0 - 0.5) < 4 * np.sqrt(0.25 / T)
    # positive uniform over P+ of anchor 0
    p0 = tup.positive[tup.anchor == 0]
    counts = np.array([np.sum(p0 == q) for q in pos[0]])
    assert counts.sum() == len(p0)
    assert np.all(np.abs(counts / len(p0) - 0.25) < 4 * np.sqrt(0.25 * 0.75 / len(p0)))
    assert np.all(tup.weight[tup.anchor == 1] == np.float32(0.25))
    # negatives: exactly the h nearest in the current embedding, uniformly
    n0 = tup.negative[tup.anchor == 0, 0]
    sims = emb[neg[0]] @ emb[0]
    hardest = set(neg[0][np.argsort(-sims)[:h]].tolist())
    assert set(np.unique(n0).tolist()) == hardest
    for q in hardest:
        assert abs(np.mean(n0 == q) - 1 / h) < 4 * np.sqrt((1 / h) * (1 - 1 / h) / len(n0))
    assert set(np.unique(tup.negative[tup.anchor == 1]).tolist()) == {30, 31}


def test_current_embedding_decides_negatives():
    # Moving a P- member next to the anchor makes it the only hard negative.
    rng = np.random.default_rng(3)
    emb = unit_rows(20, 4, rng)
    pools = FakePools(np.array([0]), [np.array([1])], [np.ones(1, np.float32)], [np.arange(2, 20)])
    emb2 = emb.copy()
    emb2[11] = emb[0]
    t1 = sample_epoch(pools, emb2, 50, hard_negatives=1, rng=0)
    assert np.all(t1.negative == 11)
    cand, n_cand = hardest_negatives(np.array([0]), pools.negatives, emb, 18)
    assert n_cand.tolist() == [18]
    sims = emb[cand[0]] @ emb[0]
    assert np.all(np.diff(sims) <= 1e-6)  # sorted by current similarity, descending


def test_distinct_negatives_and_seed():
    rng = np.random.default_rng(4)
    pools = random_pools(rng, max_neg=15)
    emb = unit_rows(60, 8, rng)
    a = sample_epoch(pools, emb, 500, hard_negatives=10, n_negatives=5, rng=11)
    b = sample_epoch(pools, emb, 500, hard_negatives=10, n_negatives=5, rng=np.random.default_rng(11))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    sizes = np.array([len(q) for q in pools.negatives])
    idx = {int(r): i for i, r in enumerate(pools.anchors)}
    for r, negs in zip(a.anchor, a.negative):
        if sizes[idx[int(r)]] >= 5:
            assert len(set(negs.tolist())) == 5
        assert set(negs.tolist()) <= set(pools.negatives[idx[int(r)]].tolist())
    # weights come from the positive's own entry
    for r, p, w in zip(a.anchor, a.positive, a.weight):
        i = idx[int(r)]
        assert w == pools.positive_weights[i][list(pools.positives[i]).index(p)]


def test_bad_inputs():
    rng = np.random.default_rng(5)
    emb = unit_rows(10, 3, rng)
    empty = FakePools(np.zeros(0, np.int64), [], [], [])
    with pytest.raises(ValueError, match="empty pool set"):
        sample_epoch(empty, emb, 5)
    p = FakePools(np.array([0]), [np.array([12])], [np.ones(1, np.float32)], [np.array([3])])
    with pytest.raises(ValueError, match="only 10 rows"):
        sample_epoch(p, emb, 5)
    p = FakePools(np.array([0]), [np.array([], np.int64)], [np.ones(0, np.float32)], [np.array([3])])
    with pytest.raises(ValueError, match="P\\+ of anchor #0 is empty"):
        sample_epoch(p, emb, 5)
    p = FakePools(np.array([0]), [np.array([1])], [np.ones(1, np.float32)], [np.array([3])])
    bad = emb.copy()
    bad[2, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        sample_epoch(p, bad, 5)
    assert len(sample_epoch(p, emb, 0).anchor) == 0
