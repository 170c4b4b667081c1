"""mom.toy: the two-moons example of Figures 1-2, against the pool set formulas."""
import numpy as np
import pytest

from mom.toy import lift, toy_example, two_moons


def test_lift_ranks_like_plane_distances():
    p, _ = two_moons(80, seed=1)
    y = lift(p)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, rtol=1e-6)
    q = 5
    by_ip = np.argsort(-(y @ y[q]), kind="stable")[:15]
    by_dist = np.argsort(np.linalg.norm(p - p[q], axis=1), kind="stable")[:15]
    assert set(by_ip[:10]) <= set(by_dist)  # the same neighbours up to float ties


def test_toy_pools_are_the_set_formulas_and_show_the_papers_point():
    ex = toy_example()
    k = ex.cfg.k_pos
    # P+ = NN^m_k \\ NN^e_k and P- = NN^e_k- \\ NN^m_k- (docs/method.md), from the arrays shown
    nn_e = set(ex.nn_euclidean) | {ex.anchor}
    nn_m = set(ex.nn_manifold) | {ex.anchor}
    assert set(ex.positives) <= nn_m - nn_e
    order_e = np.argsort(-ex.euclidean, kind="stable")
    order_m = np.argsort(-ex.manifold, kind="stable")
    kn = ex.cfg.k_neg
    assert set(ex.negatives) <= set(order_e[:kn]) - set(order_m[:kn])
    assert len(ex.positives) >= 5 and len(ex.negatives) >= 5
    same = ex.labels == ex.labels[ex.anchor]
    assert same[ex.positives].all()  # hard positives stay on the anchor's moon
    assert not same[ex.negatives].any()  # hard negatives are on the other moon
    assert (~same[ex.nn_euclidean]).mean() > 0.2  # the Euclidean ball crosses over
    assert len(ex.nn_euclidean) == len(ex.nn_manifold) == k - 1


def test_toy_figure():
    import matplotlib
    matplotlib.use("Agg")
    from mom.companion import viz
    fig = viz.plot_toy_manifold(toy_example())
    assert len(fig.axes) >= 3


def test_toy_anchor_with_empty_pools_is_refused():
    from dataclasses import replace
    from mom.toy import TOY_MINING
    with pytest.raises(ValueError, match="empty P\\+ or P-"):
        toy_example(300, 0.08, 0, (1.0, 0.0), replace(TOY_MINING, k_graph=6, k_pos=30, k_neg=60))
