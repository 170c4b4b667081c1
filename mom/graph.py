"""The mutual kNN graph (docs/method.md §3): affinity, normalisation, components.

A = mutual kNN affinity with a_ij = max(0, y_i . y_j)^gamma and zero diagonal;
S = D^-1/2 A D^-1/2. All functions take and return scipy sparse matrices or arrays.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

__all__ = ["affinity", "normalize", "degrees", "largest_component", "components"]


def affinity(sims: np.ndarray, ids: np.ndarray, gamma: float = 3.0) -> sp.csr_matrix:
    """Mutual kNN affinity from a neighbour list.

    Args: ``sims`` (N, k) similarities and ``ids`` (N, k) neighbour indices
    (as returned by :func:`mom.knn.knn`; id -1 marks an empty slot); ``gamma`` > 0.
    Returns A (N, N) csr float64, symmetric, zero diagonal: a_ij = max(0, s_ij)^gamma
    where j is in NN(i) and i is in NN(j), else 0. The weight of a pair is the
    smaller of its two (numerically equal) directed weights, so A is exactly symmetric.
    """
    sims = np.asarray(sims)
    ids = np.asarray(ids)
    if sims.shape != ids.shape or sims.ndim != 2:
        raise ValueError(f"affinity: sims {sims.shape} and ids {ids.shape} must be equal 2-D shapes")
    if not gamma > 0:
        raise ValueError(f"affinity: gamma must be > 0, got {gamma}")
    n = ids.shape[0]
    if ids.size and (ids.max() >= n or ids.min() < -1):
        raise ValueError(f"affinity: neighbour ids must lie in [0, {n}) (or -1 for empty)")
    rows = np.repeat(np.arange(n), ids.shape[1])  # (N*k,)
    cols = ids.ravel()
    s = sims.ravel().astype(np.float64)
    keep = (cols >= 0) & (cols != rows) & np.isfinite(s) & (s > 0)
    w = s[keep] ** gamma
    W = sp.csr_matrix((w, (rows[keep], cols[keep])), shape=(n, n))  # directed kNN graph
    W.sum_duplicates()
    # elementwise minimum: a pair present in one direction only gets min(w, 0) = 0
    A = W.minimum(W.T).tocsr()
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
