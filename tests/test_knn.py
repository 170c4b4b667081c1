"""mom.knn against brute-force numpy neighbours (ties compared as sets)."""
import numpy as np
import pytest

from conftest import unit_rows
from mom.knn import check_features, knn


def brute_force(x, k):
    sims = x.astype(np.float64) @ x.T.astype(np.float64)  # (N, N)
    np.fill_diagonal(sims, np.inf)  # self first
    ids = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return ids


def assert_same_neighbours(x, sims, ids, k, tol=1e-5):
    ref = brute_force(x, k)
    full = x.astype(np.float64) @ x.T.astype(np.float64)
    for i in range(x.shape[0]):
        assert ids[i, 0] == i
        # similarities agree with the brute-force ones at every rank
        ref_s = np.sort(full[i, ref[i, 1:]])[::-1]
        np.testing.assert_allclose(sims[i, 1:], ref_s, atol=tol)
        # neighbour sets agree except for members tied at the boundary
        kth = ref_s[-1] if k > 1 else np.inf
        a = {j for j in ids[i] if full[i, j] > kth + tol}
        b = {j for j in ref[i] if full[i, j] > kth + tol}
        assert a == b


@pytest.mark.parametrize("k", [1, 5, 20])
def test_flat_matches_brute_force(k):
    x = unit_rows(200, 16)
    sims, ids = knn(x, k)
    assert sims.shape == ids.shape == (200, k)
    assert sims.dtype == np.float32 and ids.dtype == np.int64
    assert np.all(np.diff(sims[:, 1:], axis=1) <= 1e-6)
    assert_same_neighbours(x, sims, ids, k)


def test_ties_compared_as_sets():
    # points on a grid of angles make many exactly tied similarities
    ang = np.repeat(np.arange(0, 2 * np.pi, np.pi / 4), 1)
    x = np.stack([np.cos(ang), np.sin(ang)], 1).astype(np.float32)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims, ids = knn(x, 3)
    assert_same_neighbours(x, sims, ids, 3)


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_approximate_indexes_close_to_exact(index):
    x = unit_rows(2000, 8, seed=1)
    _, exact = knn(x, 10)
    _, approx = knn(x, 10, index=index)
    assert np.all(approx[:, 0] == np.arange(2000))
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall > 0.9


def test_rows_subset_and_k_equal_n():
    x = unit_rows(30, 4)
    sims, ids = knn(x, 30)
    assert all(sorted(r) == list(range(30)) for r in ids)
    s2, i2 = knn(x, 5, rows=[3, 7])
    np.testing.assert_array_equal(i2[:, 0], [3, 7])
    np.testing.assert_allclose(s2, sims[[3, 7], :5], atol=1e-6)


def test_duplicate_rows_keep_self_first():
    x = unit_rows(20, 4)
    x = np.concatenate([x, np.repeat(x[:1], 10, axis=0)])  # row 0 appears 11 times
    sims, ids = knn(x, 5)
    np.testing.assert_array_equal(ids[:, 0], np.arange(30))
    assert np.isfinite(sims).all()
    for i in [0] + list(range(20, 30)):  # the other copies fill the rest of the list
        assert np.allclose(sims[i], 1.0, atol=1e-6)


def test_float64_is_converted():
    x = unit_rows(50, 8).astype(np.float64)
    sims, ids = knn(x, 4)
    assert sims.dtype == np.float32
    assert check_features(x).dtype == np.float32


def test_check_features_without_norm_check():
    x = 3 * unit_rows(10, 4)
    x[0] = 0
    assert check_features(x, norm_tol=None).dtype == np.float32  # any finite rows
    x[1, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        check_features(x, norm_tol=None)


@pytest.mark.parametrize("bad, match", [
    (np.ones((5, 3), np.int64), "floating-point"),
    (np.ones((5, 3), np.complex64), "floating-point"),
    (np.ones(5, np.float32), "2-D"),
    (np.zeros((0, 3), np.float32), "empty"),
    (np.array([[1, 0], [np.nan, 0]], np.float32), "NaN or inf"),
    (np.array([[1, 0], [0, 0]], np.float32), "all-zero"),
    (np.array([[1, 0], [0, 2]], np.float32), "not L2-normalised"),
])
def test_bad_features_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        knn(bad, 1)


def test_k_out_of_range_and_unknown_index():
    x = unit_rows(10, 4)
    with pytest.raises(ValueError, match="k=11"):
        knn(x, 11)
    with pytest.raises(ValueError, match="k=0"):
        knn(x, 0)
    with pytest.raises(ValueError, match="unknown"):
        knn(x, 2, index="lsh")


def test_exclude_self_removes_the_query_by_index():
    x = unit_rows(40, 6, seed=2)
    x = np.concatenate([x, np.repeat(x[:1], 6, axis=0)])  # row 0 appears 7 times
    sims, ids = knn(x, 5, exclude_self=True)
    assert ids.shape == (46, 5)
    assert not (ids == np.arange(46)[:, None]).any()  # never the query itself
    for i in [0] + list(range(40, 46)):  # the copies are each other's nearest
        assert set(ids[i]) <= {0, *range(40, 46)} and np.allclose(sims[i], 1.0, atol=1e-6)
    self_first = knn(x[:40], 6)[1]
    np.testing.assert_array_equal(knn(x[:40], 5, exclude_self=True)[1], self_first[:, 1:])
    with pytest.raises(ValueError, match="other points"):
        knn(x, 46, exclude_self=True)


def test_dense_is_a_stable_sort_of_the_products():
    x = np.repeat(unit_rows(10, 3, seed=3), 3, axis=0)  # every row three times: ties
    for r in (0, 4, 29):
        s = x @ x[r]
        ref = [j for j in np.argsort(-s, kind="stable") if j != r]  # ties lower index first
        sims, ids = knn(x, 7, index="dense", rows=[r], exclude_self=True)
        assert ids[0].tolist() == ref[:7]
        np.testing.assert_array_equal(sims[0], s[ref[:7]])
        _, with_self = knn(x, 7, index="dense", rows=[r])
        assert with_self[0].tolist() == [r] + ref[:6]
    # the same sets as faiss where nothing is tied
    y = unit_rows(60, 5, seed=4)
    np.testing.assert_array_equal(knn(y, 8, index="dense")[1], knn(y, 8)[1])
