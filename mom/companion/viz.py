"""Figures: every function returns a matplotlib Figure; ``save_figure`` writes it.

The Figure 3 galleries live in ``mom.companion.gallery`` and are re-exported here, so
that notebooks draw everything through ``mom.companion.viz``.

Inputs are arrays (features, similarities, pools) or the JSON records a notebook
saves; labels only colour the pictures, they never feed back into mining or training.
Notebooks call these and nothing else draws.

Every figure is held to one standard:

- every axis is labelled, with its unit ("percentage points", "inner product", "PC 1
  of the descriptors"); an epoch axis says how many tuples an epoch is
  (:func:`epoch_label`), since the offline default's epoch is a quarter pass;
- a claim about a difference is drawn as that difference (trained minus initial,
  MoM minus Euclidean) around a zero line, with its 95% interval where seeds give one
  and the words "one run, no interval" where they do not (:func:`plot_differences`);
  no bar axis starts at 0 when the differences are tenths of a point;
- legends sit outside the data (below the axes, or beside them);
- where a caption speaks of classes, points are coloured by class
  (:func:`class_colours`; display only);
- scatters of many points are rasterised in the SVG (:func:`save_figure`), so the
  vector files stay small.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .gallery import (OTHER, SAME, gallery_figure, gallery_ids, label_colours, plot_gallery,
                      thumbnail)
from ..io import atomic_write
from ..whitening import pca

__all__ = ["project_2d", "class_colours", "epoch_size", "epoch_label", "metric_label", "plot_diffusion",
           "plot_stationary", "plot_pools_2d", "plot_grouped_bars", "math_label",
           "pool_diagnostics_groups", "plot_pool_diagnostics", "plot_differences",
           "plot_before_after", "plot_table1", "gallery_ids", "plot_gallery",
           "gallery_figure", "thumbnail", "save_figure", "SAME", "OTHER",
           "plot_study_rows", "plot_study_paired", "plot_study_curves", "save_study_figures",
           "plot_toy_manifold", "plot_hardness", "RASTER_MIN_POINTS"]

_GROUP_COLOURS = {"mom": "tab:blue", "euclidean": "tab:orange", "initial": "tab:gray",
                  "MoM (paper)": "lightsteelblue", "Cyclic match (paper)": "tab:purple"}
# a scatter of at least this many points is drawn as an image in the SVG file
RASTER_MIN_POINTS = 200
_METRIC_NAMES = {"recall@1": "R@1", "recall@2": "R@2", "recall@4": "R@4", "recall@8": "R@8",
                 "nmi": "NMI", "map@r": "MAP@R", "r_precision": "R-Precision",
                 "map": "mAP", "map_medium": "mAP (medium)"}
POINTS = "percentage points"


def metric_label(metric: str) -> str:
    """The short name of a metric key: "recall@1" -> "R@1", "nmi" -> "NMI"."""
    return _METRIC_NAMES.get(metric, metric)


def epoch_size(tuples_per_epoch: Any) -> str:
    """What one epoch is, from ``train.tuples_per_epoch``: None is one pass (N tuples, N
    the training images), a float a fraction of N, an int a tuple count."""
    if tuples_per_epoch is None:
        return "N tuples, one pass"
    if isinstance(tuples_per_epoch, float):
        passes = f"; {1 / tuples_per_epoch:g} make one pass" if tuples_per_epoch < 1 else ""
        return f"{tuples_per_epoch:g} N tuples{passes}"
    return f"{tuples_per_epoch} tuples"


def epoch_label(tuples_per_epoch: Any) -> str:
    """An epoch axis's label: "epoch (0.25 N tuples; 4 make one pass)"."""
    return f"epoch ({epoch_size(tuples_per_epoch)})"


def class_colours(labels: np.ndarray) -> tuple[np.ndarray, dict[int, Any]]:
    """(an RGBA colour per point, {label: colour}) for colouring points by class
    (display only; unknown labels, -1, are grey)."""
    labels = np.asarray(labels)
    classes = [c for c in np.unique(labels) if c >= 0]
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    palette = {int(c): cmap(i % cmap.N) for i, c in enumerate(classes)}
    grey = (0.6, 0.6, 0.6, 1.0)
    return np.array([palette.get(int(c), grey) for c in labels]), palette


def _figure_legend(fig: Figure, *, ncol: int = 3, classes: Mapping[int, Any] | None = None,
                   class_names: Sequence[str] | None = None, title: str | None = None) -> None:
    """One legend for the whole figure, under it and outside every axes: the labelled
    artists of all axes (each label once; the axes' own legends removed), then, with
    ``classes`` ({label: colour}, up to 10), the class colours."""
    from matplotlib.lines import Line2D
    handles, seen = [], {}
    for ax in fig.axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in seen:
                seen[label] = h
    handles = list(seen.values())
    labels = list(seen)
    if classes and len(classes) <= 10:
        for k, c in classes.items():
            handles.append(Line2D([], [], ls="", marker="o", color=c))
            labels.append(f"class: {class_names[k]}" if class_names is not None and
                          0 <= k < len(class_names) else f"class {k}")
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(ncol, len(handles)),
                   fontsize=8, frameon=False, title=title, title_fontsize=8)


def _projection_axes(ax, title: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_xlabel("PC 1 of the descriptors", fontsize=8)
    ax.set_ylabel("PC 2", fontsize=8)


def project_2d(features: np.ndarray) -> np.ndarray:
    """PCA to two dimensions: (N, D) -> (N, 2), deterministic sign (largest |loading| > 0)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"project_2d: expected (N, D) features with N >= 2, got shape {x.shape}")
    mean, components, _ = pca(x, min(2, x.shape[1]))  # (D,), (2, D); (1, D) when D == 1
    coords = (x - mean) @ components.T  # (N, 2)
    if coords.shape[1] < 2:  # D == 1
        coords = np.column_stack([coords, np.zeros(len(x))])
    return coords


def plot_diffusion(coords: np.ndarray, euclidean: np.ndarray, manifold: np.ndarray,
                   anchor: int, *, top: int = 50, labels: np.ndarray | None = None,
                   class_names: Sequence[str] | None = None) -> Figure:
    """The anchor's ``top`` nearest points by Euclidean similarity (a) and by the
    manifold similarity f(anchor) of diffusion (b), ringed on a 2-D projection, and
    (c) every point's two similarities against each other.

    coords (N, 2); euclidean, manifold (N,). With ``labels`` the points are coloured by
    class and each panel title counts the ringed points of the anchor's class (display
    only). In (c) the dashed lines are the ``top``-th value of each similarity: the
    points above the horizontal line and left of the vertical one are manifold
    neighbours that are not Euclidean neighbours, the hard positives P+ of that depth.
    """
    coords, n = _coords(coords), len(coords)
    euclidean = _vector(euclidean, n, "Euclidean similarity")
    manifold = _vector(manifold, n, "manifold similarity")
    colours, palette = (class_colours(labels) if labels is not None
                        else (np.full((n, 4), (0.55, 0.55, 0.55, 1.0)), {}))
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2), layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1, 1.05]})
    others = np.array([j for j in range(n) if j != anchor])
    for ax, values, name, tag in ((axes[0], euclidean, "Euclidean similarity", "(a)"),
                                  (axes[1], manifold, "manifold similarity", "(b)")):
        ax.scatter(coords[:, 0], coords[:, 1], s=5, c=colours, alpha=0.45, linewidths=0)
        ranked = [j for j in np.argsort(-values, kind="stable") if j != anchor][:top]
        ax.scatter(coords[ranked, 0], coords[ranked, 1], s=30, facecolors="none",
                   edgecolors="k", linewidths=0.8, label=f"its top {len(ranked)} by {name}")
        ax.scatter(*coords[anchor], marker="*", s=260, c="red", edgecolors="k", label="anchor")
        title = f"{tag} top {len(ranked)} by {name}"
        if labels is not None:
            same = int(np.sum(np.asarray(labels)[ranked] == np.asarray(labels)[anchor]))
            title += f"\n{same} of them of the anchor's class"
        _projection_axes(ax, title)
    ax = axes[2]
    reached = manifold[manifold > 0]
    floor = max(reached.min(), reached.max() * 1e-6) if len(reached) else 1.0
    shown = np.clip(manifold, floor, None)  # unreached nodes (f <= 0) sit at the floor
    ax.scatter(euclidean[others], shown[others], s=5, c=colours[others], alpha=0.6, linewidths=0)
    ax.set_yscale("log")
    k = min(top, len(others))
    if k:
        ax.axvline(np.sort(euclidean[others])[::-1][k - 1], color="k", ls="--", lw=0.8,
                   label=f"the {k}-th largest of each")
        ax.axhline(np.sort(shown[others])[::-1][k - 1], color="k", ls="--", lw=0.8)
    ax.set_xlabel("Euclidean similarity to the anchor (inner product)")
    ax.set_ylabel("manifold similarity $f(r)_j$ (log scale)")
    ax.set_title("(c) the two similarities of every point\nupper left: manifold, "
                 "not Euclidean neighbours ($P^+$)", fontsize=10)
    _figure_legend(fig, ncol=4, classes=palette, class_names=class_names)
    return fig


def plot_stationary(pi: np.ndarray, modes: np.ndarray, coords: np.ndarray | None = None,
                    *, n_anchors: int | None = None) -> Figure:
    """The stationary distribution of the random walk, sorted, with its ``modes``
    marked; with ``coords`` (N, 2), also the modes on the embedding (marker size ~
    probability).

    ``pi`` (N,) is any non-negative multiple of the distribution (``mom.anchors.stationary``
    returns it L2-normalised); it is drawn as probabilities summing to 1. The first
    ``n_anchors`` modes by probability are the anchors that ``mining.anchors:
    stationary`` would take (with ``anchors: all`` every image is an anchor)."""
    pi = np.asarray(pi, dtype=np.float64)
    modes = np.asarray(modes, dtype=np.int64)
    if pi.ndim != 1 or (len(modes) and (modes.min() < 0 or modes.max() >= len(pi))):
        raise ValueError(f"plot_stationary: pi must be (N,) and modes indices into it; "
                         f"got pi {pi.shape}, modes range {modes.min(initial=0)}..{modes.max(initial=0)}")
    if pi.min(initial=0) < 0 or pi.sum() <= 0:
        raise ValueError("plot_stationary: pi must be non-negative with a positive sum")
    prob = pi / pi.sum()
    kept = modes[np.argsort(-prob[modes], kind="stable")][:n_anchors]
    what = (f"the top {len(kept)} of its {len(modes)} modes" if len(kept) < len(modes)
            else f"its {len(modes)} modes")
    fig, axes = plt.subplots(1, 2 if coords is not None else 1, figsize=(11, 4.8),
                             layout="constrained", squeeze=False)
    ax = axes[0, 0]
    order = np.argsort(-prob, kind="stable")
    rank = np.empty(len(prob), dtype=np.int64)
    rank[order] = np.arange(len(prob))
    ax.plot(np.arange(1, len(prob) + 1), prob[order], lw=1, c="tab:gray", label="every node")
    ax.scatter(rank[kept] + 1, prob[kept], s=14, c="tab:red", zorder=3,
               label=f"{what}: the anchors of anchors=stationary")
    ax.set_xscale("log")
    ax.set_xlabel("node rank by stationary probability")
    ax.set_ylabel("stationary probability (sums to 1)")
    ax.set_title("stationary distribution of the random walk", fontsize=10)
    if coords is not None:
        ax = axes[0, 1]
        coords = _coords(coords)
        size = 2 + 60 * prob / max(prob.max(), 1e-300)
        ax.scatter(coords[:, 0], coords[:, 1], s=size, c="tab:gray", alpha=0.5, linewidths=0,
                   label="every node (size: probability)")
        ax.scatter(coords[kept, 0], coords[kept, 1], s=30, c="tab:red", edgecolors="k",
                   linewidths=0.5, label=what)
        _projection_axes(ax, "the modes on the embedding")
    _figure_legend(fig, ncol=2)
    return fig


def plot_pools_2d(coords: np.ndarray, anchor: int,
                  groups: Mapping[str, Mapping[str, np.ndarray]],
                  labels: np.ndarray | None = None) -> Figure:
    """One panel per entry of ``groups = {panel: {pool name: ids}}`` on the 2-D
    projection, e.g. ``{"positives": {"P+": ids, "NN^e": ids}, "negatives": {...}}``.
    With ``labels`` each marker's edge is green (anchor's class) or red (another), and
    the legend gives each pool's share of the anchor's class."""
    coords = _coords(coords)
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 5.4),
                             layout="constrained", squeeze=False)
    markers = ["o", "s", "^", "D"]
    for ax, (panel, pools) in zip(axes[0], groups.items()):
        ax.scatter(coords[:, 0], coords[:, 1], s=3, c="lightgray", linewidths=0)
        for (name, ids), marker in zip(pools.items(), markers):
            ids = np.asarray(ids, dtype=np.int64)
            edge = label_colours(labels, anchor, ids)  # "k" everywhere without labels
            title = name
            if labels is not None:
                title += f": {np.mean(edge == SAME) if len(ids) else 0:.0%} same class"
            ax.scatter(coords[ids, 0], coords[ids, 1], s=30, marker=marker, alpha=0.8,
                       edgecolors=edge, linewidths=1.6, label=title)
        ax.scatter(*coords[anchor], marker="*", s=260, c="red", edgecolors="k", label="anchor")
        _projection_axes(ax, panel + ("\nedge: green = the anchor's class, red = another"
                                      if labels is not None else ""))
    _figure_legend(fig, ncol=len(groups) * 2 + 1)
    return fig


def math_label(text: str) -> str:
    """Pool names as the paper typesets them: "P+ precision" -> "$P^+$ precision",
    "k+" -> "$k^+$" (matplotlib mathtext); other text unchanged."""
    import re
    for plain, tex in (("P+", "$P^+$"), ("P-", "$P^-$"), ("P−", "$P^-$"), ("k+", "$k^+$"),
                       ("k-", "$k^-$")):
        text = re.sub(rf"(?<![\w$]){re.escape(plain)}(?![\w$])", lambda m, t=tex: t, text)
    return text


def plot_grouped_bars(table: Mapping[str, Mapping[str, float]], *, title: str = "",
                      ylabel: str = "", fmt: str = "%.2f", hatched: Sequence[str] = ()) -> Figure:
    """Grouped bars (seaborn): ``table[group][category] -> value``; one colour per group
    (the groups in ``hatched`` hatched), one cluster of bars per category; NaN: no bar."""
    import pandas as pd
    import seaborn as sns
    groups = list(table)
    cats = list(dict.fromkeys(m for g in groups for m in table[g]))
    if not groups or not cats:
        raise ValueError("plot_grouped_bars: empty table")
    df = pd.DataFrame([{"group": g, "category": m, "value": float(table[g].get(m, np.nan))}
                       for g in groups for m in cats])
    palette = {g: _GROUP_COLOURS.get(g, c) for g, c in zip(groups, sns.color_palette(n_colors=len(groups)))}
    fig, ax = plt.subplots(figsize=(2.6 + 0.45 * len(cats) * len(groups), 4), constrained_layout=True)
    sns.barplot(data=df.dropna(), x="category", y="value", hue="group", order=cats,
                hue_order=groups, palette=palette, ax=ax, errorbar=None, legend=False)
    for g, container in zip(groups, ax.containers):
        container.set_label(g)
        if g in hatched:
            for bar in container:
                bar.set_hatch("//")
        ax.bar_label(container, fmt=fmt, fontsize=7)
    ax.set_xlabel("")
    ax.set_xticks(range(len(cats)), [math_label(str(c)) for c in cats], fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.margins(y=0.12)  # room for the value labels
    ax.legend(handles=list(ax.containers), labels=[math_label(g) for g in groups], fontsize=8,
              loc="upper left",
              bbox_to_anchor=(1.0, 1.0))
    return fig


def pool_diagnostics_groups(diag: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``mom.mining.pool_diagnostics`` output -> ``{group: {"P+ precision", "P- purity"}}``
    for MoM, the Euclidean baseline, and Euclidean neighbours at P+'s depth."""
    from ..mining import diagnostic_keys
    groups = {"mom": {label: diag[key] for label, key in diagnostic_keys("mom").items()}}
    base = diagnostic_keys("euclidean")
    if base["P+ precision"] in diag:  # only where the pools had a baseline
        groups["euclidean"] = {label: diag[key] for label, key in base.items()}
    groups["Euclidean ranks k+ +1..."] = {"P+ precision": diag["pos_precision_euclid"]}
    return {g: {k: float(v) for k, v in m.items()} for g, m in groups.items()}


def plot_pool_diagnostics(diag: Mapping[str, Any]) -> Figure:
    """Bars of P+ precision and P- purity (``mom.mining.pool_diagnostics`` output);
    labels are used for this display only."""
    return plot_grouped_bars(pool_diagnostics_groups(diag), ylabel="fraction",
                             title="pool diagnostics (labels used for display only)")


def _draw_differences(ax, table: Mapping[str, Mapping[str, Mapping[str, Any]]], *,
                      ylabel: str, ticks: Mapping[str, str] | None = None) -> None:
    """``table[group][category] = {"mean", "ci95": [lo, hi] or None}`` as one marker per
    group and category, with its interval where there is one, around a zero line."""
    groups = list(table)
    cats = list(dict.fromkeys(c for g in groups for c in table[g]))
    if not groups or not cats:
        raise ValueError("plot_differences: empty table")
    ax.axhline(0.0, color="k", lw=0.8)
    width = 0.7 / len(groups)
    palette = plt.get_cmap("tab10")
    for j, g in enumerate(groups):
        colour = _GROUP_COLOURS.get(g.split(" ")[0].lower(), palette(j))
        with_ci = without = False
        for i, c in enumerate(cats):
            d = table[g].get(c)
            if d is None or d.get("mean") is None or not np.isfinite(d["mean"]):
                continue
            x = i + (j - (len(groups) - 1) / 2) * width
            ci = d.get("ci95")
            if ci:
                ax.errorbar([x], [d["mean"]], yerr=[[d["mean"] - ci[0]], [ci[1] - d["mean"]]],
                            fmt="o", color=colour, capsize=4, markersize=6,
                            label=None if with_ci else g)
                with_ci = True
            else:
                ax.plot([x], [d["mean"]], "D", color=colour, markersize=6,
                        label=None if without else g + " (one run, no interval)")
                without = True
    ax.set_xticks(range(len(cats)), [math_label((ticks or {}).get(c, metric_label(c)))
                                     for c in cats], fontsize=8)
    ax.set_xlim(-0.6, len(cats) - 0.4)
    ax.set_ylabel(ylabel)


def plot_differences(table: Mapping[str, Mapping[str, Mapping[str, Any]]], *, title: str = "",
                     ylabel: str = f"difference ({POINTS})",
                     ticks: Mapping[str, str] | None = None) -> Figure:
    """Differences as differences: ``table[group][category] = {"mean", "ci95"}`` (a
    ``mom.stats.paired`` record, or ``ci95`` None for a single run), one marker per
    group and category around a zero line, the 95% interval drawn where there is one.
    ``ticks`` renames categories on the axis (default: the metric's short name)."""
    fig, ax = plt.subplots(figsize=(2.4 + 0.9 * max(len(t) for t in table.values()) if table
                                    else 4, 4.2), layout="constrained")
    _draw_differences(ax, table, ylabel=ylabel, ticks=ticks)
    ax.set_title(title, fontsize=10)
    _figure_legend(fig, ncol=2)
    return fig


def plot_before_after(before: Mapping[str, float], after: Mapping[str, float],
                      metrics: Sequence[str], *, label: str, title: str = "") -> Figure:
    """One training run's change, ``after - before`` per metric (points, no interval:
    one run), the two values under each metric's name."""
    table = {label: {m: {"mean": float(after[m]) - float(before[m]), "ci95": None}
                     for m in metrics}}
    ticks = {m: f"{metric_label(m)}\n{before[m]:.1f} → {after[m]:.1f}" for m in metrics}
    return plot_differences(table, title=title, ticks=ticks,
                            ylabel=f"after − before ({POINTS})")


def plot_table1(result: Mapping[str, Any], *, dataset: str,
                paper: Mapping[str, Mapping[str, float]] | None = None,
                metrics: Sequence[str] = ("recall@1", "recall@2", "recall@4", "recall@8", "nmi")
                ) -> Figure:
    """Table 1 as the differences it claims, each data set on its own axis.

    (a) this study (a ``mom.study`` result on ``dataset``): MoM − initial and
    Euclidean − initial per metric, mean and 95% t interval over the seeds, paired per
    seed; each metric's name carries MoM's mean. (b) the paper on CUB-200-2011 (``paper``,
    default ``mom.companion.paper.TABLE1``): MoM − cyclic match, the other label-free
    row, one number each (the paper reports no interval)."""
    from .paper import TABLE1
    paper = TABLE1 if paper is None else paper
    n = result["rows"]["mom"][metrics[0]]["n"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained",
                               gridspec_kw={"width_ratios": [len(metrics), len(metrics) - 0.6]})
    ours = {"MoM − initial": {m: result["paired"]["mom-initial"][m] for m in metrics},
            "Euclidean − initial": {m: result["paired"]["euclidean-initial"][m] for m in metrics}}
    ticks = {m: f"{metric_label(m)}\nMoM {result['rows']['mom'][m]['mean']:.1f}" for m in metrics}
    _draw_differences(a, ours, ylabel=f"difference ({POINTS})", ticks=ticks)
    a.set_title(f"(a) this companion, {dataset}: {n} seeds, paired, 95% t interval", fontsize=10)
    mom_row, other = paper.get("MoM (paper)", {}), paper.get("Cyclic match (paper)", {})
    shared = [m for m in metrics if m in mom_row and m in other]
    theirs = {"MoM − cyclic match": {m: {"mean": mom_row[m] - other[m], "ci95": None}
                                     for m in shared}}
    _draw_differences(b, theirs, ylabel=f"difference ({POINTS})",
                      ticks={m: f"{metric_label(m)}\nMoM {mom_row[m]:.1f}" for m in shared})
    b.set_title("(b) the paper, CUB-200-2011: MoM against cyclic match,\nthe other "
                "label-free row (one run each, no interval reported)", fontsize=10)
    _figure_legend(fig, ncol=3)
    return fig


# ----------------------------------------------------------------------------- hardness
def plot_hardness(report: Mapping[str, Any]) -> Figure:
    """How hard, and how correct, the mined examples are (a ``mom.hardness.hardness_report``).

    (a) where the positives sit in their anchor's Euclidean ordering: P+ members against
    the baseline's NN^e_{k+}; (b) the share of one epoch's tuples the initial network
    violates (a positive loss; the negative at least as near as the positive), MoM
    against Euclidean pools; (c) at each position of the pools, P+ precision against the
    Euclidean neighbours at the same depth, and P- purity against the nearest Euclidean
    neighbours taken as negatives (training labels, measurement only)."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(14, 4.3), layout="constrained")
    ranks = report["ranks"]
    top = max(max(ranks["mom"], default=1), max(ranks["euclidean"], default=1))
    bins = np.unique(np.geomspace(1, top + 1, 40).astype(int))
    for name, label in (("euclidean", "baseline positives $NN^e_{k^+}$"), ("mom", "$P^+$ (MoM)")):
        if ranks[name]:
            a.hist(ranks[name], bins=bins, color=_GROUP_COLOURS[name], alpha=0.6, label=label)
    if report.get("k_pos"):
        a.axvline(report["k_pos"], color="k", ls="--", lw=0.8, label=f"$k^+$ = {report['k_pos']}")
    a.set_xscale("log")
    a.set_xlabel("Euclidean rank among the anchor's neighbours (1 = nearest, log scale)")
    a.set_ylabel("pool members (count)")
    a.set_title("(a) how far the positives are", fontsize=10)
    v = report["violated"]
    kinds = (("loss", f"positive loss (margin {report['margin']})"),
             ("order", "negative as near as the positive"))
    x = np.arange(len(kinds))
    for j, name in enumerate(("euclidean", "mom")):
        vals = [100 * v[name][k] for k, _ in kinds]
        bars = b.bar(x + (j - 0.5) * 0.38, vals, width=0.36, color=_GROUP_COLOURS[name],
                     label="Euclidean pools" if name == "euclidean" else "MoM pools")
        b.bar_label(bars, fmt="%.1f", fontsize=8)
    b.set_xticks(x, [t for _, t in kinds], fontsize=8)
    b.set_ylabel(f"tuples the initial network violates (% of {v['mom']['n']})")
    b.set_title("(b) how many tuples teach something", fontsize=10)
    styles = {"P+ precision": ("tab:blue", "-", "$P^+$ precision"),
              "NN^e at P+'s depth": ("tab:blue", ":", "precision of $NN^e$ at $P^+$'s depth"),
              "P- purity": ("tab:red", "-", "$P^-$ purity"),
              "NN^e nearest, as negatives": ("tab:red", ":", "purity of the nearest $NN^e$")}
    for name, curve in report["by_position"].items():
        rate = np.asarray(curve["rate"], float)
        colour, ls, label = styles.get(name, ("k", "-", name))
        c.plot(np.arange(1, len(rate) + 1), rate, color=colour, ls=ls, label=label)
    c.set_ylim(-0.02, 1.02)
    c.set_xlabel("position in the pool (1 = first)")
    c.set_ylabel("share of anchors (correct class relation)")
    c.set_title("(c) how correct, position by position", fontsize=10)
    _figure_legend(fig, ncol=4)
    return fig


# ----------------------------------------------------------------------------- toy
def plot_toy_manifold(ex) -> Figure:
    """The paper's Figures 1-2 on the two-moons toy (a ``mom.toy.ToyExample``).

    (a) the anchor's Euclidean neighbours $NN^e_{k^+}$; (b) its manifold
    similarity f(r) (colour, log scale) and manifold neighbours $NN^m_{k^+}$;
    (c) the mined $P^+$ (manifold, not Euclidean) and $P^-$ (Euclidean, not
    manifold) of the same anchor. Marker shape: which moon (display only).
    """
    from matplotlib.colors import LogNorm
    pts, r, k = ex.points, ex.anchor, ex.cfg.k_pos
    # the colour bar of (b) in a narrow fourth column: the three panels keep one width
    # and one spacing
    fig, axes = plt.subplots(1, 4, figsize=(14.5, 3.7), layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1, 1, 0.04]})
    cax, axes = axes[3], axes[:3]
    marks = {0: "o", 1: "s"}

    def base(ax, title):
        for moon, m in marks.items():
            sel = ex.labels == moon
            ax.scatter(pts[sel, 0], pts[sel, 1], s=10, c="lightgray", marker=m, zorder=1)
        ax.scatter(*pts[r], s=260, marker="*", c="black", zorder=5, label="anchor $r$")
        ax.set_title(title, fontsize=10)
        ax.set_aspect("equal")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_xlabel("x (plane coordinates)", fontsize=8)

    def mark(ax, ids, colour, label, size=28):
        ids = np.asarray(ids, np.int64)
        for moon, m in marks.items():
            sel = ids[ex.labels[ids] == moon]
            ax.scatter(pts[sel, 0], pts[sel, 1], s=size, c=colour, marker=m, zorder=3,
                       edgecolors="black", linewidths=0.3,
                       label=label if moon == ex.labels[ids[0]] or not len(ids) else None)

    base(axes[0], f"(a) Euclidean neighbours $NN^e_{{{k}}}(r)$")
    mark(axes[0], ex.nn_euclidean, "tab:orange", "$NN^e$")
    base(axes[1], f"(b) manifold similarity $f(r)$ and $NN^m_{{{k}}}(r)$")
    f = np.clip(ex.manifold, 1e-6, None)
    sc = axes[1].scatter(pts[:, 0], pts[:, 1], c=f, s=12, cmap="viridis",
                         norm=LogNorm(vmin=max(f.min(), f.max() * 1e-4), vmax=f.max()), zorder=2)
    fig.colorbar(sc, cax=cax, label="(b): manifold similarity $f(r)_j$ (log scale)")
    mark(axes[1], ex.nn_manifold, "tab:blue", "$NN^m$")
    base(axes[2], f"(c) $P^+$ and $P^-$ ($k^+$ {k}, $k^-$ {ex.cfg.k_neg})")
    if len(ex.positives):
        mark(axes[2], ex.positives, "tab:green", "$P^+$: manifold, not Euclidean", size=40)
    if len(ex.negatives):
        mark(axes[2], ex.negatives, "tab:red", "$P^-$: Euclidean, not manifold", size=40)
    _figure_legend(fig, ncol=5)
    return fig


# ----------------------------------------------------------------------------- studies
_ROW_ORDER = ("initial", "euclidean", "mom")
_STUDY_METRICS = ("recall@1", "nmi")
_METRIC_LABELS = {"recall@1": "Recall@1 (%)", "nmi": "NMI (%)", "map@r": "MAP@R (%)",
                  "r_precision": "R-Precision (%)"}


def _study_frame(result: Mapping[str, Any]):
    import pandas as pd
    return pd.DataFrame([{"row": row, "seed": i, **rec}
                         for row, recs in result["per_seed"].items() for i, rec in enumerate(recs)])


def _ci_errorbars(ax, summaries: Sequence[Mapping[str, Any]], positions) -> None:
    for x, s in zip(positions, summaries):
        if s.get("ci95"):
            lo, hi = s["ci95"]
            ax.errorbar([x], [s["mean"]], yerr=[[s["mean"] - lo], [hi - s["mean"]]], fmt="D",
                        color="black", capsize=5, markersize=6, zorder=5)
        else:
            ax.plot([x], [s["mean"]], "D", color="black", zorder=5)


def plot_study_rows(result: Mapping[str, Any], metrics: Sequence[str] = _STUDY_METRICS) -> Figure:
    """Each row of a study (``mom.study`` result): one point per seed and the mean
    with its 95% t interval (black), one panel per metric; test split."""
    import seaborn as sns
    df = _study_frame(result)
    rows = [r for r in _ROW_ORDER if r in result["rows"]]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8),
                             constrained_layout=True, squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sns.stripplot(data=df, x="row", y=metric, hue="row", order=rows, hue_order=rows,
                      palette=_GROUP_COLOURS, ax=ax, size=6, jitter=0.15, alpha=0.7, legend=False)
        _ci_errorbars(ax, [result["rows"][r][metric] for r in rows], range(len(rows)))
        ax.set_xlabel("")
        ax.set_ylabel(_METRIC_LABELS.get(metric, metric))
    n = result["rows"][rows[-1]][metrics[0]]["n"]
    fig.suptitle(f"test split: one dot per training seed ({n} a row); black: mean and 95% "
                 "t interval", fontsize=10)
    return fig


def plot_study_paired(result: Mapping[str, Any], metrics: Sequence[str] = _STUDY_METRICS) -> Figure:
    """Per-seed paired differences (``mom-initial``, ``mom-euclidean``, ...) with their
    mean, 95% t interval and a zero line: an interval clear of zero is a difference
    the seeds agree on."""
    import seaborn as sns
    import pandas as pd
    per = result["per_seed"]
    pairs = list(result["paired"])
    recs = []
    for pair in pairs:
        a, b = pair.split("-")
        for i, (ra, rb) in enumerate(zip(per[a], per[b])):
            recs.append({"pair": pair, "seed": i, **{m: ra[m] - rb[m] for m in metrics}})
    df = pd.DataFrame(recs)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 4.0),
                             layout="constrained", squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        ax.axhline(0.0, color="k", lw=0.8)
        sns.stripplot(data=df, x="pair", y=metric, order=pairs, ax=ax, color="tab:blue",
                      size=6, jitter=0.15, alpha=0.7)
        _ci_errorbars(ax, [result["paired"][p][metric] for p in pairs], range(len(pairs)))
        ticks = []
        for p in pairs:  # the p value under the pair's name, clear of the data
            pv = result["paired"][p][metric]["p"]
            ticks.append(p.replace("-", " − ") + (f"\np = {pv:.3f}" if pv is not None else ""))
        ax.set_xticks(range(len(pairs)), ticks, fontsize=8)
        ax.set_xlabel("")
        ax.set_ylabel(f"{metric_label(metric)} difference ({POINTS})")
    n = result["paired"][pairs[0]][metrics[0]]["n"]
    fig.suptitle(f"paired differences on the test split: one dot per seed ({n}); black: mean "
                 "and 95% t interval; p: exact sign-flip test", fontsize=10)
    return fig


def plot_study_curves(result: Mapping[str, Any], metrics: Sequence[str] = _STUDY_METRICS) -> Figure:
    """Metric against epoch for the selected settings (test split, for reading only:
    nothing is chosen from it) and, when the study selected on validation classes,
    every grid setting on the validation split. Bands: 95% CI over seeds (seaborn)."""
    import seaborn as sns
    import pandas as pd
    df = pd.DataFrame(result["curves"])
    splits = [s for s in ("validation", "test") if s in set(df["split"])]
    xlabel = epoch_label((result.get("config") or {}).get("train", {}).get("tuples_per_epoch"))
    # a trained row whose guard returned the initial network on every seed: its curve is
    # what the guard rejected, and its score is the initial one
    kept = ((result.get("guard") or {}).get("kept_epoch") or {})
    rejected = {row for row, epochs in kept.items() if epochs and all(e == 0 for e in epochs)}
    names = {row: (f"{row}: as trained, rejected by the guard (it returned the initial "
                   "network, the dashed line)" if row in rejected else row)
             for row in set(df["row"])}
    fig, axes = plt.subplots(len(splits), len(metrics), figsize=(5.2 * len(metrics), 4.4 * len(splits)),
                             layout="constrained", squeeze=False)
    for i, split in enumerate(splits):
        part = df[df["split"] == split]
        for ax, metric in zip(axes[i], metrics):
            if split == "validation":
                sns.lineplot(data=part, x="epoch", y=metric, hue="row", style="setting", ax=ax,
                             palette=_GROUP_COLOURS, markers=True, errorbar=("ci", 95))
            else:
                trained = part[part["row"] != "initial"].assign(row=lambda d: d["row"].map(names))
                palette = {names[r]: _GROUP_COLOURS.get(r) for r in names}
                sns.lineplot(data=trained, x="epoch", y=metric, hue="row", ax=ax, marker="o",
                             palette=palette, errorbar=("ci", 95))
                init = part[part["row"] == "initial"][metric]
                if len(init):
                    ax.axhline(float(init.mean()), color=_GROUP_COLOURS["initial"], ls="--",
                               label="initial (untrained)")
            ax.set_title(f"{split} split" + (": every grid setting, one seed" if split ==
                                              "validation" else " (for reading only: nothing "
                                              "is chosen here); band: 95% CI over seeds"),
                         fontsize=9)
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(_METRIC_LABELS.get(metric, metric))
    _figure_legend(fig, ncol=3)
    return fig


def save_study_figures(result: Mapping[str, Any], folder: str | Path) -> list[Path]:
    """``study_rows``, ``study_paired`` and ``study_curves`` of a ``mom.study`` result
    into ``folder`` (what ``mom study`` writes under ``OUT/figures``); the PNG paths."""
    made = []
    for name, draw in (("study_rows", plot_study_rows), ("study_paired", plot_study_paired),
                       ("study_curves", plot_study_curves)):
        fig = draw(result)
        made.append(save_figure(fig, Path(folder) / name)[0])
        plt.close(fig)
    return made


def save_figure(fig: Figure, path_stem: str | Path, *, dpi: int = 110) -> list[Path]:
    """Write ``<path_stem>.png`` and ``<path_stem>.svg`` atomically; return both paths.

    A scatter of ``RASTER_MIN_POINTS`` points or more is rasterised (at ``dpi``) in the
    SVG, the axes, text and lines around it staying vectors."""
    from matplotlib.collections import PathCollection
    for ax in fig.axes:
        for coll in ax.collections:
            if isinstance(coll, PathCollection) and len(coll.get_offsets()) >= RASTER_MIN_POINTS:
                coll.set_rasterized(True)
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        path = stem.with_name(stem.name + "." + ext)
        with atomic_write(path, "wb") as fh:
            fig.savefig(fh, format=ext, dpi=dpi, bbox_inches="tight")
        paths.append(path)
    return paths


def _coords(coords) -> np.ndarray:
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"expected 2-D coordinates of shape (N, 2), got {coords.shape}")
    return coords


def _vector(values, n: int, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (n,) or not np.all(np.isfinite(values)):
        raise ValueError(f"{name}: expected {n} finite values, got shape {values.shape}"
                         + ("" if values.shape != (n,) else " with NaN/inf"))
    return values
