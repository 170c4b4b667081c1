"""k_pos/k_neg: auto (mom/depths.py): the community statistic, the rule, its errors, and mine()."""
import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import clustered
from mom.config import MiningConfig, apply_overrides, load_params
from mom.depths import NEG_FACTOR, POS_DIVISOR, Depths, auto_depths, communities, typical_size
from mom.graph import affinity
from mom.knn import knn
from mom.mining import Pools, mine


def _graph(x, k=8):
    sims, ids = knn(x, k)
    return affinity(sims, ids, 3.0)


def test_typical_size_is_the_size_weighted_mean():
    labels = np.array([0, 0, 0, 1, 2, 2])  # sizes 3, 1, 2
    assert typical_size(labels) == pytest.approx((9 + 1 + 4) / 6)
    assert typical_size(np.zeros(0, int)) == 0.0


def test_communities_recover_separated_clusters_whatever_their_size():
    for per in (12, 40):
        x, y = clustered(n_per=per, classes=4, dim=16, spread=0.1, seed=1)
        lab = communities(_graph(x, k=min(per - 1, 10)), seed=0)
        # each cluster is one community, apart from points with no mutual neighbour
        # (communities of one): 4 communities of 2+, each inside one cluster
        big = [c for c in np.unique(lab) if (lab == c).sum() > 1]
        assert len(big) == 4
        assert all(len(np.unique(y[lab == c])) == 1 for c in big)
        assert sum((lab == c).sum() for c in big) >= 0.9 * len(y)


def test_auto_depths_follow_the_community_size_not_the_class_count():
    small = auto_depths(_graph(clustered(n_per=15, classes=6, dim=16, spread=0.1, seed=2)[0]))
    large = auto_depths(_graph(clustered(n_per=60, classes=3, dim=16, spread=0.1, seed=2)[0], k=12))
    # isolated points (no mutual neighbour) pull the size-weighted mean a little below
    assert small.value == pytest.approx(15, rel=0.1) and large.value == pytest.approx(60, rel=0.1)
    assert (small.k_pos, small.k_neg) == (round(small.value / POS_DIVISOR),
                                          min(45, round(NEG_FACTOR * small.value)))  # cap N/2
    assert large.k_pos == round(large.value / POS_DIVISOR)
    assert large.k_neg == 90  # 4 * 60 = 240, capped at ceil(N / 2)
    assert small.rule == "auto" and small.statistic == "typical_community_size"
    assert small.communities >= 6


def test_auto_depths_refuse_a_graph_without_neighbourhoods():
    with pytest.raises(ValueError, match="typical_community_size=1.00.*no edges"):
        auto_depths(sp.csr_matrix((10, 10)))
    pairs = sp.csr_matrix((np.ones(10), (np.arange(10), np.arange(10) ^ 1)), shape=(10, 10))
    with pytest.raises(ValueError, match=r"typical_community_size=2.00 .*5 communities for 10"):
        auto_depths(pairs)  # five isolated pairs: communities of 2 < 3


def test_mine_with_auto_records_the_depths_and_matches_mining_at_those_numbers(tmp_path):
    x, y = clustered(n_per=30, classes=4, dim=16, spread=0.3, seed=3)
    cfg = MiningConfig(k_graph=10, k_pos="auto", k_neg="auto", pool_size=20, cg_dtype="float64")
    pools = mine(x, cfg)
    d = pools.depths
    assert d.rule == "auto" and d.value > 3
    assert pools.config.k_pos == d.k_pos and pools.config.k_neg == d.k_neg
    fixed = mine(x, dataclasses.replace(cfg, k_pos=d.k_pos, k_neg=d.k_neg))
    assert fixed.depths == Depths(d.k_pos, d.k_neg, "fixed")
    for a, b in ((pools, fixed), (pools.baseline, fixed.baseline)):
        np.testing.assert_array_equal(a.anchors, b.anchors)
        np.testing.assert_array_equal(a.pos_ids, b.pos_ids)
        np.testing.assert_array_equal(a.neg_ids, b.neg_ids)
        np.testing.assert_allclose(a.pos_weights, b.pos_weights)
    pools.save(tmp_path / "p.npz")
    back = Pools.load(tmp_path / "p.npz")
    assert back.depths == d and back.baseline.depths == d
    # one depth auto, the other given
    half = mine(x, dataclasses.replace(cfg, k_neg=40))
    assert half.depths.k_pos == d.k_pos and half.depths.k_neg == 40


def test_stationary_anchors_with_auto_depths():
    x, _ = clustered(n_per=30, classes=4, dim=16, spread=0.3, seed=4)
    pools = mine(x, MiningConfig(k_graph=10, k_pos="auto", k_neg="auto", anchors="stationary",
                                 n_anchors=10))
    assert 0 < len(pools) <= 10 and pools.depths.rule == "auto"


def test_auto_is_a_config_value_and_nothing_else_is():
    cfg = apply_overrides(load_params("default"), ["mining.k_pos=auto", "mining.k_neg=auto"])
    assert cfg.mining.k_pos == "auto"
    with pytest.raises(ValueError, match=r"MiningConfig.k_pos: expected an integer, got 'sometimes'"):
        MiningConfig(k_pos="sometimes")
    with pytest.raises(ValueError, match=r"k_neg: must be >= 1"):
        MiningConfig(k_neg=0)
    assert load_params("paper").mining.k_pos == 50 and load_params("paper").mining.k_neg == 100
    assert load_params("default").mining.k_pos == "auto"


def test_auto_pools_empty_for_every_anchor_name_the_statistic(monkeypatch):
    import mom.mining
    x, _ = clustered(n_per=10, classes=3, dim=8, spread=0.3, seed=5)
    n = len(x)
    # a rule that asked for k+ = N: P+ = NN^m_N minus NN^e_N is empty for every anchor
    monkeypatch.setattr(mom.mining, "resolve_depths",
                        lambda cfg, A: Depths(n, n, "auto", "typical_community_size", 30.0, 1))
    with pytest.raises(ValueError, match=r"typical_community_size=30.0: k\+ 30, k- 15\) every one "
                                         r"of the 30 anchors has an empty P\+ or P-"):
        mine(x, MiningConfig(k_graph=5, k_pos="auto", k_neg="auto"))


def test_adapted_k_graph_shrinks_to_half_the_community_and_never_grows():
    from mom.depths import GRAPH_DIVISOR, K_GRAPH_MIN, adapted_k_graph
    x, _ = clustered(n_per=12, classes=6, dim=16, spread=0.1, seed=6)
    k, c0, _ = adapted_k_graph(_graph(x, k=30), 30)
    assert c0 > 3 and k == min(30, max(K_GRAPH_MIN, round(c0 / GRAPH_DIVISOR)))
    assert k < 30  # classes of 12 are smaller than the graph's k
    x, _ = clustered(n_per=80, classes=3, dim=16, spread=0.1, seed=6)
    assert adapted_k_graph(_graph(x, k=12), 12)[0] == 12  # communities of ~80: the cap holds
    with pytest.raises(ValueError, match=r"adapt_k_graph.*k_graph=30 has no edges "
                                         r"\(typical_community_size=1.00\)"):
        adapted_k_graph(sp.csr_matrix((10, 10)), 30)


def test_mine_with_adapt_k_graph_equals_mining_at_the_adapted_k(tmp_path):
    x, _ = clustered(n_per=12, classes=6, dim=16, spread=0.3, seed=7)
    cfg = MiningConfig(k_graph=30, adapt_k_graph=True, k_pos="auto", k_neg="auto", pool_size=20,
                       cg_dtype="float64")
    pools = mine(x, cfg)
    d = pools.depths
    assert d.k_graph is not None and 5 <= d.k_graph < 30 and d.k_graph_value > 3
    assert "k_graph (adapted): " in d.summary() and "depths (auto): " in d.summary()
    plain = mine(x, dataclasses.replace(cfg, k_graph=d.k_graph, adapt_k_graph=False))
    assert (plain.depths.k_pos, plain.depths.k_neg) == (d.k_pos, d.k_neg)
    for a, b in ((pools, plain), (pools.baseline, plain.baseline)):
        np.testing.assert_array_equal(a.anchors, b.anchors)
        np.testing.assert_array_equal(a.pos_ids, b.pos_ids)
        np.testing.assert_array_equal(a.neg_ids, b.neg_ids)
        np.testing.assert_allclose(a.pos_weights, b.pos_weights)
    pools.save(tmp_path / "p.npz")
    assert Pools.load(tmp_path / "p.npz").depths == d
    # fixed depths on an adapted graph: the graph's k is still recorded
    fixed = mine(x, dataclasses.replace(cfg, k_pos=5, k_neg=30))
    assert fixed.depths.rule == "fixed" and fixed.depths.k_graph == d.k_graph
    assert fixed.depths.summary().startswith("k_graph (adapted): ")
    assert mine(x, dataclasses.replace(cfg, k_pos=5, k_neg=30, adapt_k_graph=False)).depths.summary() is None


def test_adapt_k_graph_is_a_boolean_config_value():
    cfg = apply_overrides(load_params("default"), ["mining.adapt_k_graph=true"])
    assert cfg.mining.adapt_k_graph is True
    with pytest.raises(ValueError, match=r"MiningConfig.adapt_k_graph"):
        MiningConfig(adapt_k_graph="often")
    assert load_params("paper").mining.adapt_k_graph is False


def test_adapted_graph_at_the_cap_runs_louvain_once(monkeypatch):
    import mom.depths
    x, _ = clustered(n_per=80, classes=3, dim=16, spread=0.1, seed=6)
    cfg = MiningConfig(k_graph=12, k_pos="auto", k_neg="auto", pool_size=10)
    plain = mine(x, cfg)
    calls = []
    real = mom.depths.communities
    monkeypatch.setattr(mom.depths, "communities", lambda A, seed=0: calls.append(1) or real(A, seed))
    adapted = mine(x, dataclasses.replace(cfg, adapt_k_graph=True))
    assert adapted.depths.k_graph == 12 and len(calls) == 1  # the first pass's communities reused
    assert (adapted.depths.k_pos, adapted.depths.k_neg, adapted.depths.value) == (
        plain.depths.k_pos, plain.depths.k_neg, plain.depths.value)
    np.testing.assert_array_equal(adapted.pos_ids, plain.pos_ids)
