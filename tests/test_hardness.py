"""mom.hardness against brute-force loops: Euclidean ranks, neighbours at a depth, the
share of violated tuples, label rates by position, and the report on mined pools."""
import numpy as np
import pytest

from conftest import clustered, unit_rows
from mom.config import MiningConfig
from mom.hardness import (euclidean_at_depth, euclidean_ranks, hardness_report,
                          label_rate_by_position, violated_share)


def _brute_order(x, a):
    sims = x @ x[a]
    return sorted(range(len(x)), key=lambda j: (-(1.0 if j == a else sims[j]), j))


def test_euclidean_ranks_and_depths_match_a_sort_per_anchor():
    x = unit_rows(40, 6, seed=3)
    anchors = [0, 7, 39]
    lists = [np.array([5, 1, 30]), np.array([7 - 1, 20]), np.array([38])]
    ranks = euclidean_ranks(x, anchors, lists)
    for a, members, r in zip(anchors, lists, ranks):
        order = _brute_order(x, a)
        assert r.tolist() == [order.index(int(m)) for m in members]
    near = euclidean_at_depth(x, anchors, 4, [3, 0, 2])
    for a, got, s in zip(anchors, near, [3, 0, 2]):
        assert got.tolist() == _brute_order(x, a)[5:5 + s]


def test_violated_share_counts_tuples_by_hand():
    z = np.array([[0.0, 0.0], [1.0, 0.0], [0.2, 0.0], [3.0, 0.0]])
    # from anchor 0: d(0,1) = 1, d(0,2) = 0.04, d(0,3) = 9
    a, p, n = np.array([0, 0, 0, 0]), np.array([1, 2, 1, 3]), np.array([[2], [3], [3], [1]])
    # tuple 1: the negative nearer (both counts); 2: right by far; 3: right but inside the
    # margin (1 + 0.5 - 9 < 0: right); 4: the negative nearer (both)
    assert violated_share(z, a, p, n, margin=0.5) == {"loss": 0.5, "order": 0.5, "n": 4}
    # a margin of 8.5 makes tuple 3 a violation of the loss, not of the order
    assert violated_share(z, a, p, n[:, 0], margin=8.5) == {"loss": 0.75, "order": 0.5, "n": 4}
    with pytest.raises(ValueError, match="no tuples"):
        violated_share(z, a[:0], p[:0], n[:0], 0.5)


def test_label_rate_by_position_ignores_unknown_labels_and_short_lists():
    labels = np.array([0, 0, 1, 1, -1, 0])
    anchors = [0, 2]
    lists = [np.array([1, 2, 4]), np.array([3])]
    same, count = label_rate_by_position(anchors, lists, labels, same=True)
    assert count.tolist() == [2, 1, 0] and same[0] == 1.0 and same[1] == 0.0 and np.isnan(same[2])
    other, _ = label_rate_by_position(anchors, lists, labels, same=False, depth=2)
    assert other.tolist() == [0.0, 1.0]


def test_report_on_mined_pools():
    from mom.mining import mine
    x, labels = clustered(15, 3, 8, spread=0.3, seed=1)
    cfg = MiningConfig(k_graph=6, k_pos=5, k_neg=10, pool_size=4)
    pools = mine(x, cfg)
    rep = hardness_report(pools, x, x, labels, margin=0.5, hard_negatives=3, n_tuples=50)
    assert min(rep["ranks"]["mom"]) > 0 and len(rep["ranks"]["mom"]) == pools.positives.sizes().sum()
    # the baseline's positives are its first k+ - 1 neighbours; P+ lies beyond rank k+ - 1
    assert max(rep["ranks"]["euclidean"]) <= 4 and min(rep["ranks"]["mom"]) >= 5
    for name in ("mom", "euclidean"):
        assert 0 <= rep["violated"][name]["loss"] <= 1 and rep["violated"][name]["n"] == 50
    bp = rep["by_position"]
    assert set(bp) == {"P+ precision", "NN^e at P+'s depth", "P- purity", "NN^e nearest, as negatives"}
    assert len(bp["P+ precision"]["rate"]) == pools.positives.sizes().max()


def test_the_figure_and_the_gallery_rates(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    from mom.companion import gallery, viz
    from mom.mining import mine
    x, labels = clustered(12, 3, 8, spread=0.4, seed=2)
    pools = mine(x, MiningConfig(k_graph=6, k_pos=5, k_neg=10, pool_size=4))
    rep = hardness_report(pools, x, x, labels, margin=0.5, hard_negatives=3, n_tuples=30)
    paths = viz.save_figure(viz.plot_hardness(rep), tmp_path / "h")
    assert all(p.stat().st_size > 1000 for p in paths)
    rates = gallery.row_rates(pools, x, labels)
    members = np.concatenate(list(pools.positives))
    owners = np.repeat(pools.anchors, pools.positives.sizes())
    assert rates["P+"] == pytest.approx(np.mean(labels[members] == labels[owners]))
    neg = np.concatenate(list(pools.negatives))
    assert rates["P-"] == pytest.approx(np.mean(labels[neg] != labels[np.repeat(
        pools.anchors, pools.negatives.sizes())]))
    notes = gallery.row_notes(rates, 5, 10)
    assert "baseline trains on $NN^e_{5}$" in notes["NN^e_3"] and notes["P+"].startswith("precision")
