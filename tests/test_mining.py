"""mom.mining against the docs/method.md §6 set formulas written with Python sets."""
import json
import math
import warnings
from dataclasses import replace

import numpy as np
import pytest

from conftest import clustered as _clustered, reference_cg
from mom import MiningConfig, Pools, mine
from mom.diffusion import laplacian
from mom.graph import affinity, normalize
from mom.knn import knn
from mom.anchors import modes, select_anchors, stationary
from mom.mining import baseline_from_neighbours, pool_diagnostics, pools_from_neighbours

SMALL = MiningConfig(k_graph=8, k_pos=10, k_neg=20, pool_size=6, cg_iterations=20)


def clustered(n=150, d=8, c=5, spread=0.6, seed=0):
    return _clustered(classes=c, dim=d, spread=spread, seed=seed, n=n)


def reference_pools(x, cfg, anchors, exact=False):
    """docs/method.md §6 by hand: dense CG per anchor (or, ``exact``, a dense
    ``numpy.linalg.solve``), numpy sorting, Python sets."""
    n = x.shape[0]
    sims, ids = knn(x, cfg.k_graph)
    L = laplacian(normalize(affinity(sims, ids, cfg.gamma)), cfg.alpha).toarray()
    E = x.astype(np.float64) @ x.T.astype(np.float64)
    k_neg = min(cfg.k_neg, math.ceil(n / 2))
    out = {}
    for r in anchors:
        f = np.linalg.solve(L, np.eye(n)[r]) if exact else reference_cg(L, np.eye(n)[r], cfg.cg_iterations)
        e_order = [r] + [j for j in np.argsort(-E[r], kind="stable") if j != r]
        m_order = [j for j in np.lexsort((np.arange(n), -f)) if f[j] > 0]
        nn_e_pos, nn_e_neg = set(e_order[:cfg.k_pos]), set(e_order[:k_neg])
        nn_m_pos, nn_m_neg = set(m_order[:cfg.k_pos]), set(m_order[:k_neg])
        pos = [j for j in m_order[:cfg.k_pos] if j in nn_m_pos - nn_e_pos and j != r][:cfg.pool_size]
        neg = [j for j in e_order[:k_neg] if j in nn_e_neg - nn_m_neg and j != r][:cfg.pool_size]
        base_pos = [j for j in e_order[:cfg.k_pos] if j != r][:cfg.pool_size]
        base_neg = e_order[k_neg:k_neg + cfg.pool_size]
        out[int(r)] = (pos, f[pos], neg, base_pos, base_neg)
    return out


def test_mine_equals_set_formulas():
    x, _ = clustered()
    pools = mine(x, replace(SMALL, cg_dtype="float64"))  # the dense reference is float64
    ref = reference_pools(x, SMALL, range(x.shape[0]))
    kept = [r for r, v in ref.items() if v[0] and v[2]]
    np.testing.assert_array_equal(pools.anchors, kept)
    assert len(pools) > 100 and pools.pos_ids.size > 300  # the comparison is not vacuous
    assert pools.n_skipped == x.shape[0] - len(kept)
    base = pools.select("euclidean")
    for i, r in enumerate(pools.anchors):
        pos, w, neg, bpos, bneg = ref[int(r)]
        assert pools.positives[i].tolist() == pos
        np.testing.assert_allclose(pools.positive_weights[i], w, rtol=1e-5)
        assert pools.negatives[i].tolist() == neg
        assert base.positives[i].tolist() == bpos and base.negatives[i].tolist() == bneg
        assert np.all(base.positive_weights[i] == 1.0)
    assert pools.positive_weights[0].dtype == np.float32
    assert pools.positives[0].dtype == pools.negatives[0].dtype == np.int64


def test_float32_cg_gives_the_float64_pools():
    """The default single-precision CG against the double-precision one (itself checked
    against the dense reference above): same anchors, same P+ and P- sets, weights
    within float32 rounding; order may differ only between near-tied members."""
    for seed in (0, 1, 2):
        x, _ = clustered(n=400, seed=seed)
        cfg = replace(SMALL, k_pos=40, k_neg=100, pool_size=30)
        a = mine(x, replace(cfg, cg_dtype="float64"))
        b = mine(x, replace(cfg, cg_dtype="float32"))
        np.testing.assert_array_equal(a.anchors, b.anchors)
        assert len(a) > 300 and a.pos_ids.size > 3000  # not vacuous
        for p, q, w, v in zip(a.positives, b.positives, a.positive_weights, b.positive_weights):
            assert set(p.tolist()) == set(q.tolist())
            order = np.argsort(q)[np.argsort(np.argsort(p))]  # b's weights in a's order
            np.testing.assert_allclose(v[order], w, rtol=1e-4)
        for p, q in zip(a.negatives, b.negatives):
            assert set(p.tolist()) == set(q.tolist())


def test_exact_solver_pools_close_to_cg():
    x, _ = clustered(seed=1)
    a = mine(x, SMALL)
    b = mine(x, MiningConfig(**{**SMALL.__dict__, "solver": "exact", "cg_iterations": 20}))
    assert len(b) > 0 and np.isfinite(b.pos_weights).all()
    assert a.pos_weights.max() < b.pos_weights.max() * 1.01  # truncation under-shoots
    # the exact solver against a dense solve of (I - alpha S) f = e_r and the set formulas
    ref = reference_pools(x, SMALL, range(x.shape[0]), exact=True)
    kept = [r for r, v in ref.items() if v[0] and v[2]]
    np.testing.assert_array_equal(b.anchors, kept)
    assert b.pos_ids.size > 300  # not vacuous
    for i, r in enumerate(b.anchors):
        pos, w, neg, _, _ = ref[int(r)]
        assert b.positives[i].tolist() == pos and b.negatives[i].tolist() == neg
        np.testing.assert_allclose(b.positive_weights[i], w, rtol=1e-6)


def test_numpy_and_torch_cg_backends_mine_the_same_pools():
    x, _ = clustered(seed=2)
    t = mine(x, replace(SMALL, cg_backend="torch", cg_dtype="float64"))
    n = mine(x, replace(SMALL, cg_backend="numpy", cg_dtype="float64"))
    ref = reference_pools(x, SMALL, range(x.shape[0]))
    for pools in (t, n):
        np.testing.assert_array_equal(pools.anchors, [r for r, v in ref.items() if v[0] and v[2]])
    np.testing.assert_array_equal(t.pos_ids, n.pos_ids)
    np.testing.assert_array_equal(t.neg_ids, n.neg_ids)
    np.testing.assert_allclose(t.pos_weights, n.pos_weights, rtol=1e-10)
    for i, r in enumerate(n.anchors):
        np.testing.assert_allclose(n.positive_weights[i], ref[int(r)][1], rtol=1e-6)  # stored float32


def test_pools_from_neighbours_by_hand():
    anchors = np.array([0])
    e = np.array([[0, 1, 2, 3, 4, 5]])
    m = np.array([[0, 3, 9, 1, 7, 5]])
    mv = np.array([[1.0, .5, .4, .3, .0, -.1]])  # 7 and 5 are not manifold neighbours
    pos, w, neg = pools_from_neighbours(anchors, e, m, mv, k_pos=3, k_neg=6, pool_size=10)
    assert pos[0].tolist() == [3, 9]  # NN^m_3 = {0,3,9}, NN^e_3 = {0,1,2}
    np.testing.assert_allclose(w[0], [.5, .4])
    assert neg[0].tolist() == [2, 4, 5]  # NN^e_6 minus {0,3,9,1}
    pos, _, neg = pools_from_neighbours(anchors, e, m, mv, 3, 6, pool_size=1)
    assert pos[0].tolist() == [3] and neg[0].tolist() == [2]
    bp, bw, bn = baseline_from_neighbours(anchors, e, k_pos=3, k_neg=2, pool_size=2)
    assert bp[0].tolist() == [1, 2] and bw[0].tolist() == [1, 1] and bn[0].tolist() == [2, 3]


def test_row_isin_against_sets():
    from mom.mining import _row_isin
    rng = np.random.default_rng(0)
    a = rng.integers(-1, 12, (30, 7))
    b = rng.integers(-1, 12, (30, 5))
    got = _row_isin(a, b, 12)
    for i in range(30):
        assert got[i].tolist() == [v in set(b[i].tolist()) for v in a[i]]


def test_row_isin_in_blocks_of_rows(monkeypatch):
    import mom.mining as mining
    rng = np.random.default_rng(1)
    a = rng.integers(-1, 50, (41, 9))
    b = rng.integers(-1, 50, (41, 13))
    whole = mining._row_isin(a, b, 50)
    monkeypatch.setattr(mining, "ISIN_ELEMENTS", 30)  # blocks of 2 rows
    np.testing.assert_array_equal(mining._row_isin(a, b, 50), whole)
    assert whole.any() and not whole.all()


def test_anchor_choices():
    x, _ = clustered(n=200)
    sims, ids = knn(x, 8)
    A = affinity(sims, ids, 3.0)
    cfg = MiningConfig(anchors="stationary", n_anchors=4, power_iterations=200)
    anc, pi = select_anchors(A, cfg)
    np.testing.assert_array_equal(anc, modes(A, stationary(A, 200))[:4])
    assert pi is not None and len(anc) <= 4
    r1, _ = select_anchors(A, MiningConfig(anchors="random", n_anchors=50, seed=3))
    r2, _ = select_anchors(A, MiningConfig(anchors="random", n_anchors=50, seed=3))
    r3, _ = select_anchors(A, MiningConfig(anchors="random", n_anchors=50, seed=4))
    np.testing.assert_array_equal(r1, r2)
    assert len(set(r1.tolist())) == 50 and not np.array_equal(r1, r3)
    with pytest.raises(ValueError, match="anchors"):
        select_anchors(A, MiningConfig(anchors="best"))


def test_mine_stationary_and_random_anchors():
    x, _ = clustered(n=200)
    p = mine(x, MiningConfig(**{**SMALL.__dict__, "anchors": "stationary", "n_anchors": 5}))
    assert p.stationary is not None and p.stationary.shape == (200,)
    assert len(p) + p.n_skipped <= 5 and set(p.anchors) <= set(np.flatnonzero(p.stationary > 0))
    q = mine(x, MiningConfig(**{**SMALL.__dict__, "anchors": "random", "n_anchors": 30}))
    assert len(q) + q.n_skipped == 30 and q.stationary is None


def test_chosen_anchors_get_exact_euclidean_lists_with_an_approximate_graph():
    """knn_index ivf, stationary anchors, k- deeper than the probed lists hold: the graph is
    the IVF one, the anchors' Euclidean lists are exact (docs/method.md §6)."""
    from mom.anchors import select_anchors
    from mom.diffusion import manifold_topk
    from mom.knn import build_index, search
    from mom.mining import capped_k_neg

    x, _ = clustered(n=2000, d=16, c=20, spread=0.5, seed=4)
    cfg = replace(SMALL, anchors="stationary", n_anchors=40, knn_index="ivf", k_neg=500,
                  pool_size=20, cg_dtype="float64")
    pools = mine(x, cfg)
    # the same graph by hand, then exact lists for the anchors
    idx = build_index(x, "ivf", seed=cfg.seed)
    sims, ids = search(idx, x, cfg.k_graph)
    A = affinity(sims, ids, cfg.gamma)
    anchors, _ = select_anchors(A, cfg)
    k_neg = capped_k_neg(cfg.k_neg, 2000)
    k_e = k_neg + cfg.pool_size
    mv, mi = manifold_topk(normalize(A), anchors, cfg.alpha, k_neg, cfg.cg_iterations, cfg.cg_tol,
                           dtype=np.float64)
    _, approx = search(idx, x, k_e, rows=anchors)
    assert (approx < 0).any()  # the probed lists hold fewer than k_e rows: not vacuous
    _, eids = knn(x, k_e, rows=anchors)
    pos, w, neg = pools_from_neighbours(anchors, eids, mi, mv, cfg.k_pos, k_neg, cfg.pool_size)
    kept = [i for i in range(anchors.size) if len(pos[i]) and len(neg[i])]
    np.testing.assert_array_equal(pools.anchors, anchors[kept])
    assert len(pools) > 10 and "euclidean" in pools.timings
    for j, i in enumerate(kept):
        assert pools.positives[j].tolist() == pos[i].tolist()
        assert pools.negatives[j].tolist() == neg[i].tolist()
        np.testing.assert_allclose(pools.positive_weights[j], w[i], rtol=1e-6)
        assert len(pools.baseline.negatives[j]) == cfg.pool_size  # ranks k-+1 ... k-+pool_size


def test_mine_reads_a_memory_mapped_file_without_copying(tmp_path, monkeypatch):
    import mom.mining as mining

    x, _ = clustered()
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    seen = []
    real = mining.build_index

    def spy(features, *a, **kw):
        seen.append(np.shares_memory(features, mm))
        return real(features, *a, **kw)

    monkeypatch.setattr(mining, "build_index", spy)
    p = mine(mm, SMALL)
    assert seen and all(seen)
    q = mine(x, SMALL)
    np.testing.assert_array_equal(p.pos_ids, q.pos_ids)
    np.testing.assert_array_equal(p.neg_ids, q.neg_ids)


def test_save_load_roundtrip(tmp_path):
    x, _ = clustered()
    p = mine(x, MiningConfig(**{**SMALL.__dict__, "anchors": "stationary", "n_anchors": 5}))
    path = tmp_path / "pools.npz"
    p.save(path)
    q = Pools.load(path)
    assert q.config == p.config and q.method == "mom" and q.n_skipped == p.n_skipped
    assert len(q) == len(p)
    for a, b in [(p, q), (p.baseline, q.baseline)]:
        for field in ("anchors", "pos_offsets", "pos_ids", "pos_weights", "neg_offsets", "neg_ids"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    np.testing.assert_array_equal(q.stationary, p.stationary)
    assert q.select("euclidean").method == "euclidean" and q.select("mom") is q
    assert json.loads(str(np.load(path)["meta"]))["config"]["k_pos"] == SMALL.k_pos
    with pytest.raises(ValueError, match="not available"):
        q.baseline.select("mom")
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    with pytest.raises(ValueError, match="other.npz"):
        Pools.load(tmp_path / "other.npz")


def test_ragged_access():
    x, _ = clustered()
    p = mine(x, SMALL)
    assert len(p.positives) == len(p) and len(list(p.negatives)) == len(p)
    np.testing.assert_array_equal(p.positives[-1], p.positives[len(p) - 1])
    assert p.positives.sizes().min() >= 1 and p.negatives.sizes().max() <= SMALL.pool_size
    with pytest.raises(IndexError):
        p.positives[len(p)]


def test_reproducible():
    x, _ = clustered()
    a, b = mine(x, SMALL), mine(x, SMALL)
    assert set(a.timings) == {"knn", "graph", "anchors", "diffusion", "pools"}
    np.testing.assert_array_equal(a.pos_ids, b.pos_ids)
    np.testing.assert_array_equal(a.neg_ids, b.neg_ids)


# ---- bad and degenerate input -------------------------------------------------

def test_n_not_above_k_graph():
    x, _ = clustered(n=8)
    with pytest.raises(ValueError, match="k_graph"):
        mine(x, SMALL)


def test_duplicate_rows_give_finite_pools():
    x, _ = clustered(n=100)
    x = np.concatenate([x, np.repeat(x[:1], 12, axis=0)])  # 13 copies of row 0
    p = mine(x, SMALL)
    assert np.isfinite(p.pos_weights).all() and len(p) > 0
    for i, r in enumerate(p.anchors):
        assert r not in p.positives[i] and r not in p.negatives[i]


def test_disconnected_graph_and_isolated_nodes():
    rng = np.random.default_rng(0)
    a = rng.normal([5, 0, 0], 1, (60, 3))
    b = rng.normal([-5, 0, 0], 1, (60, 3))
    far = np.array([[0, 0, 1.0], [0, 0, -1.0]])  # isolated: not mutual neighbours of anyone
    x = np.concatenate([a, b, far])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division-by-zero warnings either
        p = mine(x, SMALL)
        s = mine(x, MiningConfig(**{**SMALL.__dict__, "anchors": "stationary", "n_anchors": 20}))
    assert np.isfinite(p.pos_weights).all() and np.isfinite(s.stationary).all()
    assert p.n_skipped + len(p) == 122
    # positives stay inside the anchor's own component (the other gets f = 0)
    for i, r in enumerate(p.anchors):
        side = r < 60
        assert all((j < 60) == side for j in p.positives[i])


@pytest.mark.parametrize("bad, match", [
    (np.ones((20, 3), np.int32), "floating-point"),
    (np.ones((20, 3), np.complex128), "floating-point"),
    (np.ones((20, 3, 1), np.float32), "2-D"),
    (np.zeros((20, 3), np.float32), "all-zero"),
    (np.full((20, 3), np.inf, np.float32), "NaN or inf"),
    (np.full((20, 3), 2.0, np.float32), "not L2-normalised"),
])
def test_bad_features(bad, match):
    with pytest.raises(ValueError, match=match):
        mine(bad, SMALL)


def test_float64_accepted_and_bad_config():
    x, _ = clustered()
    p = mine(x.astype(np.float64), SMALL)
    q = mine(x, SMALL)
    np.testing.assert_array_equal(p.pos_ids, q.pos_ids)
    with pytest.raises(ValueError, match="pool_size"):
        mine(x, MiningConfig(**{**SMALL.__dict__, "pool_size": 0}))
    with pytest.raises(ValueError, match="knn_index"):  # refused by MiningConfig itself
        mine(x, MiningConfig(**{**SMALL.__dict__, "knn_index": "annoy"}))


def test_k_neg_capped_at_half_n():
    x, _ = clustered(n=30)
    cfg = MiningConfig(k_graph=5, k_pos=5, k_neg=1000, pool_size=50)
    p = mine(x, cfg)
    ref = reference_pools(x, cfg, p.anchors)
    for i, r in enumerate(p.anchors):
        assert p.negatives[i].tolist() == ref[int(r)][2]
        assert len(p.baseline.negatives[i]) == 15  # ranks 16..30


# ---- diagnostics ----------------------------------------------------------------

def test_pool_diagnostics_by_hand():
    x, _ = clustered(n=40)
    labels = np.zeros(40, int)
    labels[20:] = 1
    cfg = MiningConfig(k_pos=2, pool_size=3)
    e = knn(x, 6)[1]
    base_pos = [e[0, 1:3]]
    pools = Pools(anchors=np.array([0]), pos_offsets=np.array([0, 3]), pos_ids=np.array([1, 2, 25]),
                  pos_weights=np.ones(3, np.float32), neg_offsets=np.array([0, 2]),
                  neg_ids=np.array([30, 3]), config=cfg)
    pools.baseline = Pools(anchors=np.array([0]), pos_offsets=np.array([0, 2]),
                           pos_ids=base_pos[0], pos_weights=np.ones(2, np.float32),
                           neg_offsets=np.array([0, 1]), neg_ids=np.array([21]),
                           method="euclidean", config=cfg)
    d = pool_diagnostics(pools, x, labels)
    assert d["pos_precision"] == pytest.approx(2 / 3)
    assert d["neg_purity"] == pytest.approx(1 / 2)
    assert d["baseline_neg_purity"] == 1.0
    same_depth = e[0, 2:5]  # Euclidean ranks 3..5: just beyond NN^e_2, as many as P+
    assert d["pos_precision_euclid"] == pytest.approx(np.mean(labels[same_depth] == 0))
    assert d["baseline_pos_precision"] == pytest.approx(np.mean(labels[base_pos[0]] == 0))
    assert d["pos_precision_per_anchor"].shape == (1,)
    with pytest.raises(ValueError, match="labels"):
        pool_diagnostics(pools, x, labels[:5])


def test_pool_diagnostics_on_mined_pools():
    x, labels = clustered(n=200, spread=0.9)
    p = mine(x, SMALL)
    d = pool_diagnostics(p, x, labels)
    for key in ("pos_precision", "pos_precision_euclid", "neg_purity",
                "baseline_pos_precision", "baseline_neg_purity"):
        assert 0 <= d[key] <= 1
        assert d[key + "_per_anchor"].shape == (len(p),)
    unknown = labels.copy()
    unknown[p.anchors[0]] = -1
    d2 = pool_diagnostics(p, x, unknown)
    assert np.isnan(d2["pos_precision_per_anchor"][0]) and np.isfinite(d2["pos_precision"])
    db = pool_diagnostics(p.select("euclidean"), x, labels)
    assert db["pos_precision"] == pytest.approx(d["baseline_pos_precision"])
