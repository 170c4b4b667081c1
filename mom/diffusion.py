"""Manifold similarity: the truncated CG solve of the diffusion (docs/method.md §4).

Linear algebra only; the anchors (stationary distribution, modes) are
:mod:`mom.anchors`.

f(r) solves (I - alpha S) f = e_r. The faithful solver is conjugate gradient
from 0, truncated at ``iterations`` steps (tolerance ``tol`` on the relative
residual). Many anchors are solved at once as one block of right-hand sides:
the columns are independent CG runs that share each sparse x dense product, and
a column stops updating once it has converged. Only the top ``k`` entries of
each f(r) are kept, so memory stays O(N * block + A * k), never N x N.
The block CG runs on torch (default, backend="torch") or numpy/scipy: torch's
sparse CSR product on the CPU or on a GPU (device="cuda").
"""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee
from scipy.sparse.linalg import splu
from tqdm.auto import tqdm

from .config import MiningConfig as _M


__all__ = ["laplacian", "cg_block", "exact_block", "manifold_topk", "check_backend", "BACKENDS"]

BACKENDS = ("torch", "numpy")  # block CG kernels (MiningConfig.cg_backend)


def check_backend(backend: str) -> str:
    """``backend`` if it names CG kernels (``BACKENDS``), else ValueError: the one check."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'numpy' or 'torch', got {backend!r}")
    return backend

# working arrays of one block (b, x, r, p, q, scratch) stay below this many bytes
BLOCK_BYTES = 1 << 30
# the CPU blocks running at once hold at most this many bytes together, or half the memory
# available when that is less (at N = 1 000 000 float32 and 2 threads: 32 columns a block)
BLOCKS_BYTES = 2 << 30
# (N, b) arrays one block holds at its peak: the right-hand sides, the CG's x, r, p, q and
# the product's scratch, the assembled result, and one spare
BLOCK_ARRAYS = 8
# one (N, b) array of at most this many bytes, so that the block stays in cache: the
# sparse x block product is bound by reading random rows of the block, and a block
# that spills out of cache costs more per column (benchmarks/bench_mining.py) ...
CACHE_BYTES = 4 << 20
# ... but never fewer columns than this: the index of each stored entry of S is read
# once per block, so a narrow block pays that read for few columns
MIN_BLOCK = 64
# torch's sparse product does best on narrower blocks: one (N, b) array of about
# 1.5 MiB (64 columns float32, 32 float64) per block
TORCH_CACHE_BYTES = 3 << 19
TORCH_MIN_BLOCK = 32


def laplacian(S: sp.spmatrix, alpha: float) -> sp.csr_matrix:
    """L = I - alpha S (csr float64); symmetric positive definite for 0 <= alpha < 1."""
    if not 0 <= alpha < 1:
        raise ValueError(f"alpha must lie in [0, 1) so that I - alpha S is positive definite, got {alpha}")
    n = S.shape[0]
    L = (sp.identity(n, format="csr") - alpha * S).tocsr()
    L.sort_indices()
    return L


def cg_block(L: sp.spmatrix, B: np.ndarray, iterations: int = 20, tol: float = 1e-10,
             dtype=np.float64, backend: str = "numpy", device: str = "cpu") -> np.ndarray:
    """Truncated CG for L X = B, column by column, all columns in one pass.

    Starts from X = 0 and runs at most ``iterations`` steps; column j stops
    updating once ||r_j|| <= tol * ||b_j||. Each column follows exactly the
    single-vector CG recurrence (per-column alpha and beta). B (N, b) -> X (N, b)
    in ``dtype`` (float64, or float32 for half the memory traffic).
    ``backend`` "numpy" (scipy sparse products) or "torch" (torch sparse CSR
    products and fused in-place updates, on ``device``); same recurrence, same
    numbers up to rounding, X returned as numpy either way.

    Rows no iterate can have reached yet are skipped: after t steps the
    iterates live on the t-hop neighbourhood of B's nonzero rows, so early
    steps (and every step, on a graph whose diameter exceeds ``iterations``)
    work on that neighbourhood only. Skipped entries are exactly zero.
    """
    check_backend(backend)
    B = np.asarray(B, dtype=dtype)
    if B.ndim == 1:
        return cg_block(L, B[:, None], iterations, tol, dtype, backend, device)[:, 0]
    n = L.shape[0]
    nonzero = B != 0  # (N, b) bool
    rows = np.flatnonzero(nonzero.any(axis=1))  # support of the right-hand sides
    del nonzero
    pieces = _cg_pieces(L, rows, B[rows], iterations, tol, dtype, backend, device)
    if len(pieces) == 1 and pieces[0][0].size == B.shape[1] and pieces[0][1].size == n:
        return pieces[0][2]  # every column ran all steps on every row: X is the result
    out = np.zeros(B.shape, dtype)  # (N, b)
    for cols, at, Xc in pieces:
        out[np.ix_(at, cols)] = Xc
    return out


def _cg_pieces(L: sp.spmatrix, rows: np.ndarray, B: np.ndarray, iterations: int, tol: float,
               dtype, backend: str, device: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The truncated block CG of :func:`cg_block` on the right-hand sides B (|rows|, b),
    given on their sorted support ``rows`` (zero elsewhere), never touching (N, b) arrays
    while the iterates' support is a small part of the graph.

    Returns pieces (cols, at, X): columns ``cols`` of the solution are ``X`` (|at|, |cols|)
    numpy on rows ``at`` (sorted) and exactly zero elsewhere; columns with a zero
    right-hand side are in no piece (their solution is 0).
    """
    ops = _NumpyOps(dtype) if backend == "numpy" else _TorchOps(dtype, device)
    L = (L.astype(dtype) if L.dtype != dtype else L).tocsr()
    n = L.shape[0]
    bnorm = np.sqrt(np.einsum("ij,ij->j", B, B, dtype=np.float64))  # (b,)
    active = np.flatnonzero(bnorm > 0)  # a zero right-hand side has the solution 0
    full = rows.size == n
    R = ops.array(B[:, active])  # (|rows|, b_active) residuals of the active columns
    X = ops.zeros(R.shape)  # compact iterates
    P = ops.copy(R)  # search directions
    pieces = []  # converged columns, kept aside
    rs = ops.coldot(R, R)  # (b_active,) squared residual norms
    thresh = ops.array((tol * bnorm[active]) ** 2, ops.float64)
    Lsub = ops.matrix(L) if full else None
    for _ in range(iterations):
        live = rs > thresh
        if not bool(live.all()):  # drop the converged columns from the working set
            dead = ops.to_numpy(~live).astype(bool)
            pieces.append((active[dead], rows, ops.to_numpy(X[:, ~live])))
            active, rs, thresh = active[~dead], rs[live], thresh[live]
            X, R, P = X[:, live], R[:, live], P[:, live]
        if active.size == 0:
            break
        if not full:  # grow the support by one hop
            reach = np.zeros(n, bool)
            reach[rows] = True
            reach[L[rows].indices] = True
            new = np.flatnonzero(reach)
            full = new.size > 0.7 * n
            if full:
                new = np.arange(n)
            if new.size > rows.size:
                at = np.searchsorted(new, rows)
                X, R, P = (ops.expand(M, at, new.size) for M in (X, R, P))
                rows = new
                Lsub = ops.matrix(L if full else L[rows][:, rows])
            elif Lsub is None:
                Lsub = ops.matrix(L[rows][:, rows])
        Q = Lsub @ P  # (|rows|, b_active)
        a = rs / ops.coldot(P, Q)
        rs = ops.step(X, R, P, Q, a, rs)
    if active.size:
        pieces.append((active, rows, ops.to_numpy(X)))
    return pieces


class _NumpyOps:
    """Array operations of cg_block on numpy arrays and scipy matrices."""

    float64 = np.float64

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def array(self, a, dtype=None):
        return np.array(a, dtype=dtype or self.dtype)

    def zeros(self, shape):
        return np.zeros(shape, self.dtype)

    copy = staticmethod(np.copy)
    matrix = staticmethod(lambda L: L)
    to_numpy = staticmethod(np.asarray)

    @staticmethod
    def coldot(U, V):
        """Column-wise inner products (b,) as float64 (accumulated in the arrays' dtype)."""
        return np.einsum("ij,ij->j", U, V).astype(np.float64)

    @staticmethod
    def expand(M, at, size):
        """Rows of M placed at positions ``at`` of a zero array with ``size`` rows."""
        out = np.zeros((size, M.shape[1]), M.dtype)
        out[at] = M
        return out

    @staticmethod
    def step(X, R, P, Q, a, rs):
        """x += a p, r -= a q, p = r + beta p, in place; returns the new r.r (b,)."""
        a = a.astype(X.dtype)
        Q *= a
        R -= Q
        np.multiply(P, a, out=Q)  # Q is free again: reuse it as scratch
        X += Q
        rs_new = _NumpyOps.coldot(R, R)
        P *= (rs_new / rs).astype(X.dtype)
        P += R
        return rs_new


class _TorchOps:
    """The same operations on torch tensors (sparse CSR matrices), on ``device``."""

    def __init__(self, dtype, device):
        import torch

        self.torch, self.float64 = torch, torch.float64
        self.dtype = getattr(torch, np.dtype(dtype).name)
        self.device = torch.device(device)

    def array(self, a, dtype=None):
        return self.torch.as_tensor(np.ascontiguousarray(a), dtype=dtype or self.dtype, device=self.device)

    def zeros(self, shape):
        return self.torch.zeros(tuple(shape), dtype=self.dtype, device=self.device)

    def copy(self, M):
        return M.clone()

    def matrix(self, L):
        L = L.tocsr()
        itype = self.torch.int32 if L.nnz < 2**31 - 1 else self.torch.int64
        t = self.torch
        with warnings.catch_warnings():  # "sparse CSR support is in beta state"
            warnings.filterwarnings("ignore", "Sparse CSR tensor support", UserWarning)
            return t.sparse_csr_tensor(t.as_tensor(L.indptr, dtype=itype),
                                       t.as_tensor(L.indices, dtype=itype),
                                       t.as_tensor(L.data, dtype=self.dtype), size=L.shape,
                                       device=self.device, check_invariants=False)

    def to_numpy(self, M):
        return M.cpu().numpy()

    def coldot(self, U, V):
        return self.torch.linalg.vecdot(U, V, dim=0).double()

    def expand(self, M, at, size):
        out = self.torch.zeros((size, M.shape[1]), dtype=M.dtype, device=M.device)
        out[self.torch.as_tensor(at, device=M.device)] = M
        return out

    def step(self, X, R, P, Q, a, rs):
        a = a.to(X.dtype)
        X.addcmul_(P, a)
        R.addcmul_(Q, a, value=-1)
        rs_new = self.coldot(R, R)
        self.torch.addcmul(R, P, (rs_new / rs).to(X.dtype), out=P)  # p = r + beta p, one pass
        return rs_new


def exact_block(lu, B: np.ndarray) -> np.ndarray:
    """Solve L X = B with a precomputed ``scipy.sparse.linalg.splu`` factor of L."""
    return lu.solve(np.asarray(B, dtype=np.float64))


def manifold_topk(S: sp.spmatrix, anchors, alpha: float = _M.alpha, k: int = 100,
                  iterations: int = _M.cg_iterations, tol: float = _M.cg_tol,
                  solver: str = _M.solver, block_size: int = _M.block_size, progress: bool = False,
                  dtype=np.dtype(_M.cg_dtype), threads: int | None = None,
                  backend: str = _M.cg_backend, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` manifold similarities f(r)_j for each anchor r.

    Defaults are ``MiningConfig``'s (alpha, iterations, tol, solver, block size, CG
    precision and backend), so a bare call computes what ``mine`` computes.

    Args: ``S`` (N, N) normalised affinity; ``anchors`` (A,) node indices;
    ``solver`` "cg" (truncated, faithful) or "exact" (sparse LU of L); anchors
    are processed ``block_size`` at a time (fewer when one (N, block) array would
    not fit in about 4 MiB of cache, where CG gets slower per column, or when the blocks
    running at once would hold more than ``BLOCKS_BYTES`` or half the memory available,
    and for "exact" when the block would exceed 1 GiB); ``dtype`` of the CG working arrays.
    Memory: the blocks' (N, block) arrays and the (A, k) result, never an (N, A) array;
    each block keeps only its columns' top k.
    Nodes are renumbered by reverse Cuthill-McKee inside (same numbers, better
    memory locality for the sparse x block product). Blocks run on ``threads``
    threads (default: the CPUs this process may use, at most 4); scipy's sparse
    product and numpy release the GIL, and each block is independent, so the
    result does not depend on the thread count.
    ``backend`` "torch" (default) runs the CG on torch tensors on ``device`` ("cpu",
    "cuda", "auto" = CUDA where available), "numpy" on numpy/scipy: the same numbers up
    to rounding. On the CPU its blocks run on the same thread pool, each block on one
    torch thread (torch's OpenMP threads spin-wait, so several per block fight over
    the cores of a busy machine); on a GPU the blocks run one after another.
    Returns (vals (A, k) float64 descending, ids (A, k) int64); ties: lower id first.
    """
    anchors, device = _check_topk(S.shape[0], anchors, k, solver, block_size, backend, device)
    L, perm, pos = _renumbered_laplacian(S, alpha)
    lu = splu(L.tocsc()) if solver == "exact" else None
    threads, width = _block_plan(L.shape[0], anchors.size, block_size, np.dtype(dtype).itemsize,
                                 exact=lu is not None, backend=backend, device=device,
                                 threads=threads)
    vals = np.empty((anchors.size, k), np.float64)
    ids = np.empty((anchors.size, k), np.int64)
    # solve(sel): rows ``sel`` of the result, one block, from its anchors in the new numbering
    if lu is None:
        L = L.astype(dtype)

        def solve(sel):
            vals[sel], ids[sel] = _cg_topk(L, pos[anchors[sel]], k, perm, iterations=iterations,
                                           tol=tol, dtype=dtype, backend=backend, device=device)
    else:
        def solve(sel):
            vals[sel], ids[sel] = _exact_topk(lu, pos[anchors[sel]], k, perm)

    blocks = _anchor_blocks(pos[anchors], width)
    one_torch_thread = backend == "torch" and device == "cpu" and lu is None
    with _torch_threads(1 if one_torch_thread else None):
        # splu's solve is not thread-safe: the exact blocks run one after another
        _run_blocks(solve, blocks, 1 if lu is not None else threads, progress)
    return vals, ids


def _check_topk(n: int, anchors, k: int, solver: str, block_size: int, backend: str,
                device: str) -> tuple[np.ndarray, str]:
    """(anchors (A,) int64, the device the CG runs on) for :func:`manifold_topk` on N = ``n``
    nodes; ValueError for arguments it cannot run with. The torch backend's "auto" device
    is CUDA where available, else the CPU (never MPS for the sparse CG); numpy's the CPU."""
    if solver not in ("cg", "exact"):
        raise ValueError(f"solver must be 'cg' or 'exact', got {solver!r}")
    anchors = np.asarray(anchors, dtype=np.int64).ravel()
    if anchors.size and (anchors.min() < 0 or anchors.max() >= n):
        raise ValueError(f"anchors must be node indices in [0, {n})")
    if not 1 <= k <= n:
        raise ValueError(f"manifold_topk: k={k} must be between 1 and N={n}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if check_backend(backend) == "torch":
        from .device import resolve_device
        return anchors, str(resolve_device(device, kinds=("cuda", "cpu")))
    return anchors, "cpu"


def _renumbered_laplacian(S: sp.spmatrix, alpha: float) -> tuple[sp.csr_matrix, np.ndarray,
                                                                  np.ndarray]:
    """(L, perm, pos): L = I - alpha S (csr float64) with its nodes renumbered by reverse
    Cuthill-McKee, for memory locality in the sparse x block product; ``perm`` (N,) int64
    maps new numbers to old, ``pos`` (N,) old to new."""
    L = laplacian(S, alpha)
    n = L.shape[0]
    perm = reverse_cuthill_mckee(L, symmetric_mode=True).astype(np.int64)  # new -> old
    pos = np.empty(n, np.int64)
    pos[perm] = np.arange(n)  # old -> new
    return L[perm][:, perm].tocsr(), perm, pos


def _block_plan(n: int, n_anchors: int, block_size: int, itemsize: int, *, exact: bool,
                backend: str, device: str, threads: int | None) -> tuple[int, int]:
    """(threads, block width): how many blocks run at once and how many anchors each solves.

    ``threads`` defaults to the CPUs this process may use, at most 4; a GPU runs its blocks
    one after another. The width is ``block_size`` or less: for the exact solver or on a
    GPU the widest block whose working arrays fit in ``BLOCK_BYTES``; on the CPU as wide
    as the cache asks (``CACHE_BYTES``, at least ``MIN_BLOCK``; torch: ``TORCH_*``), as
    narrow as the memory of the concurrent blocks needs (``BLOCKS_BYTES`` or half the
    memory available, shared by the threads, ``BLOCK_ARRAYS`` (N, b) arrays a block).
    """
    threads = threads or min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                             else os.cpu_count() or 1)
    if device != "cpu":  # one GPU: its blocks run one after another
        threads = 1
    if exact or device != "cpu":  # a GPU takes the widest block that fits
        cap = BLOCK_BYTES // (6 * itemsize * n)
    else:
        cache, least = ((TORCH_CACHE_BYTES, TORCH_MIN_BLOCK) if backend == "torch"
                        else (CACHE_BYTES, MIN_BLOCK))
        # as wide as the cache asks, as narrow as the memory of the concurrent blocks needs
        memory = min(BLOCKS_BYTES, _available_bytes() // 2) // min(threads, max(1, n_anchors))
        cap = min(max(least, cache // (itemsize * n)), memory // (BLOCK_ARRAYS * itemsize * n))
    return threads, int(max(1, min(block_size, cap)))


def _anchor_blocks(at: np.ndarray, width: int) -> list[np.ndarray]:
    """Blocks of at most ``width`` positions into the anchors, whose node numbers (in the
    renumbering) are ``at`` (A,): consecutive in that numbering, since anchors that are
    close there share most of their support."""
    order = np.argsort(at, kind="stable")
    return [order[s:s + width] for s in range(0, at.size, width)]


def _exact_topk(lu, a: np.ndarray, k: int, perm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(vals, ids) (b, k), sorted, of the exact solves from the anchors ``a`` (b,) (nodes
    in the renumbering of the factor ``lu``); ids in the original numbering ``perm``."""
    B = np.zeros((perm.size, a.size))  # (N, b) columns e_r
    B[a, np.arange(a.size)] = 1.0
    # the top k of each column, rows reported (ties broken) in the original numbering
    return _sort_rows(*_topk_columns(exact_block(lu, B), k, labels=perm))


def _cg_topk(L: sp.csr_matrix, a: np.ndarray, k: int, perm: np.ndarray, *, iterations: int,
             tol: float, dtype, backend: str, device: str) -> tuple[np.ndarray, np.ndarray]:
    """(vals, ids) (b, k), sorted, of the truncated CG from the anchors ``a`` (b,) (nodes of
    the renumbered L, in ``dtype``); ids in the original numbering ``perm``. The right-hand
    sides are given on their support only, and each column keeps only its top k."""
    n = L.shape[0]
    rows, col_of = np.unique(a, return_inverse=True)  # the right-hand sides' support
    B = np.zeros((rows.size, a.size), dtype)  # (|rows|, b): e_r on its support
    B[col_of, np.arange(a.size)] = 1.0
    v = np.empty((a.size, k), np.float64)
    i = np.empty((a.size, k), np.int64)
    for cols, at, Xc in _cg_pieces(L, rows, B, iterations, tol, dtype, backend, device):
        for c, col in zip(cols, Xc.T):  # zero outside the rows ``at``
            v[c], i[c] = _topk_support(at, col, k, n, perm)
    return _sort_rows(v, i)


def _run_blocks(solve, blocks: list[np.ndarray], threads: int, progress: bool) -> None:
    """``solve(block)`` for every block, on ``threads`` threads (scipy's sparse product and
    numpy release the GIL; the blocks are independent, so the result does not depend on
    the thread count), with a progress bar."""
    bar = tqdm(total=len(blocks), desc="manifold similarity", unit="block", disable=not progress)
    if threads <= 1 or len(blocks) <= 1:
        for sel in blocks:
            solve(sel)
            bar.update()
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for fut in [pool.submit(solve, sel) for sel in blocks]:
                fut.result()
                bar.update()
    bar.close()


def _available_bytes() -> int:
    """Memory the system can still give (MemAvailable of /proc/meminfo), or 8 GiB where
    that cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


@contextmanager
def _torch_threads(n: int | None):
    """torch's intra-op threads set to ``n`` inside the block (None: unchanged)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _topk_columns(X: np.ndarray, k: int, labels: np.ndarray | None = None,
                  chunk: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Per column of X (N, b): the k largest values (float64) and their rows, unsorted;
    among values tied with the k-th largest, the lowest rows are taken.

    ``labels`` (N,) int64, optional: the number to report for each row of X (X's rows
    renumbered, e.g. the original node ids), ties then going to the lowest labels.
    Columns are handled ``chunk`` at a time: the temporaries are a (chunk, N) copy and a
    few (N,) arrays, never a second (N, b) array.
    """
    n, b = X.shape
    if k >= n:
        rows = np.broadcast_to(np.arange(n), (b, n))
        return (np.ascontiguousarray(X.T).astype(np.float64),
                (rows if labels is None else labels[rows]).astype(np.int64))
    vals = np.empty((b, k), np.float64)
    ids = np.empty((b, k), np.int64)
    for c0 in range(0, b, chunk):
        Xt = np.ascontiguousarray(X[:, c0:c0 + chunk].T)  # (c, N)
        for j, col in enumerate(Xt, start=c0):
            rows = _topk_rows(col, k, labels)
            vals[j] = col[rows]
            ids[j] = rows if labels is None else labels[rows]
    return vals, ids


def _topk_support(rows: np.ndarray, vals: np.ndarray, k: int, n: int,
                  labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The k largest entries (values float64, labels) of a length-``n`` column that is
    ``vals`` on the sorted ``rows`` and zero elsewhere; ties as :func:`_topk_columns`."""
    if k < n and np.count_nonzero(vals > 0) >= k:  # the k-th largest is positive
        top = _topk_rows(vals, k, labels[rows])
        return vals[top].astype(np.float64), labels[rows[top]]
    col = np.zeros(n, vals.dtype)  # zeros complete the list: the whole column
    col[rows] = vals
    v, i = _topk_columns(col[:, None], k, labels)
    return v[0], i[0]


def _topk_rows(col: np.ndarray, k: int, labels: np.ndarray | None) -> np.ndarray:
    """Rows of the k largest entries of ``col`` (N,), k < N; of the entries tied with the
    k-th largest, those with the lowest labels (rows when None). A truncated CG column is
    zero outside a few hops of its anchor: when k of its entries are positive, the k-th
    largest is positive and only the nonzero entries are looked at."""
    rows = np.flatnonzero(col > 0)
    if rows.size < k:  # zeros (or negatives) complete the list: look at every row
        rows = np.arange(col.size)
    v = col[rows]
    kth = np.partition(v, v.size - k)[v.size - k]  # the k-th largest value
    above = rows[v > kth]  # fewer than k rows
    tied = rows[v == kth]  # at least the k - |above| still needed, ascending
    need = k - above.size
    if tied.size > need:
        if labels is None:
            tied = tied[:need]
        else:
            tied = tied[np.argpartition(labels[tied], need - 1)[:need]]
    return np.concatenate([above, tied])


def _sort_rows(v: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by value descending, ties by id ascending."""
    order = np.lexsort((i, -v), axis=1)
    return np.take_along_axis(v, order, axis=1), np.take_along_axis(i, order, axis=1)
