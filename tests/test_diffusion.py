"""mom.diffusion against a textbook single-vector CG and dense solves."""
import numpy as np
import pytest
import scipy.sparse as sp

from conftest import reference_cg
from mom.anchors import modes, stationary
from mom.diffusion import _topk_columns, cg_block, laplacian, manifold_topk
from mom.graph import affinity, normalize
from mom.knn import knn


def graph(n=80, k=8, seed=0, isolated=0):
    x = np.random.default_rng(seed).standard_normal((n, 5))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sims, ids = knn(x.astype(np.float32), k)
    A = affinity(sims, ids, 3.0)
    if isolated:  # append isolated nodes
        A = sp.block_diag([A, sp.csr_matrix((isolated, isolated))]).tocsr()
    return A


@pytest.mark.parametrize("iterations", [1, 3, 20])
def test_block_cg_equals_per_column_cg(iterations):
    A = graph(isolated=2)
    L = laplacian(normalize(A), 0.99)
    n = L.shape[0]
    cols = [0, 5, 17, n - 1, n - 2]  # the last two are isolated: converge after one step
    B = np.zeros((n, len(cols)))
    B[cols, np.arange(len(cols))] = 1.0
    B[:, 2] += np.linspace(0, 1, n)  # a dense right-hand side too
    X = cg_block(L, B, iterations, 1e-10)
    for j in range(len(cols)):
        np.testing.assert_allclose(X[:, j], reference_cg(L, B[:, j], iterations, 1e-10),
                                   rtol=1e-9, atol=1e-12)
    assert np.isfinite(X).all()


def test_block_cg_converges_to_dense_solve():
    A = graph(n=60)
    S = normalize(A)
    Ld = np.eye(60) - 0.9 * S.toarray()
    B = np.eye(60)[:, [1, 2, 30]]
    X = cg_block(laplacian(S, 0.9), B, 500, 1e-14)
    np.testing.assert_allclose(X, np.linalg.solve(Ld, B), atol=1e-9)


def test_zero_column_and_float32():
    L = laplacian(normalize(graph()), 0.99)
    B = np.zeros((80, 3))
    B[4, 0] = B[9, 2] = 1.0
    X64 = cg_block(L, B, 20)
    X32 = cg_block(L, B, 20, dtype=np.float32)
    assert not X64[:, 1].any()
    assert X32.dtype == np.float32
    np.testing.assert_allclose(X32, X64, atol=1e-4 * np.abs(X64).max())


def dense_topk(S, anchors, alpha, k, iterations=None):
    n = S.shape[0]
    L = laplacian(S, alpha)
    E = np.eye(n)[:, anchors]
    F = np.linalg.solve(L.toarray(), E) if iterations is None else np.stack(
        [reference_cg(L, E[:, j], iterations, 1e-10) for j in range(len(anchors))], 1)
    return F.T  # (A, N)


@pytest.mark.parametrize("solver", ["cg", "exact"])
@pytest.mark.parametrize("block_size", [1, 3, 64])
def test_manifold_topk_matches_dense(solver, block_size):
    A = graph(isolated=1)
    S = normalize(A)
    anchors = np.array([0, 3, 3, 40, 80])  # repeated anchor; 80 is isolated
    F = dense_topk(S, anchors, 0.99, 10, None if solver == "exact" else 20)
    vals, ids = manifold_topk(S, anchors, 0.99, 10, 20, 1e-10, solver, block_size, dtype=np.float64)
    assert vals.shape == ids.shape == (5, 10)
    assert np.isfinite(vals).all()
    for a in range(len(anchors)):
        np.testing.assert_allclose(vals[a], np.sort(F[a])[::-1][:10], rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(F[a, ids[a]], vals[a], rtol=1e-8, atol=1e-12)
    assert np.all(np.diff(vals, axis=1) <= 0)
    # the isolated anchor: itself with f = 1 / (1 - 0) = 1, then zeros tied, lowest ids first
    assert ids[4, 0] == 80 and vals[4, 0] == pytest.approx(1.0)
    np.testing.assert_array_equal(ids[4, 1:], np.arange(9))


@pytest.mark.parametrize("k", [3, 12, 40])
def test_manifold_topk_on_local_support_matches_dense(k):
    """A chain, so that 5 CG steps reach 11 nodes: the solve stays on that support, the
    rest of each column is exactly zero and fills the list (ties: lowest ids) when k is
    larger; against per-anchor dense CG and a stable sort."""
    n = 300
    rng = np.random.default_rng(9)
    w = rng.uniform(0.5, 1.0, n - 1)
    A = sp.diags([w, w], [-1, 1], shape=(n, n), format="csr")
    S = normalize(A)
    anchors = np.array([0, 150, 151, 299, 150])
    F = dense_topk(S, anchors, 0.99, k, iterations=5)  # (A, N)
    for backend in ("numpy", "torch"):
        vals, ids = manifold_topk(S, anchors, 0.99, k, 5, 1e-10, "cg", 2, dtype=np.float64,
                                  backend=backend)
        for a in range(len(anchors)):
            best = np.lexsort((np.arange(n), -F[a]))[:k]  # by value, then lowest id
            assert set(ids[a]) == set(best)
            np.testing.assert_allclose(vals[a], F[a, ids[a]], rtol=1e-9, atol=1e-15)
            assert np.all(np.diff(vals[a]) <= 0)


def test_topk_columns_ties_take_lowest_rows():
    rng = np.random.default_rng(5)
    for trial in range(200):
        n, b = int(rng.integers(2, 40)), int(rng.integers(1, 5))
        k = int(rng.integers(1, n))
        X = rng.integers(0, 3, (n, b)).astype(float) if trial % 2 else rng.random((n, b))
        vals, rows = _topk_columns(X, k)
        for j in range(b):  # brute force: by value descending, then row ascending
            best = np.lexsort((np.arange(n), -X[:, j]))[:k]
            assert set(rows[j]) == set(best)
            np.testing.assert_array_equal(vals[j], X[rows[j], j])


def test_topk_columns_with_labels_breaks_ties_by_label():
    rng = np.random.default_rng(6)
    for trial in range(200):
        n, b = int(rng.integers(2, 40)), int(rng.integers(1, 12))
        k = int(rng.integers(1, n + 1))
        X = rng.integers(0, 3, (n, b)).astype(float) if trial % 2 else rng.random((n, b))
        if trial % 4 == 3:  # zeros, as a truncated CG leaves them, and negatives
            X = rng.integers(-2, 3, (n, b)) * (rng.random((n, b)) < 0.3) * rng.random((n, b))
        labels = rng.permutation(n).astype(np.int64)  # row i reports labels[i]
        vals, ids = _topk_columns(X, k, labels=labels, chunk=int(rng.integers(1, 5)))
        for j in range(b):  # brute force in label order: by value descending, label ascending
            byl = np.empty(n)
            byl[labels] = X[:, j]
            best = np.lexsort((np.arange(n), -byl))[:k]
            assert set(ids[j]) == set(best)
            np.testing.assert_array_equal(vals[j], byl[ids[j]])


def test_manifold_topk_blocks_sized_by_memory(monkeypatch):
    """The block width follows the memory budget; the results do not."""
    import mom.diffusion as diff

    S = normalize(graph(n=120, seed=7))
    anchors = np.arange(0, 120, 5)
    ref = manifold_topk(S, anchors, k=15, dtype=np.float64, backend="numpy", threads=2)
    widths = []
    real = diff._cg_pieces

    def spy(L, rows, B, *a, **kw):
        widths.append(B.shape[1])
        return real(L, rows, B, *a, **kw)

    monkeypatch.setattr(diff, "_cg_pieces", spy)
    # room for 3 columns of BLOCK_ARRAYS (N,) float64 arrays per thread, 2 threads
    monkeypatch.setattr(diff, "BLOCKS_BYTES", 2 * 3 * diff.BLOCK_ARRAYS * 8 * 120)
    got = manifold_topk(S, anchors, k=15, dtype=np.float64, backend="numpy", threads=2)
    assert max(widths) == 3 and sum(widths) == anchors.size
    np.testing.assert_array_equal(got[1], ref[1])
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-12, atol=1e-15)
    widths.clear()
    monkeypatch.setattr(diff, "_available_bytes", lambda: 2 * 2 * 2 * diff.BLOCK_ARRAYS * 8 * 120)
    manifold_topk(S, anchors, k=15, dtype=np.float64, backend="numpy", threads=2)
    assert max(widths) == 2  # half the available memory, over two threads


def test_exact_solver_equals_dense_on_disconnected_graph():
    A = sp.block_diag([graph(n=30, seed=1), graph(n=40, seed=2)]).tocsr()
    S = normalize(A)
    vals, ids = manifold_topk(S, [2, 35], 0.99, 70, solver="exact", dtype=np.float64)
    F = dense_topk(S, [2, 35], 0.99, 70)
    np.testing.assert_allclose(vals, np.take_along_axis(F, ids, 1), rtol=1e-9, atol=1e-14)
    assert np.all(vals[0, 30:] == 0) and set(ids[0, :30]) == set(range(30))


def test_bad_arguments():
    S = normalize(graph())
    with pytest.raises(ValueError, match="alpha"):
        manifold_topk(S, [0], k=5, alpha=1.0)
    with pytest.raises(ValueError, match="solver"):
        manifold_topk(S, [0], k=5, solver="lu")
    with pytest.raises(ValueError, match="anchors"):
        manifold_topk(S, [80], k=5)
    with pytest.raises(ValueError, match="k=81"):
        manifold_topk(S, [0], k=81)


def test_stationary_proportional_to_degree():
    A = graph(n=100, k=10, seed=3)
    from mom.graph import largest_component
    comp = largest_component(A)
    pi = stationary(A, 1000)
    d = np.asarray(A.sum(1)).ravel()
    np.testing.assert_allclose(pi[comp], d[comp] / np.linalg.norm(d[comp]), rtol=1e-6)
    outside = np.setdiff1d(np.arange(100), comp)
    assert np.all(pi[outside] == 0)


def test_stationary_equals_the_power_iteration_written_out():
    from mom.graph import degrees, largest_component
    A = graph(n=300, k=10, seed=8)
    comp = largest_component(A)
    Ac = A[comp][:, comp]
    P = np.diag(1.0 / degrees(Ac)) @ Ac.toarray()  # dense random walk D^-1 A
    r = np.full(comp.size, 1.0 / comp.size)
    for _ in range(50):
        r = r @ P
        r /= np.linalg.norm(r)
    pi = stationary(A, 50)
    np.testing.assert_allclose(pi[comp], r, rtol=1e-12, atol=0)
    assert np.all(np.delete(pi, comp) == 0)


def test_stationary_on_disconnected_graph_uses_largest_component():
    A = sp.block_diag([graph(n=20, seed=1), graph(n=50, seed=2), sp.csr_matrix((3, 3))]).tocsr()
    pi = stationary(A, 300)
    assert np.isfinite(pi).all() and np.all(pi[:20] == 0) and np.all(pi[70:] == 0)
    assert np.linalg.norm(pi) == pytest.approx(1.0)


def test_modes_strict_local_maxima():
    # path 0-1-2-3-4 and an isolated node 5
    rows, cols = [0, 1, 1, 2, 2, 3, 3, 4], [1, 0, 2, 1, 3, 2, 4, 3]
    A = sp.csr_matrix((np.ones(8), (rows, cols)), shape=(6, 6))
    pi = np.array([0.5, 0.2, 0.3, 0.3, 0.1, 0.9])
    # 0 beats 1; 2 and 3 tie (not strict); 5 has no neighbour
    np.testing.assert_array_equal(modes(A, pi), [0])
    pi = np.array([0.1, 0.2, 0.1, 0.4, 0.1, 0.0])
    np.testing.assert_array_equal(modes(A, pi), [3, 1])  # sorted by value


def test_threads_do_not_change_the_result():
    S = normalize(graph(n=200, seed=4))
    anchors = np.arange(0, 200, 3)
    one = manifold_topk(S, anchors, k=20, block_size=4, threads=1)
    many = manifold_topk(S, anchors, k=20, block_size=4, threads=3)
    np.testing.assert_array_equal(one[1], many[1])
    np.testing.assert_array_equal(one[0], many[0])


torch = pytest.importorskip("torch")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("iterations", [1, 3, 20])
def test_torch_block_cg_equals_per_column_cg_and_numpy(iterations, device):
    A = graph(isolated=2)
    L = laplacian(normalize(A), 0.99)
    n = L.shape[0]
    cols = [0, 5, 17, n - 1, n - 2]
    B = np.zeros((n, len(cols)))
    B[cols, np.arange(len(cols))] = 1.0
    B[:, 2] += np.linspace(0, 1, n)
    Xt = cg_block(L, B, iterations, 1e-10, backend="torch", device=device)
    assert isinstance(Xt, np.ndarray) and Xt.dtype == np.float64
    for j in range(len(cols)):
        np.testing.assert_allclose(Xt[:, j], reference_cg(L, B[:, j], iterations, 1e-10),
                                   rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(Xt, cg_block(L, B, iterations, 1e-10), rtol=1e-12, atol=1e-15)
    X32 = cg_block(L, B, iterations, 1e-10, np.float32, backend="torch", device=device)
    assert X32.dtype == np.float32
    np.testing.assert_allclose(X32, Xt, atol=1e-4 * np.abs(Xt).max())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("block_size,threads", [(1, 1), (3, 2), (64, 1)])
def test_manifold_topk_torch_matches_numpy_and_dense(block_size, threads, device):
    S = normalize(graph(isolated=1))
    anchors = np.array([0, 3, 3, 40, 80])
    F = dense_topk(S, anchors, 0.99, 10, 20)
    before = torch.get_num_threads()
    vals, ids = manifold_topk(S, anchors, 0.99, 10, 20, 1e-10, "cg", block_size, dtype=np.float64,
                              threads=threads, backend="torch", device=device)
    assert torch.get_num_threads() == before  # restored after the call
    nv, ni = manifold_topk(S, anchors, 0.99, 10, 20, 1e-10, "cg", block_size, dtype=np.float64,
                           backend="numpy")
    np.testing.assert_array_equal(ids, ni)
    np.testing.assert_allclose(vals, nv, rtol=1e-12, atol=1e-15)
    for a in range(len(anchors)):
        np.testing.assert_allclose(vals[a], np.sort(F[a])[::-1][:10], rtol=1e-8, atol=1e-12)
    assert ids[4, 0] == 80 and vals[4, 0] == pytest.approx(1.0)
    np.testing.assert_array_equal(ids[4, 1:], np.arange(9))


def test_bad_backend_and_auto_device():
    S = normalize(graph())
    auto = manifold_topk(S, [0, 7], k=5, backend="torch", device="auto")  # CUDA where available
    np.testing.assert_array_equal(auto[1], manifold_topk(S, [0, 7], k=5)[1])
    with pytest.raises(ValueError, match="backend"):
        manifold_topk(S, [0], k=5, backend="jax")
    with pytest.raises(ValueError, match="backend"):
        cg_block(laplacian(S, 0.99), np.eye(80)[:, :1], backend="cupy")


def test_manifold_topk_defaults_are_the_mining_configs():
    import inspect

    from mom.config import MiningConfig
    d = {k: v.default for k, v in inspect.signature(manifold_topk).parameters.items()}
    m = MiningConfig()
    assert (d["alpha"], d["iterations"], d["tol"], d["solver"], d["block_size"], d["backend"]) == \
        (m.alpha, m.cg_iterations, m.cg_tol, m.solver, m.block_size, m.cg_backend)
    assert np.dtype(d["dtype"]) == np.dtype(m.cg_dtype)
