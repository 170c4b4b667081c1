"""The mutual kNN graph (docs/method.md §3): affinity, normalisation, components.

A = mutual kNN affinity with a_ij = max(0, y_i . y_j)^gamma and zero diagonal;
S = D^-1/2 A D^-1/2. All functions take and return scipy sparse matrices or arrays.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

__all__ = ["affinity", "normalize", "degrees", "largest_component", "components"]


CHUNK_ROWS = 65536  # neighbour-list rows per chunk of affinity's temporaries


def affinity(sims: np.ndarray, ids: np.ndarray, gamma: float = 3.0) -> sp.csr_matrix:
    """Mutual kNN affinity from a neighbour list.

    Args: ``sims`` (N, k) similarities and ``ids`` (N, k) neighbour indices
    (as returned by :func:`mom.knn.knn`; id -1 marks an empty slot); ``gamma`` > 0.
    Returns A (N, N) csr float64, symmetric, zero diagonal: a_ij = max(0, s_ij)^gamma
    where j is in NN(i) and i is in NN(j), else 0. The weight of a pair is the
    smaller of its two (numerically equal) directed weights, so A is exactly symmetric.
    A neighbour listed twice in a row counts with the sum of its weights.

    Built ``CHUNK_ROWS`` rows at a time: besides the result, the memory is the directed
    graph W (N k weights and column ids) and its transpose; the mutual test of a chunk of
    rows is a search of W's entries among W^T's, both sorted.
    """
    sims = np.asarray(sims)
    ids = np.asarray(ids)
    if sims.shape != ids.shape or sims.ndim != 2:
        raise ValueError(f"affinity: sims {sims.shape} and ids {ids.shape} must be equal 2-D shapes")
    if not gamma > 0:
        raise ValueError(f"affinity: gamma must be > 0, got {gamma}")
    n, k = ids.shape
    if ids.size and (ids.max() >= n or ids.min() < -1):
        raise ValueError(f"affinity: neighbour ids must lie in [0, {n}) (or -1 for empty)")
    itype = np.int32 if max(n, n * k) < 2**31 else np.int64
    # the directed kNN graph W, CSR: each row's columns sorted, duplicates summed
    indptr = np.zeros(n + 1, itype)
    indices = np.empty(n * k, itype)
    data = np.empty(n * k, np.float64)
    nnz = 0
    for s0 in range(0, n, CHUNK_ROWS):
        s1 = min(n, s0 + CHUNK_ROWS)
        c = ids[s0:s1].astype(np.int64)  # (c, k)
        v = sims[s0:s1].astype(np.float64)
        local = np.broadcast_to(np.arange(s1 - s0)[:, None], c.shape)
        keep = (c >= 0) & (c != local + s0) & np.isfinite(v) & (v > 0)
        key = local[keep] * n + c[keep]  # row-major: sorted keys are CSR order
        w = v[keep] ** gamma
        order = np.argsort(key, kind="stable")
        key, w = key[order], w[order]
        first = np.ones(key.size, bool)
        first[1:] = key[1:] != key[:-1]
        if not first.all():  # a neighbour listed twice: one entry, the weights summed
            w = np.add.reduceat(w, np.flatnonzero(first))
            key = key[first]
        m = key.size
        indices[nnz:nnz + m] = key % n
        data[nnz:nnz + m] = w
        indptr[s0 + 1:s1 + 1] = nnz + np.cumsum(np.bincount(key // n, minlength=s1 - s0))
        nnz += m
    indices, data = indices[:nnz], data[:nnz]
    W = sp.csr_matrix((data, indices, indptr), shape=(n, n))
    W.has_sorted_indices = True  # sorted above, one entry per (row, column)
    WT = W.T.tocsr()  # row i of W^T lists the j with i in NN(j), columns sorted
    # mutual: (i, j) of W is also in row i of W^T; weight min(w_ij, w_ji) (W^T holds the
    # reverse weights), written into W in place, 0 elsewhere; chunk-local sorted keys, so
    # the searches run through memory in order
    for s0 in range(0, n, CHUNK_ROWS):
        s1 = min(n, s0 + CHUNK_ROWS)
        a, b = W.indptr[s0], W.indptr[s1]
        at, bt = WT.indptr[s0], WT.indptr[s1]
        if a == b or at == bt:
            W.data[a:b] = 0.0
            continue
        span = np.arange(s1 - s0, dtype=np.int64)
        key = np.repeat(span, np.diff(W.indptr[s0:s1 + 1])) * n + W.indices[a:b]
        key_t = np.repeat(span, np.diff(WT.indptr[s0:s1 + 1])) * n + WT.indices[at:bt]
        pos = np.minimum(np.searchsorted(key_t, key), key_t.size - 1)
        mutual = key_t[pos] == key
        W.data[a:b] = np.where(mutual, np.minimum(W.data[a:b], WT.data[at:bt][pos]), 0.0)
    del WT
    A = W
    A.eliminate_zeros()
    A.sort_indices()
    return A


def degrees(A: sp.spmatrix) -> np.ndarray:
    """Row sums d_i = sum_j a_ij, (N,) float64."""
    return np.asarray(A.sum(axis=1)).ravel()


def normalize(A: sp.spmatrix) -> sp.csr_matrix:
    """S = D^-1/2 A D^-1/2; an isolated node (d_i = 0) gets a zero row and column, never NaN."""
    d = degrees(A)
    inv = np.zeros_like(d)
    np.divide(1.0, np.sqrt(d), out=inv, where=d > 0)
    Dm = sp.diags(inv)
    S = (Dm @ A @ Dm).tocsr()
    S.sort_indices()
    return S


def components(A: sp.spmatrix) -> tuple[int, np.ndarray]:
    """(number of connected components, label per node (N,)); isolated nodes are their own."""
    return connected_components(A, directed=False)


def largest_component(A: sp.spmatrix) -> np.ndarray:
    """Sorted int64 indices of the nodes in the largest connected component
    (ties broken towards the component holding the smallest node index)."""
    _, labels = components(A)
    counts = np.bincount(labels)
    return np.flatnonzero(labels == int(np.argmax(counts))).astype(np.int64)
