"""One epoch of training tuples drawn from mined pools (docs/method.md §7).

For each of ``n_tuples`` items: an anchor uniform over ``pools.anchors`` (with
replacement); a positive uniform from its P+, carrying that positive's weight
f(r)_j (1.0 for the Euclidean baseline pools); negatives uniform among the
``hard_negatives`` members of its P- nearest to the anchor in the *current*
embedding (recomputed every epoch by the trainer).

The random variates are drawn in one documented order, so a seeded generator
gives the same tuples on every rank of a data-parallel run:
``a = rng.integers(A, size=T)``, ``u = rng.random(T)``, ``keys = rng.random((T, h))``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Tuples", "sample_epoch", "hardest_negatives", "rescale_weights", "WEIGHT_MODES"]

WEIGHT_MODES = ("raw", "mean1")


class Tuples(NamedTuple):
    """Training tuples; unpacks as ``anchor, positive, negative, weight``."""

    anchor: np.ndarray  # (T,) int64 dataset indices
    positive: np.ndarray  # (T,) int64
    negative: np.ndarray  # (T, K) int64, K = n_negatives
    weight: np.ndarray  # (T,) float32, the positive's weight w+


def _ragged_to_padded(rows, name: str, fill=-1, dtype=np.int64) -> tuple[np.ndarray, np.ndarray]:
    """List of arrays -> (padded (A, M) ``dtype`` with ``fill``, lengths (A,))."""
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    if lengths.size and lengths.min() == 0:
        bad = int(np.flatnonzero(lengths == 0)[0])
        raise ValueError(f"pools: {name} of anchor #{bad} is empty (mining should have skipped it)")
    out = np.full((len(rows), int(lengths.max(initial=0))), fill, dtype=dtype)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, lengths


def hardest_negatives(anchors: np.ndarray, negatives, embeddings: np.ndarray,
                      hard_negatives: int, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per anchor, its P- members sorted by current similarity to it, truncated.

    Returns ``(cand (A, h) int64 padded with -1, n_cand (A,))`` with
    ``h = hard_negatives``; ties keep the pool's own (mining) order.
    """
    neg, lengths = _ragged_to_padded(negatives, "P-")  # (A, M)
    A, M = neg.shape
    h = int(hard_negatives)
    cand = np.full((A, h), -1, dtype=np.int64)
    for s in range(0, A, chunk):  # bounded memory: (chunk, M, D) at a time
        e = slice(s, min(s + chunk, A))
        za = embeddings[anchors[e]]  # (c, D)
        zn = embeddings[np.maximum(neg[e], 0)]  # (c, M, D)
        sim = np.einsum("cd,cmd->cm", za, zn, dtype=np.float64)  # (c, M)
        sim[neg[e] < 0] = -np.inf
        order = np.argsort(-sim, axis=1, kind="stable")[:, :h]  # (c, min(M, h))
        cand[e, : order.shape[1]] = np.take_along_axis(neg[e], order, axis=1)
    return cand, np.minimum(lengths, h)


def sample_epoch(pools, embeddings: np.ndarray, n_tuples: int, hard_negatives: int = 10,
                 n_negatives: int = 1, rng: np.random.Generator | int | None = None) -> Tuples:
    """Draw ``n_tuples`` (anchor, positive, negatives, weight) tuples.

    Args:
        pools: a ``mom.mining.Pools`` (anchors, positives, positive_weights, negatives).
        embeddings: (N, D) current embedding of the training set, dataset order.
        n_tuples: number of tuples T (docs/method.md §7: the number of training images).
        hard_negatives: negatives are drawn among this many nearest P- members.
        n_negatives: K negatives per tuple, distinct while the candidates allow;
            when an anchor has fewer than K candidates its random order is cycled.
        rng: numpy Generator or seed.
    Returns: ``Tuples(anchor (T,), positive (T,), negative (T, K), weight (T,))``.
    """
    A = len(pools)
    if A == 0:
        raise ValueError("pools: no anchors (empty pool set) - nothing to train on; "
                         "check the mining depths k_pos/k_neg and the anchor selection")
    if n_tuples < 0 or hard_negatives < 1 or n_negatives < 1:
        raise ValueError(f"sample_epoch: need n_tuples>=0, hard_negatives>=1, n_negatives>=1; "
                         f"got {n_tuples}, {hard_negatives}, {n_negatives}")
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or not np.isfinite(emb).all():
        raise ValueError(f"sample_epoch: embeddings must be a finite (N, D) array, got shape {emb.shape}")
    anchors = np.asarray(pools.anchors, dtype=np.int64)  # (A,)
    pos, n_pos = _ragged_to_padded(pools.positives, "P+")  # (A, M+)
    wts, n_w = _ragged_to_padded(pools.positive_weights, "P+ weights", fill=0.0, dtype=np.float32)
    if not np.array_equal(n_w, n_pos):
        raise ValueError("pools: P+ weights and P+ members differ in length for some anchor")
    top = max(int(anchors.max()), int(pos.max()))
    if top >= len(emb) or anchors.min() < 0:
        raise ValueError(f"pools refer to image {top} but embeddings has only {len(emb)} rows "
                         "(pools mined on another dataset?)")
    cand, n_cand = hardest_negatives(anchors, pools.negatives, emb, hard_negatives)  # (A, h)
    if cand.max(initial=-1) >= len(emb):
        raise ValueError(f"pools: a negative index exceeds the {len(emb)} embedded images")

    rng = np.random.default_rng(rng)
    T, h, K = int(n_tuples), int(hard_negatives), int(n_negatives)
    a = rng.integers(A, size=T)  # (T,) index into pools
    j = np.minimum((rng.random(T) * n_pos[a]).astype(np.int64), n_pos[a] - 1)  # (T,)
    keys = rng.random((T, h))  # (T, h): a random order of each anchor's candidates
    keys[np.arange(h)[None, :] >= n_cand[a][:, None]] = np.inf
    order = np.argsort(keys, axis=1, kind="stable")  # (T, h) valid slots first
    cols = np.arange(K)[None, :] % n_cand[a][:, None]  # (T, K) fewer than K: cycle round
    pick = np.take_along_axis(order, cols, axis=1)  # (T, K) slots into cand
    return Tuples(anchor=anchors[a], positive=pos[a, j],
                  negative=cand[a[:, None], pick], weight=wts[a, j])


def rescale_weights(weights: np.ndarray, mode: str = "raw") -> np.ndarray:
    """The epoch's positive weights (T,) as the loss uses them.

    ``"raw"``: unchanged (the release: w+ = f(r)_j). ``"mean1"``: divided by their
    mean, so the epoch's weights average 1 and a learning rate means the same step
    for manifold pools (raw mean ~0.1) and the Euclidean baseline (all 1).
    """
    w = np.asarray(weights, dtype=np.float32)
    if mode == "raw":
        return w
    if mode != "mean1":
        raise ValueError(f"train.weights must be one of {WEIGHT_MODES}, got {mode!r}")
    mean = float(w.mean()) if w.size else 0.0
    if not mean > 0 or not np.isfinite(mean):
        raise ValueError(f"train.weights='mean1': the epoch's positive weights have mean {mean}; "
                         "cannot rescale them to mean 1")
    return (w / mean).astype(np.float32)
