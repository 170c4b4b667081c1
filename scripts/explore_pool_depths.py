"""Exploration for issue 9 (not a claim): P+ precision against k+ across class sizes (notes/pool_depths.md),
and a label-free statistic of the graph/diffusion that might track class size."""
import dataclasses, json
import numpy as np
from mom.config import load_params, apply_overrides
from mom.datasets.splits import train_split
from mom.pipeline import embed_split
from mom.mining import mine, pool_diagnostics
from mom.knn import knn
from mom.graph import affinity, normalize, components
from mom.diffusion import manifold_topk

base = load_params("default")
out = []
for pc in (20, 100, 500, 1000):
    cfg = apply_overrides(base, {"data.per_class": pc})
    ds = train_split(cfg)
    feats, _ = embed_split(cfg, ds, cache_dir="runs/explore/cache", progress=False)
    labels = np.asarray(ds.labels)
    n = len(ds)
    sims, ids = knn(feats, 30)
    A = affinity(sims, ids, 3.0)
    S = normalize(A)
    anchors = np.random.default_rng(0).choice(n, size=min(200, n), replace=False)
    vals, mids = manifold_topk(S, anchors, k=min(n, 2000))
    # participation ratio of the truncated diffusion: (sum f)^2 / sum f^2 (effective support)
    pr = (vals.sum(1) ** 2) / (vals ** 2).sum(1)
    ncomp = components(A)[0]
    row = {"per_class": pc, "N": n, "components": int(ncomp), "median_pr": float(np.median(pr))}
    for kp in (5, 10, 20, 50, 100, 200):
        if kp >= n // 2:
            continue
        m = mine(feats, dataclasses.replace(cfg.mining, k_pos=kp, k_neg=min(max(10 * kp, 100), n // 2)))
        d = pool_diagnostics(m, feats, labels)
        row[f"k+{kp}"] = (round(d["pos_precision"], 3), round(d["pos_precision_euclid"], 3), round(d["neg_purity"], 3))
    print(json.dumps(row))
    out.append(row)
print(json.dumps(out, indent=1))
