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


# ---- indexes that hold the features by reference (the million-row path) -------------

def set_recall(a, b):
    return np.mean([len(set(p) & set(q)) / len(q) for p, q in zip(a, b)])


def test_flat_index_is_faiss_flat_without_a_copy():
    import faiss

    from mom.knn import FlatIndex, build_index, search
    x = np.repeat(unit_rows(100, 6, seed=5), 2, axis=0)  # every row twice: ties
    idx = build_index(x, "flat")
    assert isinstance(idx, FlatIndex) and np.shares_memory(idx.features, x)
    ref = faiss.IndexFlatIP(6)
    ref.add(x)
    for k in (3, 40):  # below and above faiss's heap / reservoir switch at k = 100
        d, i = idx.search(x, k)
        rd, ri = ref.search(x, k)
        np.testing.assert_array_equal(i, ri)  # same code: same neighbours and tie order
        np.testing.assert_array_equal(d, rd)
    s, i = search(idx, x, 5, rows=[3, 150])
    assert i[:, 0].tolist() == [3, 150]


@pytest.mark.parametrize("nprobe", [1, 3])
def test_ivf_index_equals_faiss_ivf_flat(nprobe):
    """The list-by-list search against faiss's own IndexIVFFlat on the same centroids:
    the same candidates, so the same neighbours (ties as sets) and similarities."""
    import faiss

    from conftest import clustered
    from mom.knn import IVFIndex, build_index, search
    x, _ = clustered(classes=12, dim=16, spread=0.6, n=1500, seed=3)
    idx = build_index(x, "ivf", nlist=20, nprobe=nprobe, seed=1)
    assert isinstance(idx, IVFIndex) and np.shares_memory(idx.features, x)
    ref = faiss.IndexIVFFlat(idx.quantizer, 16, 20, faiss.METRIC_INNER_PRODUCT)
    ref.add(x)
    ref.nprobe = nprobe
    for k in (1, 10):
        d, i = idx.search_rows(np.arange(1500), k)
        rd, ri = ref.search(x, k)
        np.testing.assert_allclose(d, rd, atol=1e-6)
        assert set_recall(i, ri) == 1.0
    # a subset of rows gets what those rows get in the whole search
    sims, ids = search(idx, x, 8)
    s2, i2 = search(idx, x, 8, rows=[7, 1499, 0])
    np.testing.assert_array_equal(i2, ids[[7, 1499, 0]])
    np.testing.assert_array_equal(s2, sims[[7, 1499, 0]])
    assert np.all(ids[:, 0] == np.arange(1500))
    # threads split the queries; a query's result does not depend on them
    for threads in (1, 3):
        d3, i3 = idx.search_rows(np.arange(1500), 10, threads=threads)
        np.testing.assert_array_equal(i3, idx.search_rows(np.arange(1500), 10, threads=2)[1])
    # nprobe raised after building: the lists are searched again, still faiss's candidates
    idx.nprobe = ref.nprobe = nprobe + 2
    assert set_recall(idx.search_rows(np.arange(1500), 10)[1], ref.search(x, 10)[1]) == 1.0


def test_ivf_probing_every_list_is_exact():
    from mom.knn import build_index, search
    x = unit_rows(400, 8, seed=6)
    idx = build_index(x, "ivf", nlist=10, nprobe=10)
    sims, ids = search(idx, x, 12)
    assert_same_neighbours(x, sims, ids, 12)


def test_ivf_with_fewer_candidates_than_k_leaves_empty_slots():
    from mom.knn import build_index, search
    x = unit_rows(400, 8, seed=7)
    idx = build_index(x, "ivf", nlist=10, nprobe=1)
    sizes = np.diff(idx.offsets)
    k = int(sizes.max()) + 5  # more than any single list holds
    sims, ids = search(idx, x, k)
    assert np.all(ids[:, 0] == np.arange(400))
    filled = (ids >= 0).sum(axis=1)
    np.testing.assert_array_equal(filled, sizes[idx.probes(np.arange(400))[:, 0]])
    assert np.all(np.isneginf(sims[ids < 0]))


def test_memory_mapped_features_are_not_copied(tmp_path, monkeypatch):
    import mom.knn as knn_mod
    x = unit_rows(300, 8, seed=8)
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert np.shares_memory(check_features(mm), mm)
    np.testing.assert_array_equal(knn(mm, 6)[1], knn(x, 6)[1])
    # checked in chunks: the first bad row is still found and counted across chunks
    monkeypatch.setattr(knn_mod, "CHECK_ROWS", 64)
    y = x.copy()
    y[[70, 200]] *= 2
    with pytest.raises(ValueError, match=r"2 row\(s\) are not L2-normalised \(row 70"):
        check_features(y)
    y[150, 3] = np.nan
    with pytest.raises(ValueError, match=r"1 row\(s\) contain NaN or inf \(first: row 150\)"):
        check_features(y)
