"""The pool-depth grid: what ``k_pos/k_neg: auto`` picks across class sizes and class
counts it cannot know, against fixed depths (notebook 05_pool_depths).

One mining pass per (images a class, training classes, depth rule); training
labels are read only for the reported diagnostics (P+ precision, P- purity),
never to choose anything.
"""
from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .config import RunConfig, apply_overrides
from .io import atomic_write, save_json

__all__ = ["FIXED_DEPTHS", "depth_grid", "save_depth_grid", "load_depth_grid", "plot_depth_grid"]

# the fixed depths the auto rule is compared with: (k+, k-)
FIXED_DEPTHS = {"first default": (100, 1250), "paper": (50, 100)}
COLUMNS = ("per_class", "classes", "n", "rule", "k_graph", "k_pos", "k_neg", "statistic", "value",
           "communities", "n_anchors", "n_skipped", "pos_precision", "pos_precision_euclid",
           "neg_purity", "baseline_pos_precision", "baseline_neg_purity", "note")


def depth_grid(base: RunConfig, per_class: Sequence[int] = (20, 50, 100, 200, 500, 1000),
               n_classes: Sequence[int] = (2, 3, 4, 5),
               fixed: Mapping[str, tuple[int, int]] = FIXED_DEPTHS,
               small_k_graph: int | None = 10, cache_dir=None,
               progress: bool = True) -> list[dict[str, Any]]:
    """One row per (per_class, training classes 0..c-1, rule): the depths mined with and
    the pool diagnostics. Rules: "auto", then each of ``fixed``; a fixed depth with
    k+ >= N gets a row with a ``note`` instead of numbers. Cells whose classes are
    smaller than ``base.mining.k_graph`` also get an "auto" row at ``small_k_graph``
    (does the graph's k matter when it exceeds a class?)."""
    from tqdm.auto import tqdm

    from .mining import mine, pool_diagnostics
    from .pipeline import embed_split, train_split

    if base.data.dataset != "fashion_mnist":
        raise ValueError(f"depth_grid varies Fashion-MNIST's classes; params {base.name!r} use "
                         f"dataset {base.data.dataset!r}")
    cells = [(pc, c) for c in n_classes for pc in per_class]
    rows: list[dict[str, Any]] = []
    for pc, c in tqdm(cells, desc="depth grid", disable=not progress, unit="cell"):
        cfg = apply_overrides(base, {"data.per_class": pc, "data.classes": list(range(c))})
        ds = train_split(cfg)
        feats, _ = embed_split(cfg, ds, cache_dir=cache_dir, progress=False)
        labels = np.asarray(ds.labels)
        n = len(ds)
        rules = [("auto", dataclasses.replace(cfg.mining, k_pos="auto", k_neg="auto"))]
        if small_k_graph is not None and pc < cfg.mining.k_graph and small_k_graph < n:
            rules.append(("auto", dataclasses.replace(cfg.mining, k_pos="auto", k_neg="auto",
                                                      k_graph=small_k_graph)))
        rules += [(name, dataclasses.replace(cfg.mining, k_pos=kp, k_neg=kn))
                  for name, (kp, kn) in fixed.items()]
        for rule, mcfg in rules:
            row: dict[str, Any] = {"per_class": pc, "classes": c, "n": n, "rule": rule,
                                   "k_graph": mcfg.k_graph}
            if mcfg.k_pos != "auto" and mcfg.k_pos >= n:
                rows.append({**row, "k_pos": mcfg.k_pos, "k_neg": mcfg.k_neg,
                             "note": f"k+ {mcfg.k_pos} >= N {n}: cannot mine"})
                continue
            pools = mine(feats, mcfg)
            d = pools.depths
            diag = pool_diagnostics(pools, feats, labels)
            row.update(k_pos=d.k_pos, k_neg=min(d.k_neg, -(-n // 2)), statistic=d.statistic,
                       value=d.value, communities=d.communities, n_anchors=len(pools),
                       n_skipped=int(pools.n_skipped), note="")
            row.update({k: round(float(diag[k]), 4) for k in COLUMNS if k in diag})
            rows.append(row)
    return rows


def save_depth_grid(rows: Sequence[Mapping[str, Any]], folder) -> list[Path]:
    """``depth_grid.csv`` and ``depth_grid.json`` in ``folder`` (atomic writes)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "depth_grid.csv", "w") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in COLUMNS})
    save_json(folder / "depth_grid.json", {"rows": list(rows), "fixed": FIXED_DEPTHS})
    return [folder / "depth_grid.csv", folder / "depth_grid.json"]


def load_depth_grid(folder) -> list[dict[str, Any]]:
    with open(Path(folder) / "depth_grid.json") as fh:
        return json.load(fh)["rows"]


def plot_depth_grid(rows: Sequence[Mapping[str, Any]], base_k_graph: int = 30):
    """Two panels against images a class: the k+ auto chose (with class / 3 and / 6 for
    scale), and P+ precision per rule beside the Euclidean neighbours at auto's depth."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ok = [r for r in rows if not r.get("note") and r["k_graph"] == base_k_graph]
    auto = [r for r in ok if r["rule"] == "auto"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    pal = dict(zip(sorted({r["classes"] for r in rows}), sns.color_palette("viridis", 4)))
    for c, color in pal.items():
        pts = sorted((r["per_class"], r["k_pos"]) for r in auto if r["classes"] == c)
        if pts:
            a.plot(*zip(*pts), "o-", color=color, label=f"{c} classes")
    xs = np.array(sorted({r["per_class"] for r in rows}), float)
    a.plot(xs, xs / 3, "k--", lw=1, label="class / 3")
    a.plot(xs, xs / 6, "k:", lw=1, label="class / 6")
    a.set(xscale="log", yscale="log", xlabel="images a class (unknown to the rule)",
          ylabel=r"$k^+$ chosen by auto", title=r"(a) auto $k^+$ from the graph")
    a.legend(fontsize=8)
    styles = {"auto": "o-", "first default": "s--", "paper": "^:"}
    for rule, style in styles.items():
        pts = sorted((r["per_class"], r["pos_precision"]) for r in ok
                     if r["rule"] == rule and r["classes"] == max(pal))
        if pts:
            b.plot(*zip(*pts), style, label=f"$P^+$, {rule}")
    pts = sorted((r["per_class"], r["pos_precision_euclid"]) for r in auto
                 if r["classes"] == max(pal))
    if pts:
        b.plot(*zip(*pts), "x-", color="grey", label=r"Euclidean, auto's depth")
    b.set(xscale="log", xlabel="images a class", ylabel="precision (training labels)",
          title=f"(b) $P^+$ precision, {max(pal)} classes", ylim=(0, 1))
    b.legend(fontsize=8)
    fig.tight_layout()
    return fig
