"""mom.graph against dense loops written out by hand."""
import numpy as np
import scipy.sparse as sp

from conftest import unit_rows
from mom.graph import affinity, largest_component, normalize
from mom.knn import knn


def dense_affinity(x, ids, gamma):
    n = x.shape[0]
    nn = [set(r) for r in ids]
    A = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j and j in nn[i] and i in nn[j]:
                A[i, j] = max(0.0, float(x[i] @ x[j])) ** gamma
    return A


def test_affinity_equals_dense_mutual_definition():
    x = unit_rows(60, 3)
    sims, ids = knn(x, 6)
    A = affinity(sims, ids, 3.0)
    ref = dense_affinity(x, ids, 3.0)
    np.testing.assert_allclose(A.toarray(), ref, atol=1e-5)
    assert (A != A.T).nnz == 0  # exactly symmetric
    assert A.diagonal().sum() == 0


def test_negative_similarities_give_no_edge():
    x = np.array([[1, 0], [-1, 0], [0.6, 0.8]], np.float32)
    sims, ids = knn(x, 3)  # everyone is everyone's neighbour
    A = affinity(sims, ids, 2.0).toarray()
    assert A[0, 1] == 0 and A[1, 0] == 0
    np.testing.assert_allclose(A[0, 2], 0.6 ** 2, rtol=1e-5)


def test_empty_slots_are_ignored():
    sims = np.array([[1.0, 0.5], [1.0, 0.5], [1.0, -np.inf]])
    ids = np.array([[0, 1], [1, 0], [2, -1]])
    A = affinity(sims, ids, 1.0)
    np.testing.assert_allclose(A.toarray(), [[0, .5, 0], [.5, 0, 0], [0, 0, 0]])


def test_normalize_dense_and_isolated_nodes():
    A = sp.csr_matrix(np.array([[0, 2, 1, 0], [2, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], float))
    S = normalize(A).toarray()
    d = A.toarray().sum(1)
    ref = np.zeros((4, 4))
    for i in range(4):
        for j in range(4):
            if d[i] > 0 and d[j] > 0:
                ref[i, j] = A[i, j] / np.sqrt(d[i] * d[j])
    np.testing.assert_allclose(S, ref)
    assert np.isfinite(S).all() and not S[3].any()


def test_largest_component():
    A = sp.csr_matrix((np.ones(6), ([0, 1, 3, 4, 4, 5], [1, 0, 4, 3, 5, 4])), shape=(7, 7))
    np.testing.assert_array_equal(largest_component(A), [3, 4, 5])
    assert largest_component(sp.csr_matrix((3, 3))).tolist() == [0]


def scipy_affinity(sims, ids, gamma):
    """The mutual minimum written with scipy's sparse operations (no chunks, no keys)."""
    n, k = ids.shape
    rows = np.repeat(np.arange(n), k)
    cols = ids.ravel()
    s = sims.ravel().astype(np.float64)
    keep = (cols >= 0) & (cols != rows) & np.isfinite(s) & (s > 0)
    W = sp.csr_matrix((s[keep] ** gamma, (rows[keep], cols[keep])), shape=(n, n))
    W.sum_duplicates()
    A = W.minimum(W.T).tocsr()
    A.eliminate_zeros()
    return A


def test_chunked_affinity_equals_scipy_minimum(monkeypatch):
    import mom.graph as graph
    rng = np.random.default_rng(3)
    n, k = 500, 12
    base = (np.arange(n) // 25) * 25  # neighbours inside blocks of 25: many mutual pairs
    ids = (base[:, None] + rng.integers(0, 25, (n, k))) % n
    ids[:, 0] = np.arange(n)
    ids[rng.random((n, k)) < 0.05] = -1  # empty slots
    ids[7, 3] = ids[7, 4] = 12  # a neighbour listed twice
    sims = rng.uniform(-0.2, 1.0, (n, k)).astype(np.float32)
    sims[3, 5] = np.nan
    ref = scipy_affinity(sims, ids, 3.0)
    assert ref.nnz > 1000  # not vacuous
    for chunk in (7, 64, 10_000):
        monkeypatch.setattr(graph, "CHUNK_ROWS", chunk)
        A = affinity(sims, ids, 3.0)
        assert A.has_sorted_indices and (A != A.T).nnz == 0
        np.testing.assert_array_equal(A.indptr, ref.indptr)
        np.testing.assert_array_equal(A.indices, ref.indices)
        # equal but for the order in which a thrice-listed neighbour's weights are summed
        np.testing.assert_allclose(A.data, ref.data, rtol=1e-15, atol=0)


def test_affinity_without_edges():
    ids = np.arange(5)[:, None].repeat(2, axis=1)  # only the point itself
    A = affinity(np.ones((5, 2), np.float32), ids, 3.0)
    assert A.shape == (5, 5) and A.nnz == 0
