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
class and about half a class at 500-1000 (results/default/pool_depths.json), so
k+ lands between 1/6 and 1/3 of a class and k- between 2 and 4 classes' worth.

``mining.adapt_k_graph: true`` also reads the graph's own k from it, in two passes
(docs/method.md §6b): c0 is the typical community size of the graph at the
configured k_graph (the cap), and

    k_graph = min(k_graph, max(K_GRAPH_MIN, round(c0 / GRAPH_DIVISOR)))

A kNN graph whose k exceeds a class must link every image across classes; the
paper's CUB setting (k 30 for ~59 images a class) is k ~ half a class. The graph
is rebuilt from the first k_graph neighbours already found (no second search),
and the depths come from the rebuilt graph's communities.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["Depths", "communities", "typical_size", "auto_depths", "adapted_k_graph",
           "resolve_depths", "POS_DIVISOR", "NEG_FACTOR", "MIN_COMMUNITY", "GRAPH_DIVISOR",
           "K_GRAPH_MIN"]

POS_DIVISOR = 3.0  # k+ = c / POS_DIVISOR
NEG_FACTOR = 4.0  # k- = NEG_FACTOR * c
MIN_COMMUNITY = 3.0  # below this a typical image has no manifold neighbourhood to mine
GRAPH_DIVISOR = 2.0  # adapted k_graph = c0 / GRAPH_DIVISOR (capped at the configured k_graph)
K_GRAPH_MIN = 5  # the adapted graph keeps at least this many neighbours (self included)


@dataclass(frozen=True)
class Depths:
    """Resolved depths and where they came from (saved in results.json)."""

    k_pos: int
    k_neg: int
    rule: str  # "fixed" | "auto"
    statistic: str | None = None  # "typical_community_size" for auto
    value: float | None = None  # the statistic's value
    communities: int | None = None  # how many communities Louvain found
    # the graph's k (mining.adapt_k_graph): the one used, and the typical community size
    # of the first pass at the configured k_graph that it came from
    k_graph: int | None = None
    k_graph_value: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str | None:
        """What was read from the graph, one clause each (None for fixed depths on a
        fixed graph): "depths (auto): k+ 8, k- 50 from ...; k_graph (adapted): 12 from ..."."""
        parts = []
        if self.rule == "auto":
            parts.append(f"depths (auto): k+ {self.k_pos}, k- {self.k_neg} from {self.statistic} "
                         f"{self.value:.1f} ({self.communities} communities)")
        if self.k_graph is not None:
            parts.append(f"k_graph (adapted): {self.k_graph} from typical_community_size "
                         f"{self.k_graph_value:.1f} at the configured k_graph")
        return "; ".join(parts) or None


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


def auto_depths(A: sp.spmatrix, seed: int = 0, labels: np.ndarray | None = None) -> Depths:
    """k+ and k- from the typical community size of ``A`` (module docstring).

    Raises ValueError naming the statistic when the graph gives no usable size
    (no edges, or communities smaller than MIN_COMMUNITY images)."""
    n = A.shape[0]
    labels = communities(A, seed) if labels is None else labels
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


def adapted_k_graph(A: sp.spmatrix, k_graph: int,
                    seed: int = 0) -> tuple[int, float, np.ndarray]:
    """The graph's k read from the first-pass graph ``A`` (built at ``k_graph``, the cap):
    ``(min(k_graph, max(K_GRAPH_MIN, round(c0 / GRAPH_DIVISOR))), c0, labels)`` with c0
    the typical size of its Louvain communities ``labels`` (reusable when k stays
    ``k_graph``: the graph is then ``A`` itself). Raises ValueError naming the statistic
    on an edgeless graph."""
    labels = communities(A, seed)
    c0 = typical_size(labels)
    if A.nnz == 0:
        raise ValueError(f"mining.adapt_k_graph: the mutual kNN graph at k_graph={k_graph} has no "
                         f"edges (typical_community_size={c0:.2f}), so there is no community size "
                         "to read k from; set mining.adapt_k_graph: false")
    k = min(int(k_graph), max(K_GRAPH_MIN, round(c0 / GRAPH_DIVISOR)))
    return k, round(c0, 3), labels


def resolve_depths(cfg, A: sp.spmatrix, labels: np.ndarray | None = None) -> Depths:
    """The depths ``cfg`` (a MiningConfig) asks for on graph ``A``: its numbers, or the
    auto rule for whichever of k_pos/k_neg is "auto" (``labels``: A's Louvain
    communities when already known)."""
    if cfg.k_pos != "auto" and cfg.k_neg != "auto":
        return Depths(int(cfg.k_pos), int(cfg.k_neg), "fixed")
    auto = auto_depths(A, seed=cfg.seed, labels=labels)
    k_pos = auto.k_pos if cfg.k_pos == "auto" else int(cfg.k_pos)
    k_neg = auto.k_neg if cfg.k_neg == "auto" else int(cfg.k_neg)
    return Depths(k_pos, k_neg, "auto", auto.statistic, auto.value, auto.communities)
