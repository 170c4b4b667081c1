"""Evaluation: Recall@K, NMI, and AP/mAP (classic and revisited Oxford/Paris).

This is the only evaluator in the package (docs/method.md §11); notebooks, the
pipeline and the CLI all call it, and ``mom.evaluate`` is its
:func:`evaluate_embeddings`. Metrics are returned in percent, except
:func:`average_precision`, which returns a fraction in [0, 1].

Conventions:
- Embeddings are rows of an ``(N, D)`` array, L2-normalised, so the inner
  product is the similarity (larger = closer) and ranking by it equals ranking
  by Euclidean distance.
- ``ranks`` arrays are ``(n_queries, n_db)``: row ``q`` lists database indices
  from most to least similar to query ``q``. The revisited-Oxford toolkit uses
  the transpose ``(n_db, n_queries)``; pass ``ranks.T`` for those.
- NMI clusters with scikit-learn ``KMeans(n_clusters=#classes, n_init=1,
  random_state=seed)`` (k-means++ initialisation, Lloyd iterations): one
  seeded run, deterministic for a seed, as in the paper's protocol;
  :func:`nmi_runs` repeats it over several seeds.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from .config import EvalConfig
from .knn import check_features, knn

__all__ = ["recall_at_k", "map_at_r", "nmi", "nmi_runs", "average_precision", "mean_average_precision",
           "revisited_map", "rank_database", "evaluate_embeddings"]

_NORM_TOL = 1e-2  # rows whose L2 norm is further than this from 1 are rejected (fp16-safe)


# --------------------------------------------------------------------------- checks
def _check_emb(emb, name: str = "emb", unit: bool = True) -> np.ndarray:
    """``emb`` as a C-contiguous float32 (N, D) array (rows L2-normalised when ``unit``),
    or ValueError: :func:`mom.knn.check_features` with evaluation's tolerance."""
    return check_features(emb, name, norm_tol=_NORM_TOL if unit else None)


def _check_labels(labels, n: int) -> np.ndarray:
    """Return labels as int64 (N,), at least 2 classes, none negative (= unknown)."""
    lab = np.asarray(labels)
    if lab.ndim != 1 or len(lab) != n:
        raise ValueError(f"labels: expected shape ({n},) to match the embeddings, got {lab.shape}")
    if not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels: expected integer class ids, got dtype {lab.dtype}")
    if (lab < 0).any():
        raise ValueError(f"labels: {int((lab < 0).sum())} label(s) are negative (unknown class); "
                         "evaluation needs a class for every item")
    if len(np.unique(lab)) < 2:
        raise ValueError("labels: need at least 2 classes to evaluate")
    return lab.astype(np.int64)


def _check_ks(ks: Iterable[int], n: int) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks: expected positive integers, got {ks}")
    if n <= max(ks):
        raise ValueError(f"recall@{max(ks)} needs more than {max(ks)} items, got N={n}")
    return ks


# --------------------------------------------------------------------------- Recall@K
def _nearest_others(x: np.ndarray, k: int, block_size: int = 4096) -> np.ndarray:
    """(N, k) indices of each row's k nearest *other* rows by inner product:
    :func:`mom.knn.knn` with ``exclude_self=True`` (exact flat index, ``block_size``
    queries a call).

    The query is removed by index, not by rank: with exact duplicates faiss may
    list a duplicate before the query itself (or push the query past k+1), and
    the duplicate must still count as a neighbour.
    """
    _, ids = knn(x, k, exclude_self=True, norm_tol=None, batch=block_size)  # (N, k)
    return ids


def recall_at_k(emb, labels, ks: Sequence[int] = (1, 2, 4, 8)) -> dict[int, float]:
    """Recall@K in percent: share of queries whose K nearest other items hold
    one of the query's class. ``emb`` (N, D) L2-normalised, ``labels`` (N,).

    Example: ``recall_at_k(emb, labels, ks=(1, 2))`` -> ``{1: 61.2, 2: 72.9}``.
    """
    x = _check_emb(emb)
    lab = _check_labels(labels, x.shape[0])
    ks = _check_ks(ks, x.shape[0])
    nn = _nearest_others(x, max(ks))  # (N, kmax)
    same = lab[nn] == lab[:, None]  # (N, kmax)
    first_hit = np.where(same.any(axis=1), same.argmax(axis=1), np.iinfo(np.int64).max)
    return {k: float(100.0 * np.mean(first_hit < k)) for k in ks}


def map_at_r(emb, labels) -> dict[str, float]:
    """MAP@R and R-Precision in percent (Musgrave et al., "A Metric Learning
    Reality Check", ECCV 2020).

    For query q with R = (number of other items of its class), take its R nearest
    other items: R-Precision = (same-class items among them) / R, and
    MAP@R = (1/R) * sum_{i<=R} P(i) * rel(i), P(i) the precision at rank i.
    Queries whose class has no other item are left out. Returns
    ``{"map@r": ..., "r_precision": ...}``.
    """
    x = _check_emb(emb)
    lab = _check_labels(labels, x.shape[0])
    _, inverse, counts = np.unique(lab, return_inverse=True, return_counts=True)
    r = counts[inverse] - 1  # (N,) other items of each query's class
    keep = r > 0
    if not keep.any():
        raise ValueError("map_at_r: no class has two items")
    nn = _nearest_others(x, int(r.max()))  # (N, Rmax)
    rel = lab[nn] == lab[:, None]  # (N, Rmax)
    ranks = np.arange(1, nn.shape[1] + 1)  # (Rmax,)
    within = ranks[None, :] <= r[:, None]  # (N, Rmax) the first R ranks of each query
    rel &= within
    precision = np.cumsum(rel, axis=1) / ranks[None, :]  # (N, Rmax) P(i)
    rr = np.maximum(r, 1)
    ap = (precision * rel).sum(axis=1) / rr
    rp = rel.sum(axis=1) / rr
    return {"map@r": float(100.0 * ap[keep].mean()), "r_precision": float(100.0 * rp[keep].mean())}


# --------------------------------------------------------------------------- NMI
def nmi(emb, labels, seed: int = 0) -> float:
    """NMI in percent between the classes and one seeded k-means clustering
    (as many clusters as classes; sklearn KMeans, n_init=1; arithmetic NMI)."""
    x = _check_emb(emb, unit=False)
    lab = _check_labels(labels, x.shape[0])
    n_classes = len(np.unique(lab))
    if x.shape[0] < n_classes:
        raise ValueError(f"nmi: {n_classes} classes but only {x.shape[0]} items")
    km = KMeans(n_clusters=n_classes, n_init=1, random_state=int(seed))
    assign = km.fit_predict(x)  # float32: half the memory of float64 at N ~ 1e5
    return float(100.0 * normalized_mutual_info_score(lab, assign, average_method="arithmetic"))


def nmi_runs(emb, labels, seeds: Sequence[int] = (0, 1, 2, 3, 4)) -> tuple[float, float, list[float]]:
    """NMI over several k-means seeds: ``(mean, std, values)`` in percent.
    ``std`` is the sample standard deviation (ddof=1), 0.0 for a single seed."""
    seeds = list(seeds)
    if not seeds:
        raise ValueError("nmi_runs: seeds is empty")
    values = [nmi(emb, labels, seed=s) for s in seeds]
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return float(np.mean(values)), std, values


# --------------------------------------------------------------------------- AP / mAP
def average_precision(ranked_ids, positives, junk=()) -> float:
    """AP in [0, 1] of one ranking, trapezoidal rule as in Oxford's compute_ap.

    Junk items are removed from the ranking first; positives missing from the
    ranking count as never retrieved (``n_pos`` is ``len(positives)``).
    """
    ranked = np.asarray(ranked_ids).ravel()
    if ranked.size and not np.issubdtype(ranked.dtype, np.integer):
        raise ValueError(f"ranked_ids: expected integer ids, got dtype {ranked.dtype}")
    if len(np.unique(ranked)) != len(ranked):
        raise ValueError("ranked_ids: the ranking lists an id more than once")
    pos = np.unique(np.asarray(positives, dtype=np.int64))
    if len(pos) == 0:
        raise ValueError("average_precision: no positives (AP undefined)")
    junk = np.asarray(junk, dtype=np.int64)
    if np.intersect1d(pos, junk).size:
        raise ValueError("average_precision: an id is both positive and junk")
    kept = ranked[~np.isin(ranked, junk)]  # ranking with junk removed
    r = np.flatnonzero(np.isin(kept, pos))  # 0-based ranks of the retrieved positives
    i = np.arange(len(r))
    prec0 = np.where(r > 0, i / np.maximum(r, 1), 1.0)  # precision just before the hit
    prec1 = (i + 1) / (r + 1)  # precision at the hit
    return float(np.sum((prec0 + prec1) / 2.0) / len(pos))


def _check_ranks(ranks, n_queries: int) -> np.ndarray:
    rk = np.asarray(ranks)
    if rk.ndim != 2 or not np.issubdtype(rk.dtype, np.integer):
        raise ValueError(f"ranks: expected a 2-D integer (n_queries, n_db) array, got "
                         f"shape {rk.shape} dtype {rk.dtype}")
    if rk.shape[0] != n_queries:
        hint = " (it looks like (n_db, n_queries): pass ranks.T)" if rk.shape[1] == n_queries else ""
        raise ValueError(f"ranks: expected {n_queries} rows (one per gnd query), got shape "
                         f"{rk.shape}{hint}")
    if rk.size and rk.min() < 0:
        raise ValueError("ranks: negative database index")
    return rk


def _gnd_ids(entry: Mapping, key: str) -> np.ndarray:
    return np.asarray(entry.get(key, []), dtype=np.int64).ravel()


def mean_average_precision(ranks, gnd: Sequence[Mapping]) -> float:
    """Classic Oxford5k/Paris6k mAP in percent. ``ranks`` (n_queries, n_db).

    Each ``gnd[q]`` holds 'good'/'ok'/'junk' (classic) or 'easy'/'hard'/'junk'
    (revisited, read the classic way): positives good+ok (easy+hard), junk
    ignored. Queries with no positives are skipped.
    """
    rk = _check_ranks(ranks, len(gnd))
    aps = []
    for q, entry in enumerate(gnd):
        if "good" in entry or "ok" in entry:
            keys = ("good", "ok")
        elif "easy" in entry or "hard" in entry:
            keys = ("easy", "hard")
        else:
            raise ValueError(f"mean_average_precision: gnd[{q}] has neither 'good'/'ok' "
                             f"nor 'easy'/'hard' (keys {sorted(entry)})")
        pos = np.concatenate([_gnd_ids(entry, k) for k in keys])
        if len(pos):
            aps.append(average_precision(rk[q], pos, _gnd_ids(entry, "junk")))
    if not aps:
        raise ValueError("mean_average_precision: no query has a positive")
    return float(100.0 * np.mean(aps))


def revisited_map(ranks, gnd: Sequence[Mapping]) -> dict[str, float]:
    """Revisited Oxford/Paris mAP in percent: ``{"easy", "medium", "hard"}``.

    Easy: positives easy, junk junk+hard. Medium: positives easy+hard, junk
    junk. Hard: positives hard, junk junk+easy. ``ranks`` (n_queries, n_db);
    queries with no positives under a protocol are skipped for it.
    """
    rk = _check_ranks(ranks, len(gnd))
    protocols = {"easy": (("easy",), ("junk", "hard")),
                 "medium": (("easy", "hard"), ("junk",)),
                 "hard": (("hard",), ("junk", "easy"))}
    out = {}
    for name, (pos_keys, junk_keys) in protocols.items():
        aps = []
        for q, entry in enumerate(gnd):
            missing = [k for k in ("easy", "hard", "junk") if k not in entry]
            if missing:
                raise ValueError(f"revisited_map: gnd[{q}] lacks {missing}")
            pos = np.concatenate([_gnd_ids(entry, k) for k in pos_keys])
            if len(pos):
                junk = np.concatenate([_gnd_ids(entry, k) for k in junk_keys])
                aps.append(average_precision(rk[q], pos, junk))
        if not aps:
            raise ValueError(f"revisited_map: no query has a {name} positive")
        out[name] = float(100.0 * np.mean(aps))
    return out


def rank_database(query_emb, db_emb, block_size: int = 1024) -> np.ndarray:
    """(n_queries, n_db) int64: database indices by decreasing inner product;
    ties keep database order (stable sort)."""
    qx = _check_emb(query_emb, "query_emb")
    dx = _check_emb(db_emb, "db_emb")
    if qx.shape[1] != dx.shape[1]:
        raise ValueError(f"query_emb has dim {qx.shape[1]} but db_emb has dim {dx.shape[1]}")
    ranks = np.empty((qx.shape[0], dx.shape[0]), dtype=np.int64)
    for start in range(0, qx.shape[0], block_size):
        sims = qx[start:start + block_size] @ dx.T  # (b, n_db)
        ranks[start:start + block_size] = np.argsort(-sims, axis=1, kind="stable")
    return ranks


# --------------------------------------------------------------------------- all at once
def evaluate_embeddings(emb, labels, cfg: EvalConfig = EvalConfig()) -> dict:
    """Recall@K for ``cfg.ks`` and NMI over ``cfg.nmi_seeds`` (percent).

    Keys: ``recall@K`` for each K, ``map@r`` and ``r_precision``
    (:func:`map_at_r`), ``nmi`` (mean), ``nmi_std``, ``nmi_runs``
    (list, seed order), ``nmi_seed0`` (the single seed-0 run of the paper's
    protocol).
    """
    out: dict = {f"recall@{k}": v for k, v in recall_at_k(emb, labels, cfg.ks).items()}
    out.update(map_at_r(emb, labels))
    mean, std, values = nmi_runs(emb, labels, cfg.nmi_seeds)
    seeds = list(cfg.nmi_seeds)
    out.update(nmi=mean, nmi_std=std, nmi_runs=values,
               nmi_seed0=values[seeds.index(0)] if 0 in seeds else nmi(emb, labels, seed=0))
    return out
