"""The paper's Figures 1-2 on a 2-D toy manifold: two interleaved moons.

Points ``p`` in the plane are lifted onto the unit sphere in 3-D,
``y = (p, c) / ||(p, c)||`` with a large ``c``: then ``y_i . y_j = 1 -
||p_i - p_j||^2 / (2 c^2) + O(c^-4)``, so ranking by inner product is ranking by
Euclidean distance in the plane, and the library's own pipeline (mutual kNN graph,
truncated CG diffusion, P+ / P- set formulas) runs on the toy unchanged.
Labels (which moon) only colour the picture.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .config import MiningConfig

__all__ = ["two_moons", "lift", "ToyExample", "toy_example", "TOY_MINING"]

# a small graph for a few hundred points; the depths are a few times the graph's k
TOY_MINING = MiningConfig(k_graph=10, k_pos=40, k_neg=80, pool_size=50, cg_dtype="float64",
                          cg_backend="numpy")


def two_moons(n: int = 400, noise: float = 0.08, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points (n, 2) on two interleaved half circles with Gaussian noise, and
    their moon (n,) in {0, 1}. Upper moon: (cos t, sin t); lower: (1 - cos t, 0.5 - sin t)."""
    rng = np.random.default_rng(seed)
    n0 = n // 2
    t0, t1 = np.sort(rng.uniform(0, np.pi, n0)), np.sort(rng.uniform(0, np.pi, n - n0))
    upper = np.c_[np.cos(t0), np.sin(t0)]
    lower = np.c_[1.0 - np.cos(t1), 0.5 - np.sin(t1)]
    points = np.r_[upper, lower] + noise * rng.standard_normal((n, 2))
    return points, np.r_[np.zeros(n0, np.int64), np.ones(n - n0, np.int64)]


def lift(points: np.ndarray, c: float = 20.0) -> np.ndarray:
    """(n, 2) plane points -> (n, 3) unit vectors whose inner products rank as distances."""
    y = np.c_[np.asarray(points, np.float64), np.full(len(points), float(c))]
    return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class ToyExample:
    """One anchor of the toy, mined by the library: what Figures 1-2 draw."""

    points: np.ndarray  # (n, 2)
    labels: np.ndarray  # (n,) moon, for colour only
    anchor: int
    euclidean: np.ndarray  # (n,) inner product of the lifted points with the anchor's
    manifold: np.ndarray  # (n,) f(r): the diffusion from the anchor
    nn_euclidean: np.ndarray  # NN^e_{k+}(r) minus r
    nn_manifold: np.ndarray  # NN^m_{k+}(r) minus r
    positives: np.ndarray  # P+(r)
    negatives: np.ndarray  # P-(r)
    cfg: MiningConfig


def toy_example(n: int = 400, noise: float = 0.08, seed: int = 0,
                anchor_at: tuple[float, float] = (1.0, 0.0),
                cfg: MiningConfig = TOY_MINING) -> ToyExample:
    """Mine the two-moons toy with ``cfg`` and keep the anchor nearest ``anchor_at``
    (by default the tip of the upper moon, which sits inside the lower one's arc:
    its Euclidean neighbours cross to the other moon, its manifold ones do not)."""
    from .diffusion import cg_block, laplacian
    from .graph import affinity, normalize
    from .knn import knn
    from .mining import mine
    points, labels = two_moons(n, noise, seed)
    feats = lift(points)
    anchor = int(np.argmin(np.linalg.norm(points - np.asarray(anchor_at), axis=1)))
    pools = mine(feats, dataclasses.replace(cfg, anchors="all"), progress=False)
    where = np.flatnonzero(pools.anchors == anchor)
    if not len(where):
        raise ValueError(f"toy anchor {anchor} has an empty P+ or P- with {cfg}; move anchor_at")
    i = int(where[0])
    sims, ids = knn(feats, cfg.k_graph)  # (n, k) the graph's neighbours, self included
    S = normalize(affinity(sims, ids, cfg.gamma))
    k = cfg.k_pos
    _, near = knn(feats, k, rows=np.array([anchor]))  # (1, k) NN^e_{k+}(r), r first
    e = np.zeros(n)
    e[anchor] = 1.0
    f = np.asarray(cg_block(laplacian(S, cfg.alpha), e, cfg.cg_iterations, cfg.cg_tol)).ravel()
    order_m = [j for j in np.argsort(-f, kind="stable") if j != anchor]  # by f(r), descending
    return ToyExample(points=points, labels=labels, anchor=anchor, euclidean=feats @ feats[anchor],
                      manifold=f, nn_euclidean=near[0][near[0] != anchor],
                      nn_manifold=np.asarray(order_m[: k - 1]),
                      positives=np.asarray(pools.positives[i]),
                      negatives=np.asarray(pools.negatives[i]), cfg=cfg)
