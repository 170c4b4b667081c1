"""A label-free safeguard for fine-tuning: ``train.guard: holdout`` (docs/method.md §10a).

A user's collection has no validation labels, so nothing tells whether the mined
tuples help. The guard holds a fraction of the anchors out of training (their
tuples are never trained on; their images still are, as members of other pools)
and measures the tuple loss of the held-out anchors' own tuples after every
epoch, the untrained network included. Training returns the network of the epoch
with the lowest held-out loss: if no epoch beats the start, the initial embedding
comes back unchanged (a logged fall-back), so a recipe whose tuples do not
generalise across anchors cannot drift far from where it started.

Held-out loss, for held-out anchors a with positives p (weights w_p) and H(a) the
``hard_negatives`` members of P-(a) nearest to a in the current embedding:

    L = mean over (a, p, n in H(a)) of  w_p * max(0, m + ||z_a - z_p||^2 - ||z_a - z_n||^2)

the training loss (mom/losses.py) on deterministic tuples: every positive against
every hard negative, nothing sampled.
"""
from __future__ import annotations

import numpy as np

__all__ = ["split_anchors", "heldout_loss", "choose_epoch"]


def split_anchors(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(train rows, held-out rows), both sorted, of ``n`` anchors: ``round(fraction * n)``
    (at least 1) held out, chosen by ``seed``; None when fewer than 2 anchors."""
    if n < 2:
        return None
    held = min(n - 1, max(1, round(fraction * n)))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[held:]), np.sort(perm[:held])


def heldout_loss(emb: np.ndarray, pools, margin: float, hard_negatives: int) -> float:
    """Mean weighted triplet loss of ``pools``' tuples (module docstring) in ``emb`` (N, D).

    Anchors with an empty P+ or P- add nothing; NaN when no tuple remains."""
    emb = np.asarray(emb, np.float64)
    total, count = 0.0, 0
    for i, a in enumerate(pools.anchors):
        pos, neg = pools.positives[i], pools.negatives[i]
        if len(pos) == 0 or len(neg) == 0:
            continue
        w = np.asarray(pools.positive_weights[i], np.float64)  # (P,)
        za = emb[a]
        d_neg = ((emb[neg] - za) ** 2).sum(1)  # (Q,)
        hard = np.sort(d_neg)[:hard_negatives]  # (H,) nearest P- members
        d_pos = ((emb[pos] - za) ** 2).sum(1)  # (P,)
        loss = w[:, None] * np.maximum(0.0, margin + d_pos[:, None] - hard[None, :])  # (P, H)
        total += float(loss.sum())
        count += loss.size
    return total / count if count else float("nan")


def choose_epoch(losses) -> int:
    """The epoch count (index into ``losses``, 0 = untrained) with the lowest held-out
    loss; ties and NaN go to the earlier epoch."""
    losses = np.asarray(losses, np.float64)
    if losses.size == 0:
        raise ValueError("choose_epoch: no held-out loss recorded")
    finite = np.where(np.isfinite(losses), losses, np.inf)
    return int(np.argmin(finite))  # argmin returns the first of equal minima
