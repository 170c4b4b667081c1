"""The pool-depth grid: what ``k_pos/k_neg: auto`` picks across class sizes and class
counts it cannot know, against fixed depths (notebook 05_pool_depths).

One mining pass per (images a class, training classes, depth rule); training
labels are read only for the reported diagnostics (P+ precision, P- purity),
never to choose anything.
"""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..config import RunConfig, apply_overrides
from ..io import atomic_write

__all__ = ["FIXED_DEPTHS", "FIXED_RECIPE", "FIXED_RECIPE_NAME", "PLAN_FILE", "load_plan", "depth_grid", "adapted_cells",
           "save_depth_grid", "recipe_contrasts", "recipe_contrast_table",
           "plot_depth_grid", "class_size_studies", "class_size_table", "plot_class_size_studies"]

# the fixed depths the auto rule is compared with, by name: (k+, k-). 100 / 1250 are
# depths scaled to the offline default's 500 images a class; 50 / 100 the paper's for CUB
FIXED_DEPTHS = {"fixed 100/1250": (100, 1250), "paper 50/100": (50, 100)}
# the comparison recipe of the class-size studies: those fixed depths on the graph at
# k_graph, one epoch of N tuples, no guard
FIXED_RECIPE_NAME = "fixed 100/1250, no guard"
FIXED_RECIPE = {"mining.k_pos": 100, "mining.k_neg": 1250, "mining.adapt_k_graph": False,
                "train.guard": "none", "train.epochs": 1, "train.tuples_per_epoch": None}
COLUMNS = ("per_class", "classes", "n", "rule", "k_graph", "k_graph_value", "k_pos", "k_neg",
           "statistic", "value", "communities", "n_anchors", "n_skipped", "pos_precision", "pos_precision_euclid",
           "neg_purity", "baseline_pos_precision", "baseline_neg_purity", "note")


PLAN_FILE = Path(__file__).resolve().parent.parent / "params" / "studies" / "pool_depths.yaml"
_PLAN_KEYS = {"per_class", "classes", "study_cells", "seeds"}


def load_plan(params: str) -> dict[str, Any]:
    """The grid and trained cells of notebook 05 for parameter file ``params``
    (``params/studies/pool_depths.yaml``; a name without an entry gets the default's)."""
    import yaml

    with open(PLAN_FILE) as fh:
        plans = yaml.safe_load(fh)
    plan = plans.get(Path(params).stem, plans["default"])
    if set(plan) != _PLAN_KEYS:
        raise ValueError(f"{PLAN_FILE}: the plan of {params!r} needs exactly the keys "
                         f"{sorted(_PLAN_KEYS)}, got {sorted(plan)}")
    return plan


def _cell(per_class: int, classes: int) -> dict[str, Any]:
    """Overrides of one cell: the first ``classes`` training classes (all of them is
    ``data.classes: null``, the parameter files' own value, so caches are shared)."""
    from ..datasets.fashion_mnist import SPLIT_CLASSES
    every = len(SPLIT_CLASSES["train"])
    if not 1 <= classes <= every:
        raise ValueError(f"depth grid: {classes} training classes; Fashion-MNIST's train split "
                         f"has {every}")
    return {"data.per_class": per_class,
            "data.classes": list(range(classes)) if classes < every else None}


def depth_grid(base: RunConfig, per_class: Sequence[int] = (20, 50, 100, 200, 500, 1000),
               n_classes: Sequence[int] = (2, 3, 4, 5),
               fixed: Mapping[str, tuple[int, int]] = FIXED_DEPTHS,
               small_k_graph: int | None = 10, cache_dir=None,
               progress: bool = True) -> list[dict[str, Any]]:
    """One row per (per_class, training classes 0..c-1, rule): the depths mined with and
    the pool diagnostics. Rules: "auto" (depths auto on the graph at
    ``base.mining.k_graph``), "auto+k_graph" (depths auto and ``adapt_k_graph``, the
    graph's k read from its communities; ``k_graph`` is the k it chose), then each of
    ``fixed``; a fixed depth with k+ >= N gets a row with a ``note`` instead of
    numbers. Cells whose classes are smaller than ``base.mining.k_graph`` also get an
    "auto" row at ``small_k_graph`` (does the graph's k matter when it exceeds a class?)."""
    from tqdm.auto import tqdm

    from ..mining import capped_k_neg, mine, pool_diagnostics
    from ..datasets.splits import train_split
    from ..pipeline import embed_split

    if base.data.dataset != "fashion_mnist":
        raise ValueError(f"depth_grid varies Fashion-MNIST's classes; params {base.name!r} use "
                         f"dataset {base.data.dataset!r}")
    cells = [(pc, c) for c in n_classes for pc in per_class]
    rows: list[dict[str, Any]] = []
    for pc, c in tqdm(cells, desc="depth grid", disable=not progress, unit="cell"):
        cfg = apply_overrides(base, _cell(pc, c))
        ds = train_split(cfg)
        feats, _ = embed_split(cfg, ds, cache_dir=cache_dir, progress=False)
        labels = np.asarray(ds.labels)
        n = len(ds)
        rules = [("auto", dataclasses.replace(cfg.mining, k_pos="auto", k_neg="auto",
                                              adapt_k_graph=False)),
                 ("auto+k_graph", dataclasses.replace(cfg.mining, k_pos="auto", k_neg="auto",
                                                      adapt_k_graph=True))]
        if small_k_graph is not None and pc < cfg.mining.k_graph and small_k_graph < n:
            rules.append(("auto", dataclasses.replace(cfg.mining, k_pos="auto", k_neg="auto",
                                                      k_graph=small_k_graph, adapt_k_graph=False)))
        rules += [(name, dataclasses.replace(cfg.mining, k_pos=kp, k_neg=kn, adapt_k_graph=False))
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
            if d.k_graph is not None:  # the adapted graph's k and the statistic behind it
                row.update(k_graph=d.k_graph, k_graph_value=d.k_graph_value)
            row.update(k_pos=d.k_pos, k_neg=capped_k_neg(d.k_neg, n), statistic=d.statistic,
                       value=d.value, communities=d.communities, n_anchors=len(pools),
                       n_skipped=int(pools.n_skipped), note="")
            row.update({k: round(float(diag[k]), 4) for k in COLUMNS if k in diag})
            rows.append(row)
    return rows


def adapted_cells(rows: Sequence[Mapping[str, Any]], cells: Sequence[tuple[int, int]],
                  base_k_graph: int) -> list[tuple[int, int]]:
    """The ``(per_class, classes)`` of ``cells`` whose graph ``adapt_k_graph`` changed:
    their "auto+k_graph" row of the grid chose a k below ``base_k_graph`` (no labels)."""
    changed = {(r["per_class"], r["classes"]) for r in rows
               if r["rule"] == "auto+k_graph" and not r.get("note") and r["k_graph"] < base_k_graph}
    return [tuple(c) for c in cells if tuple(c) in changed]


def save_depth_grid(rows: Sequence[Mapping[str, Any]], path) -> Path:
    """The grid as CSV at ``path`` (atomic), one line per row, columns :data:`COLUMNS`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in COLUMNS})
    return path


def plot_depth_grid(rows: Sequence[Mapping[str, Any]], base_k_graph: int = 30):
    """Two panels against images a class: the k+ auto chose (with class / 3 and / 6 for
    scale), and P+ precision per rule beside the Euclidean neighbours at auto's depth."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ok = [r for r in rows if not r.get("note")
          and (r["k_graph"] == base_k_graph or r["rule"] == "auto+k_graph")]
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
    styles = {"auto": "o-", "auto+k_graph": "D-", "fixed 100/1250": "s--", "paper 50/100": "^:"}
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


def class_size_studies(base: RunConfig, cells: Sequence[tuple[int, int]], out, *,
                       recipes: Mapping[str, Mapping[str, Any]] | None = None, seeds: int = 5,
                       work_dir=None, progress: bool = True) -> list[dict[str, Any]]:
    """A label-free study (``--select none``, ``seeds`` seeds) per (per_class, classes)
    cell and recipe: ``recipes`` maps a name to overrides of ``base`` (default: the
    parameter file as it is, "params", and :data:`FIXED_RECIPE`). Each study goes to
    ``out/<recipe>/pc<per_class>-c<classes>/``; all share ``work_dir``. Returns one
    summary per study (see :func:`class_size_table`)."""
    from ..studies import StudyConfig, study

    recipes = recipes if recipes is not None else {"params": {}, FIXED_RECIPE_NAME: FIXED_RECIPE}
    out = Path(out)
    work = Path(work_dir) if work_dir is not None else out / "work"
    summaries = []
    for name, overrides in recipes.items():
        for pc, c in cells:
            cfg = apply_overrides(base, {**overrides, **_cell(pc, c)})
            n = pc * c
            if cfg.mining.k_pos != "auto" and cfg.mining.k_pos >= n:
                summaries.append({"recipe": name, "per_class": pc, "classes": c, "n": n,
                                  "note": f"k+ {cfg.mining.k_pos} >= N {n}: cannot mine"})
                continue
            folder = out / name.replace(" ", "_") / f"pc{pc}-c{c}"
            res = study(cfg, folder, StudyConfig(select="none", seeds=seeds, grid=()),
                        work_dir=work, progress=progress)
            summaries.append({"recipe": name, "per_class": pc, "classes": c, "n": n,
                              "folder": str(folder), "depths": res.get("depths"),
                              "guard_kept": (res.get("guard") or {}).get("kept_epoch"),
                              "pools": res.get("pools"), "rows": res["rows"],
                              "paired": res["paired"], "note": ""})
    return summaries


def class_size_table(summaries: Sequence[Mapping[str, Any]],
                     metrics: Sequence[str] = ("recall@1", "nmi")) -> str:
    """Markdown: per cell and recipe, the depths, P+ precision, and each paired
    difference (mean [95% CI] over seeds) against the initial embedding."""
    def ci(s):
        return f"{s['mean']:+.2f} [{s['ci95'][0]:+.2f}, {s['ci95'][1]:+.2f}]"
    head = ["images a class", "classes", "recipe", "k+ / k-", "P+ prec."]
    head += [f"{pair} {m}" for pair in ("mom-initial", "euclidean-initial") for m in metrics]
    head += ["guard kept (mom)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        if s.get("note"):
            lines.append(f"| {s['per_class']} | {s['classes']} | {s['recipe']} | "
                         + " | ".join([s["note"]] + [""] * (len(head) - 4)) + " |")
            continue
        d = s["depths"] or {}
        kept = (s.get("guard_kept") or {}).get("mom")
        cells = [str(s["per_class"]), str(s["classes"]), s["recipe"],
                 f"{d.get('k_pos')} / {d.get('k_neg')}",
                 f"{s['pools'].get('pos_precision', float('nan')):.2f}"]
        cells += [ci(s["paired"][pair][m]) for pair in ("mom-initial", "euclidean-initial")
                  for m in metrics]
        cells.append(" ".join(map(str, kept)) if kept else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mom_by_seed(folder, metric: str) -> dict[int, float]:
    """{seed: the MoM row's test ``metric``} from a study folder's ``runs.csv``."""
    with open(Path(folder) / "runs.csv", newline="") as fh:
        return {int(r["seed"]): float(r[metric]) for r in csv.DictReader(fh)
                if r["split"] == "test" and r["row"] == "mom"}


def recipe_contrasts(summaries: Sequence[Mapping[str, Any]], a: str, b: str,
                     metrics: Sequence[str] = ("recall@1", "nmi", "map@r")) -> list[dict[str, Any]]:
    """Recipe ``a`` minus recipe ``b`` for the MoM row, paired per seed, in every cell
    both trained (the same seeds, test images and initial network: the studies differ
    only in the recipe). One ``{"per_class", "classes", a, b, metric: paired(...)}`` a cell."""
    from ..stats import paired

    done = {(s["recipe"], s["per_class"], s["classes"]): s for s in summaries if not s.get("note")}
    out = []
    for (rec, pc, c), sa in done.items():
        sb = done.get((b, pc, c))
        if rec != a or sb is None:
            continue
        row: dict[str, Any] = {"per_class": pc, "classes": c, "a": a, "b": b}
        for m in metrics:
            va, vb = _mom_by_seed(sa["folder"], m), _mom_by_seed(sb["folder"], m)
            seeds = sorted(set(va) & set(vb))
            row[m] = paired([va[i] for i in seeds], [vb[i] for i in seeds], f"{a} - {b} {m}")
        out.append(row)
    return out


def recipe_contrast_table(contrasts: Sequence[Mapping[str, Any]],
                          metrics: Sequence[str] = ("recall@1", "nmi", "map@r")) -> str:
    """Markdown: per cell, recipe a minus recipe b on the MoM row (mean [95% CI], seeds)."""
    head = ["images a class", "classes", "MoM: a − b"] + list(metrics) + ["seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in contrasts:
        cells = [str(r["per_class"]), str(r["classes"]), f"{r['a']} − {r['b']}"]
        for m in metrics:
            d = r[m]
            lo, hi = d["ci95"] if d["ci95"] else (float("nan"), float("nan"))
            cells.append(f"{d['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}]")
        cells.append(str(r[metrics[0]]["n"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_class_size_studies(summaries: Sequence[Mapping[str, Any]], metric: str = "recall@1"):
    """MoM minus the initial embedding (mean and 95% CI over seeds) per cell, one
    colour per recipe: the "do no harm" check."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    done = [s for s in summaries if not s.get("note")]
    recipes = list(dict.fromkeys(s["recipe"] for s in done))
    cells = list(dict.fromkeys((s["per_class"], s["classes"]) for s in done))
    colors = dict(zip(recipes, sns.color_palette("deep", len(recipes))))
    from .viz import metric_label
    fig, ax = plt.subplots(figsize=(2.4 + 1.3 * len(cells), 4.4), layout="constrained")
    width = 0.8 / max(1, len(recipes))
    for j, rec in enumerate(recipes):
        labelled = False  # the recipe's first point drawn carries its legend entry
        for i, cell in enumerate(cells):
            s = next((s for s in done if s["recipe"] == rec and (s["per_class"], s["classes"]) == cell), None)
            if s is None:
                continue
            d = s["paired"]["mom-initial"][metric]
            x = i + (j - (len(recipes) - 1) / 2) * width
            ax.errorbar(x, d["mean"], yerr=[[d["mean"] - d["ci95"][0]], [d["ci95"][1] - d["mean"]]],
                        fmt="o", color=colors[rec], capsize=3, label=None if labelled else rec)
            labelled = True
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(cells)), [f"{pc} images a class\n{c} classes" for pc, c in cells],
                  fontsize=8)
    ax.set(ylabel=f"MoM − initial, {metric_label(metric)} (percentage points)",
           title=f"Do no harm: MoM − initial {metric_label(metric)}, mean and 95% t interval "
                 "over seeds")
    ax.title.set_fontsize(10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=len(recipes),
              frameon=False, title="recipe", title_fontsize=8)
    return fig
