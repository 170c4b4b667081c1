"""How hard, and how correct, mined training examples are (docs/method.md §13a).

The mechanism behind Table 1 in three measurements, for MoM's pools and the Euclidean
baseline's:

- :func:`euclidean_ranks`: where pool members sit in their anchor's Euclidean
  ordering. P+ members are, by construction, beyond the anchor's k+ Euclidean
  neighbours: how far beyond says how *hard* the positives are.
- :func:`violated_share`: the share of an epoch's tuples the initial network already
  gets wrong (a positive loss, or the negative nearer than the positive). A tuple it
  gets right teaches nothing.
- :func:`label_rate_by_position`: P+ precision (same class as the anchor) and P- purity
  (another class) at each position of the pools, beside the Euclidean neighbours at the
  same depth; the labels measure, they never choose.

Pure array functions; :func:`hardness_report` gathers them for a figure.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["euclidean_ranks", "euclidean_at_depth", "violated_share", "label_rate_by_position",
           "hardness_report"]


def _order(features: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(A, N) every image by Euclidean (inner-product) similarity to each anchor,
    descending, the anchor itself first; ties: lower index first."""
    from .knn import knn
    x = np.asarray(features, dtype=np.float32)
    _, ids = knn(x, len(x), index="dense", rows=np.asarray(anchors, np.int64), norm_tol=None)
    return ids


def euclidean_ranks(features: np.ndarray, anchors: Sequence[int], lists) -> list[np.ndarray]:
    """Per anchor, the Euclidean rank of each member of its list (1 = the nearest other
    image; the anchor itself has rank 0). ``features`` (N, D) L2-normalised rows;
    ``lists[i]`` the members of anchor ``anchors[i]``'s pool."""
    anchors = np.asarray(anchors, np.int64)
    order = _order(features, anchors)  # (A, N)
    rank = np.empty_like(order)
    rows = np.arange(len(anchors))[:, None]
    rank[rows, order] = np.arange(order.shape[1])[None, :]  # rank of image j for anchor i
    return [rank[i, np.asarray(m, np.int64)] for i, m in enumerate(lists)]


def euclidean_at_depth(features: np.ndarray, anchors: Sequence[int], start: int,
                       sizes: Sequence[int]) -> list[np.ndarray]:
    """Per anchor ``i``, the Euclidean neighbours at ranks ``start + 1 ... start + sizes[i]``
    (rank 1 = the nearest other image): the plain neighbours at a pool's depth."""
    order = _order(features, np.asarray(anchors, np.int64))  # (A, N), the anchor at 0
    return [order[i, start + 1:start + 1 + int(s)] for i, s in enumerate(sizes)]


def violated_share(embeddings: np.ndarray, anchor: np.ndarray, positive: np.ndarray,
                   negative: np.ndarray, margin: float) -> dict[str, float]:
    """Of the tuples (``anchor``, ``positive``, ``negative``: (T,) image ids; ``negative``
    may be (T, K), its first column is used), the share with a positive triplet loss
    ``m + |z_a - z_p|^2 - |z_a - z_n|^2 > 0`` (``"loss"``), and the share whose negative
    is at least as near as the positive (``"order"``), in ``embeddings`` (N, D)."""
    z = np.asarray(embeddings, dtype=np.float64)
    n = np.asarray(negative)
    n = n[:, 0] if n.ndim == 2 else n
    a, p = np.asarray(anchor), np.asarray(positive)
    if not len(a):
        raise ValueError("violated_share: no tuples")
    dp = ((z[a] - z[p]) ** 2).sum(1)
    dn = ((z[a] - z[n]) ** 2).sum(1)
    return {"loss": float(np.mean(margin + dp - dn > 0)), "order": float(np.mean(dn <= dp)),
            "n": int(len(a))}


def label_rate_by_position(anchors: Sequence[int], lists, labels: np.ndarray, same: bool,
                           depth: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rate (depth,), anchors counted (depth,)): at position j of the lists (0 = first),
    the share of anchors whose j-th member has the anchor's label (``same``) or another
    (``not same``), over the anchors with a j-th member of known label (>= 0)."""
    labels = np.asarray(labels)
    anchors = np.asarray(anchors, np.int64)
    depth = int(max((len(m) for m in lists), default=0)) if depth is None else int(depth)
    hits, count = np.zeros(depth), np.zeros(depth, np.int64)
    for a, members in zip(anchors, lists):
        m = np.asarray(members, np.int64)[:depth]
        if labels[a] < 0 or not m.size:
            continue
        lm = labels[m]
        known = lm >= 0
        match = (lm == labels[a]) if same else (lm != labels[a])
        idx = np.flatnonzero(known)
        hits[idx] += match[idx]
        count[idx] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(count > 0, hits / np.maximum(count, 1), np.nan)
    return rate, count


def hardness_report(pools, features: np.ndarray, embeddings: np.ndarray, labels: np.ndarray,
                    *, margin: float, hard_negatives: int, n_tuples: int, seed: int = 0) -> dict[str, Any]:
    """The three measurements for MoM's pools (``pools``) and its Euclidean baseline
    (``pools.baseline``): ``ranks`` (Euclidean ranks of every P+ and baseline positive),
    ``violated`` (one epoch of tuples of each, drawn as training draws them, scored in
    ``embeddings``, the initial network's), and ``by_position`` (P+ precision and P- purity
    per position beside the Euclidean neighbours at the same depth). ``features`` are the
    mining descriptors, ``labels`` the training labels (measurement only)."""
    from .sampler import sample_epoch
    base = pools.baseline
    k_pos = pools.config.k_pos if pools.config is not None else None
    pos_ranks = euclidean_ranks(features, pools.anchors, pools.positives)
    base_ranks = euclidean_ranks(features, base.anchors, base.positives)
    violated = {}
    for name, p in (("mom", pools), ("euclidean", base)):
        t = sample_epoch(p, embeddings, n_tuples, hard_negatives, 1, np.random.default_rng(seed))
        violated[name] = violated_share(embeddings, t.anchor, t.positive, t.negative, margin)
    pos_sizes = pools.positives.sizes()
    neg_sizes = pools.negatives.sizes()
    same_depth_pos = euclidean_at_depth(features, pools.anchors, int(k_pos or 0), pos_sizes)
    nearest_neg = euclidean_at_depth(features, pools.anchors, 0, neg_sizes)
    depth_p, depth_n = int(pos_sizes.max(initial=0)), int(neg_sizes.max(initial=0))

    def rate(lists, same, depth):
        r, c = label_rate_by_position(pools.anchors, lists, labels, same, depth)
        return {"rate": r.tolist(), "anchors": c.tolist()}
    return {
        "k_pos": k_pos,
        "ranks": {"mom": np.concatenate(pos_ranks).tolist() if pos_ranks else [],
                  "euclidean": np.concatenate(base_ranks).tolist() if base_ranks else []},
        "violated": violated,
        "by_position": {
            "P+ precision": rate(pools.positives, True, depth_p),
            "NN^e at P+'s depth": rate(same_depth_pos, True, depth_p),
            "P- purity": rate(pools.negatives, False, depth_n),
            "NN^e nearest, as negatives": rate(nearest_neg, False, depth_n),
        },
        "margin": margin, "hard_negatives": hard_negatives, "n_tuples": n_tuples, "seed": seed,
    }
