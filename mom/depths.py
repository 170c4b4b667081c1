"""Pool depths from the unlabeled graph: ``mining.k_pos: auto`` / ``k_neg: auto``
(docs/method.md §6a).

The paper fixes k+ and k- for CUB's ~59 images a class; the right depth is a
fraction of a class, and a user's collection has class sizes nobody knows. The
rule here reads a size from the mutual kNN graph itself, with no labels:

    c  = typical community size: the graph is split into communities by Louvain
         modularity (networkx, fixed seed), and c is the size of the community of
         a typical image, sum_m |C_m|^2 / N (a size-weighted mean, so isolated
         images and small fragments count by the images they hold)
    k+ = round(c / 3)          (P+ beat the Euclidean ranks most at 1/5-1/2 of a class)
    k- = round(4 c)            (P- purity saturates past about twice a class; capped at ceil(N/2))

On Fashion-MNIST Louvain's communities are about a class at 20-100 images a
class and about half a class at 500-1000 (results/pool_depths/), so k+ lands
between 1/6 and 1/3 of a class and k- between 2 and 4 classes' worth.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["Depths", "communities", "typical_size", "auto_depths", "resolve_depths",
           "POS_DIVISOR", "NEG_FACTOR", "MIN_COMMUNITY"]

POS_DIVISOR = 3.0  # k+ = c / POS_DIVISOR
NEG_FACTOR = 4.0  # k- = NEG_FACTOR * c
MIN_COMMUNITY = 3.0  # below this a typical image has no manifold neighbourhood to mine


@dataclass(frozen=True)
class Depths:
    """Resolved depths and where they came from (saved in results.json)."""

    k_pos: int
    k_neg: int
    rule: str  # "fixed" | "auto"
    statistic: str | None = None  # "typical_community_size" for auto
    value: float | None = None  # the statistic's value
    communities: int | None = None  # how many communities Louvain found

    def to_dict(self) -> dict:
        return asdict(self)


def communities(A: sp.spmatrix, seed: int = 0) -> np.ndarray:
    """(N,) int64 Louvain community label of each node of the weighted graph ``A``
    (networkx, modularity resolution 1; isolated nodes are communities of one)."""
    import networkx as nx

    G = nx.from_scipy_sparse_array(sp.csr_matrix(A), edge_attribute="weight")
    labels = np.zeros(A.shape[0], np.int64)
    for i, c in enumerate(nx.community.louvain_communities(G, weight="weight", seed=seed)):
        labels[list(c)] = i
    return labels


def typical_size(labels: np.ndarray) -> float:
    """Mean over nodes of the size of their community: sum_m |C_m|^2 / N."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return 0.0
    counts = np.bincount(labels)
    return float((counts.astype(np.float64) ** 2).sum() / labels.size)


def auto_depths(A: sp.spmatrix, seed: int = 0) -> Depths:
    """k+ and k- from the typical community size of ``A`` (module docstring).

    Raises ValueError naming the statistic when the graph gives no usable size
    (no edges, or communities smaller than MIN_COMMUNITY images)."""
    n = A.shape[0]
    labels = communities(A, seed)
    c = typical_size(labels)
    m = int(np.unique(labels).size)
    if A.nnz == 0 or c < MIN_COMMUNITY:
        why = "the graph has no edges" if A.nnz == 0 else f"{m} communities for {n} images"
        raise ValueError(
            f"mining.k_pos/k_neg=auto: typical_community_size={c:.2f} of the mutual kNN graph "
            f"({why}) is below {MIN_COMMUNITY:g}, so there is no manifold neighbourhood to set a "
            f"depth from; give k_pos and k_neg as numbers or raise mining.k_graph")
    k_pos = max(1, round(c / POS_DIVISOR))
    k_neg = min(math.ceil(n / 2), max(k_pos + 1, round(NEG_FACTOR * c)))
    if k_pos >= n:
        raise ValueError(f"mining.k_pos=auto: typical_community_size={c:.1f} gives k+ {k_pos} "
                         f">= N={n}")
    return Depths(k_pos, k_neg, "auto", "typical_community_size", round(c, 3), m)


def resolve_depths(cfg, A: sp.spmatrix) -> Depths:
    """The depths ``cfg`` (a MiningConfig) asks for on graph ``A``: its numbers, or the
    auto rule for whichever of k_pos/k_neg is "auto"."""
    if cfg.k_pos != "auto" and cfg.k_neg != "auto":
        return Depths(int(cfg.k_pos), int(cfg.k_neg), "fixed")
    auto = auto_depths(A, seed=cfg.seed)
    k_pos = auto.k_pos if cfg.k_pos == "auto" else int(cfg.k_pos)
    k_neg = auto.k_neg if cfg.k_neg == "auto" else int(cfg.k_neg)
    return Depths(k_pos, k_neg, "auto", auto.statistic, auto.value, auto.communities)
