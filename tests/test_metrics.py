"""mom.metrics: hand-computed tables on toy data, brute-force references, errors."""
import numpy as np
import pytest

from conftest import unit_rows
from mom import metrics as ev
from mom.config import EvalConfig


def circle(degrees):
    """Unit vectors in 2-D at the given angles: inner-product order = angular order."""
    a = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    return np.c_[np.cos(a), np.sin(a)].astype(np.float32)  # (N, 2)


def brute_recall(x, labels, ks):
    """Reference: dense similarity matrix, self masked by index, full argsort."""
    sims = x.astype(np.float64) @ x.T.astype(np.float64)
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1)
    return {k: 100.0 * np.mean([(labels[order[i, :k]] == labels[i]).any()
                                for i in range(len(x))]) for k in ks}


# ----------------------------------------------------------------- Recall@K
def test_recall_hand_computed_table():
    # angles 0,20,50,95,180,200; neighbour order by angular gap:
    # p0: 1,2,3,5,4  p1: 0,2,3,4,5  p2: 1,3,0,4,5  p3: 2,1,4,0,5  p4: 5,3,2,1,0  p5: 4,3,2,0,1
    x = circle([0, 20, 50, 95, 180, 200])
    labels = np.array([0, 0, 1, 1, 0, 1])
    # R@1 hits: p0 p1 p3 -> 3/6; R@2 adds p2 (via 3) and p5 (via 3) -> 5/6; R@4: p4 reaches 1
    r = ev.recall_at_k(x, labels, ks=(1, 2, 4))
    assert r == pytest.approx({1: 50.0, 2: 500.0 / 6, 4: 100.0})


def test_recall_duplicate_of_query_counts_as_neighbour():
    # x0 and x1 are identical but of different classes; the query is removed by
    # index, so each one's nearest neighbour is the other (a miss), never itself.
    x = circle([0, 0, 10, 25, 180, 190])
    labels = np.array([0, 1, 2, 2, 3, 3])
    # q0 -> 1 miss, q1 -> 0 miss, q2 -> 0/1 (10 deg, vs 15 to x3) miss, q3 -> 2 hit, q4, q5 hit
    assert ev.recall_at_k(x, labels, ks=(1,))[1] == pytest.approx(50.0)


def test_recall_many_duplicates_query_not_among_returned():
    # 6 identical points: faiss may return other copies before the query itself
    x = np.vstack([circle([30] * 6), circle([200] * 3)])
    labels = np.array([0] * 6 + [1] * 3)
    assert ev.recall_at_k(x, labels, ks=(1, 2)) == {1: 100.0, 2: 100.0}
    labels2 = np.array([0, 1, 2, 3, 4, 5, 6, 6, 6])  # copies of other classes only
    assert ev.recall_at_k(x, labels2, ks=(1,))[1] == pytest.approx(300.0 / 9)


@pytest.mark.parametrize("n,d,n_cls", [(50, 4, 3), (300, 8, 10)])
def test_recall_matches_dense_reference(n, d, n_cls):
    rng = np.random.default_rng(n)
    x = unit_rows(n, d, rng)
    labels = rng.integers(0, n_cls, n)
    ks = (1, 2, 4, 8)
    assert ev.recall_at_k(x, labels, ks) == pytest.approx(brute_recall(x, labels, ks))


def test_recall_blocks_do_not_change_neighbours():
    rng = np.random.default_rng(1)
    x = unit_rows(97, 5, rng)
    full = ev._nearest_others(x, 5, block_size=4096)
    assert np.array_equal(ev._nearest_others(x, 5, block_size=7), full)
    assert not (full == np.arange(97)[:, None]).any()  # never the query itself


# ----------------------------------------------------------------- NMI
def blobs(rng, sizes, d=8, spread=0.01):
    centres = np.eye(d)[: len(sizes)]
    x = np.vstack([c + spread * rng.standard_normal((s, d)) for c, s in zip(centres, sizes)])
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def test_nmi_perfect_clustering_is_100():
    x, labels = blobs(np.random.default_rng(0), [20, 15, 25, 10])
    assert ev.nmi(x, labels, seed=0) == pytest.approx(100.0)


def test_nmi_invariant_to_label_permutation_and_deterministic():
    rng = np.random.default_rng(3)
    x = unit_rows(120, 6, rng)
    labels = rng.integers(0, 4, 120)
    relabel = np.array([17, 3, 42, 8])[labels]  # a bijection onto other ids
    a = ev.nmi(x, labels, seed=2)
    assert 0.0 <= a < 100.0
    assert ev.nmi(x, relabel, seed=2) == pytest.approx(a, abs=1e-10)
    assert ev.nmi(x, labels, seed=2) == a  # same seed, same value


def test_nmi_runs_mean_std():
    rng = np.random.default_rng(4)
    x = unit_rows(80, 5, rng)
    labels = rng.integers(0, 3, 80)
    mean, std, values = ev.nmi_runs(x, labels, seeds=(0, 1, 2))
    assert values == [ev.nmi(x, labels, seed=s) for s in (0, 1, 2)]
    assert mean == pytest.approx(np.mean(values))
    assert std == pytest.approx(np.std(values, ddof=1))
    assert ev.nmi_runs(x, labels, seeds=(5,))[1] == 0.0


# ----------------------------------------------------------------- AP / mAP
def test_average_precision_with_junk_by_hand():
    # junk 9 removed -> [5, 3, 1, 7, 2]; positives at ranks 1, 2, 4 (n_pos = 3):
    # (0 + 1/2)/2 + (1/2 + 2/3)/2 + (2/4 + 3/5)/2 = 83/60, divided by 3
    ap = ev.average_precision([5, 3, 9, 1, 7, 2], positives=[3, 1, 2], junk=[9])
    assert ap == pytest.approx(83.0 / 180.0)


def test_average_precision_edge_cases():
    assert ev.average_precision([4, 2, 0, 1], [4, 2]) == pytest.approx(1.0)
    # a positive never retrieved counts against AP: one of two found at rank 0
    assert ev.average_precision([4, 0, 1], [4, 9]) == pytest.approx(0.5)
    # junk ahead of the positive does not hurt
    assert ev.average_precision([7, 8, 3], [3], junk=[7, 8]) == pytest.approx(1.0)
    # without junk the positive sits at rank 2: (0/2 + 1/3) / 2
    assert ev.average_precision([7, 8, 3], [3]) == pytest.approx(1 / 6)


def hand_gnd():
    return [{"easy": [0, 3], "hard": [1], "junk": [5]},
            {"easy": [], "hard": [2], "junk": []}]


def test_revisited_map_by_hand():
    ranks = np.array([[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]])  # (n_queries, n_db)
    # q0 easy: junk {5,1} -> [0,2,3,4], pos ranks 0,2 -> (1 + 7/12)/2 = 19/24
    # q0 medium: [0,1,2,3,4], pos ranks 0,1,3 -> (1 + 1 + 17/24)/3 = 65/72
    # q0 hard: junk {5,0,3} -> [1,2,4], pos rank 0 -> 1
    # q1: easy has no positive (skipped); medium = hard: pos 2 at rank 3 -> (0 + 1/4)/2 = 1/8
    m = ev.revisited_map(ranks, hand_gnd())
    assert m["easy"] == pytest.approx(100 * 19 / 24)
    assert m["medium"] == pytest.approx(100 * (65 / 72 + 1 / 8) / 2)
    assert m["hard"] == pytest.approx(100 * (1 + 1 / 8) / 2)
    # classic reading of revisited gnd = medium
    assert ev.mean_average_precision(ranks, hand_gnd()) == pytest.approx(m["medium"])


def test_classic_map_by_hand():
    gnd = [{"good": [2], "ok": [0], "junk": [1]}, {"good": [], "ok": [], "junk": [0]}]
    ranks = np.array([[1, 2, 3, 0], [0, 1, 2, 3]])
    # q0: junk 1 removed -> [2,3,0], pos ranks 0, 2 -> (1 + (1/2 + 2/3)/2)/2 = 19/24; q1 skipped
    assert ev.mean_average_precision(ranks, gnd) == pytest.approx(100 * 19 / 24)


def test_rank_database_matches_argsort_and_feeds_map():
    rng = np.random.default_rng(5)
    q, db = unit_rows(7, 6, rng), unit_rows(40, 6, rng)
    ranks = ev.rank_database(q, db, block_size=3)
    assert ranks.shape == (7, 40)
    ref = np.argsort(-(q.astype(np.float64) @ db.T.astype(np.float64)), axis=1)
    assert np.array_equal(ranks, ref)
    gnd = [{"ok": [int(r[0])], "good": [], "junk": []} for r in ranks]
    assert ev.mean_average_precision(ranks, gnd) == pytest.approx(100.0)


# ----------------------------------------------------------------- MAP@R
def test_map_at_r_hand_computed():
    # 1-D points on the circle; class 0 = {0, 1, 2}, class 1 = {3, 4}
    x = circle([0, 10, 50, 25, 90])
    labels = [0, 0, 0, 1, 1]
    # query 0: R=2, neighbours by angle 1(10) 3(25) -> rel 1,0: AP = (1/1)/2 = .5, RP = .5
    # query 1: R=2, 0(10) 3(15) -> rel 1,0 -> .5, .5
    # query 2: R=2, 3(25) 1(40) -> rel 0,1: AP = (1/2)/2 = .25, RP = .5
    # query 3: R=1, 1(15) -> rel 0: AP 0, RP 0
    # query 4: R=1, 2(40) -> rel 0: AP 0, RP 0
    out = ev.map_at_r(x, labels)
    assert out["map@r"] == pytest.approx(100 * (0.5 + 0.5 + 0.25) / 5)
    assert out["r_precision"] == pytest.approx(100 * 1.5 / 5)


def test_map_at_r_matches_brute_force():
    rng = np.random.default_rng(3)
    x = unit_rows(60, 5, rng)
    labels = rng.integers(0, 4, size=60)
    sims = x @ x.T
    aps, rps = [], []
    for q in range(60):
        r = int((labels == labels[q]).sum()) - 1
        order = [j for j in np.argsort(-sims[q], kind="stable") if j != q][:r]
        rel = labels[order] == labels[q]
        prec = np.cumsum(rel) / np.arange(1, r + 1)
        aps.append((prec * rel).sum() / r)
        rps.append(rel.mean())
    out = ev.map_at_r(x, labels)
    assert out["map@r"] == pytest.approx(100 * np.mean(aps), abs=1e-9)
    assert out["r_precision"] == pytest.approx(100 * np.mean(rps), abs=1e-9)


def test_map_at_r_perfect_and_singletons_left_out():
    x, labels = blobs(np.random.default_rng(1), [5, 5, 1], spread=0.001)
    out = ev.map_at_r(x, labels)
    assert out == {"map@r": pytest.approx(100.0), "r_precision": pytest.approx(100.0)}


# ----------------------------------------------------------------- all at once
def test_evaluate_embeddings_keys_and_values():
    x, labels = blobs(np.random.default_rng(6), [12, 12, 12], spread=0.3)
    out = ev.evaluate_embeddings(x, labels, EvalConfig(ks=(1, 4), nmi_seeds=(3, 0)))
    assert set(out) == {"recall@1", "recall@4", "map@r", "r_precision", "nmi", "nmi_std",
                        "nmi_runs", "nmi_seed0"}
    assert out["map@r"] == ev.map_at_r(x, labels)["map@r"]
    assert out["recall@1"] == ev.recall_at_k(x, labels, (1,))[1]
    assert out["nmi_runs"] == [ev.nmi(x, labels, 3), ev.nmi(x, labels, 0)]
    assert out["nmi_seed0"] == out["nmi_runs"][1]
    assert ev.evaluate_embeddings(x, labels, EvalConfig(nmi_seeds=(1,)))["nmi_seed0"] == \
        ev.nmi(x, labels, 0)


# ----------------------------------------------------------------- errors
@pytest.mark.parametrize("emb,labels,match", [
    (np.zeros(6, np.float32), [0, 1] * 3, "2-D"),
    (np.ones((6, 2), np.int64), [0, 1] * 3, "float"),
    (np.full((6, 2), np.nan, np.float32), [0, 1] * 3, "NaN"),
    (3 * circle([0, 10, 20, 30, 40, 50]), [0, 1] * 3, "L2-normalised"),
    (circle([0, 10, 20, 30, 40, 50]), [0, 1] * 2, "labels"),
    (circle([0, 10, 20, 30, 40, 50]), [0] * 6, "2 classes"),
    (circle([0, 10, 20, 30, 40, 50]), [0, 1, -1, 0, 1, 0], "unknown"),
    (circle([0, 10, 20, 30, 40, 50]), [0, 1] * 3, "more than 8"),
])
def test_recall_rejects_bad_input(emb, labels, match):
    with pytest.raises(ValueError, match=match):
        ev.recall_at_k(emb, np.asarray(labels), ks=(1, 2, 4, 8))


def test_map_rejects_bad_input():
    ranks = np.array([[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]])
    with pytest.raises(ValueError, match="ranks.T"):
        ev.revisited_map(ranks.T, hand_gnd())  # (n_db, n_queries)
    with pytest.raises(ValueError, match="integer"):
        ev.mean_average_precision(ranks.astype(float), hand_gnd())
    with pytest.raises(ValueError, match="lacks"):
        ev.revisited_map(ranks, [{"good": [1], "junk": []}] * 2)
    with pytest.raises(ValueError, match="more than once"):
        ev.average_precision([1, 2, 1], [2])
    with pytest.raises(ValueError, match="no positives"):
        ev.average_precision([1, 2, 3], [])
    with pytest.raises(ValueError, match="dim"):
        ev.rank_database(circle([0, 1]), np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match="unknown"):
        ev.nmi(circle([0, 10, 20, 30]), np.array([0, 1, 1, -1]))
