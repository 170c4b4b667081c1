"""Figures: every function returns a matplotlib Figure; ``save_figure`` writes it.

The Figure 3 galleries live in ``mom.companion.gallery`` and are re-exported here, so
that notebooks draw everything through ``mom.companion.viz``.

Inputs are arrays (features, similarities, pools); labels only colour the
pictures, they never feed back into mining or training. Notebooks call these
and nothing else draws.
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

__all__ = ["project_2d", "plot_diffusion", "plot_stationary", "plot_pools_2d",
           "plot_grouped_bars", "math_label", "pool_diagnostics_groups", "plot_pool_diagnostics",
           "plot_recalls", "plot_metric_bars", "plot_history", "gallery_ids", "plot_gallery",
           "gallery_figure", "thumbnail", "save_figure", "SAME", "OTHER",
           "plot_study_rows", "plot_study_paired", "plot_study_curves", "save_study_figures",
           "plot_toy_manifold"]

_GROUP_COLOURS = {"mom": "tab:blue", "euclidean": "tab:orange", "initial": "tab:gray",
                  "MoM (paper)": "lightsteelblue", "Cyclic match (paper)": "tab:purple"}


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
                   anchor: int, *, top: int = 50, labels: np.ndarray | None = None) -> Figure:
    """Side by side on a 2-D projection: Euclidean similarity to ``anchor`` and the
    manifold similarity f(anchor) of diffusion; each panel rings its ``top`` points.

    coords (N, 2); euclidean, manifold (N,). With ``labels``, the ringed points of
    the anchor's class are counted in the panel title (display only).
    """
    coords, n = _coords(coords), len(coords)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), constrained_layout=True)
    for ax, values, name, log in ((axes[0], euclidean, "Euclidean similarity", False),
                                  (axes[1], manifold, "manifold similarity (diffusion)", True)):
        values = _vector(values, n, name)
        shown = values
        if log:  # manifold similarities span decades; unreached nodes (<= 0) sit at the floor
            reached = values[values > 0]
            floor = max(reached.min(), reached.max() * 1e-6) if len(reached) else 1.0
            shown = np.log10(np.clip(values, floor, None))
        order = np.argsort(shown)  # draw the strongest last, on top
        sc = ax.scatter(coords[order, 0], coords[order, 1], c=shown[order], s=6, cmap="viridis")
        fig.colorbar(sc, ax=ax, label=("log10 " if log else "") + name)
        ranked = [j for j in np.argsort(-values, kind="stable") if j != anchor][:top]
        ax.scatter(coords[ranked, 0], coords[ranked, 1], s=28, facecolors="none",
                   edgecolors="k", linewidths=0.8, label=f"top {len(ranked)}")
        ax.scatter(*coords[anchor], marker="*", s=260, c="red", edgecolors="k", label="anchor")
        title = f"{name}: top {len(ranked)}"
        if labels is not None:
            same = int(np.sum(np.asarray(labels)[ranked] == np.asarray(labels)[anchor]))
            title += f" ({same} of the anchor's class)"
        ax.set_title(title, fontsize=10)
        ax.legend(loc="lower right", fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
    return fig


def plot_stationary(pi: np.ndarray, modes: np.ndarray, coords: np.ndarray | None = None,
                    *, n_anchors: int | None = None) -> Figure:
    """The stationary distribution ``pi`` (N,) sorted, its ``modes`` marked; with
    ``coords`` (N, 2), also the modes on the embedding (marker size ~ pi).
    The first ``n_anchors`` modes (by pi) are the ones kept as anchors."""
    pi = np.asarray(pi, dtype=np.float64)
    modes = np.asarray(modes, dtype=np.int64)
    if pi.ndim != 1 or (len(modes) and (modes.min() < 0 or modes.max() >= len(pi))):
        raise ValueError(f"plot_stationary: pi must be (N,) and modes indices into it; "
                         f"got pi {pi.shape}, modes range {modes.min(initial=0)}..{modes.max(initial=0)}")
    kept = modes[np.argsort(-pi[modes], kind="stable")][:n_anchors]
    fig, axes = plt.subplots(1, 2 if coords is not None else 1, figsize=(11, 4.5),
                             constrained_layout=True, squeeze=False)
    ax = axes[0, 0]
    order = np.argsort(-pi, kind="stable")
    rank = np.empty(len(pi), dtype=np.int64)
    rank[order] = np.arange(len(pi))
    ax.plot(np.arange(1, len(pi) + 1), pi[order], lw=1, c="tab:gray", label="all nodes")
    ax.scatter(rank[kept] + 1, pi[kept], s=14, c="tab:red", zorder=3,
               label=f"modes kept as anchors ({len(kept)} of {len(modes)})")
    ax.set_xscale("log"), ax.set_xlabel("rank by stationary probability"), ax.set_ylabel("pi")
    ax.set_title("stationary distribution of the random walk", fontsize=10)
    ax.legend(fontsize=8)
    if coords is not None:
        ax = axes[0, 1]
        coords = _coords(coords)
        size = 2 + 60 * pi / max(pi.max(), 1e-12)
        ax.scatter(coords[:, 0], coords[:, 1], s=size, c="tab:gray", alpha=0.5)
        ax.scatter(coords[kept, 0], coords[kept, 1], s=30, c="tab:red", edgecolors="k",
                   linewidths=0.5, label="modes (anchors)")
        ax.set_title("modes on the embedding (PCA)", fontsize=10)
        ax.set_xticks([]), ax.set_yticks([])
        ax.legend(fontsize=8)
    return fig


def plot_pools_2d(coords: np.ndarray, anchor: int,
                  groups: Mapping[str, Mapping[str, np.ndarray]],
                  labels: np.ndarray | None = None) -> Figure:
    """One panel per entry of ``groups = {panel: {pool name: ids}}`` on the 2-D
    projection, e.g. ``{"positives": {"P+": ids, "NN^e": ids}, "negatives": {...}}``.
    With ``labels`` each marker's edge is green (anchor's class) or red (another)."""
    coords = _coords(coords)
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4.8),
                             constrained_layout=True, squeeze=False)
    markers = ["o", "s", "^", "D"]
    for ax, (panel, pools) in zip(axes[0], groups.items()):
        ax.scatter(coords[:, 0], coords[:, 1], s=3, c="lightgray")
        for (name, ids), marker in zip(pools.items(), markers):
            ids = np.asarray(ids, dtype=np.int64)
            edge = label_colours(labels, anchor, ids)  # "k" everywhere without labels
            title = name
            if labels is not None:
                title += f": {np.mean(edge == SAME) if len(ids) else 0:.0%} same class"
            ax.scatter(coords[ids, 0], coords[ids, 1], s=30, marker=marker, alpha=0.8,
                       edgecolors=edge, linewidths=1.6, label=title)
        ax.scatter(*coords[anchor], marker="*", s=260, c="red", edgecolors="k", label="anchor")
        ax.set_title(panel, fontsize=10)
        ax.legend(fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
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


def plot_recalls(results: Mapping[str, Mapping[str, float]], ks: Sequence[int] = (1, 2, 4, 8),
                 reference: Mapping[str, Mapping[str, float]] | None = None) -> Figure:
    """Recall@K against K (log2 axis) per method; ``reference`` rows (the paper's) dashed."""
    fig, ax = plt.subplots(figsize=(6, 4.2), constrained_layout=True)
    for style, table in (("-o", results), ("--", reference or {})):
        for name, m in table.items():
            ys = [m.get(f"recall@{k}", np.nan) for k in ks]
            ax.plot(ks, ys, style, label=name, color=_GROUP_COLOURS.get(name))
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(ks), [str(k) for k in ks])
    ax.set_xlabel("K"), ax.set_ylabel("Recall@K (%)")
    ax.legend(fontsize=8)
    return fig


def plot_metric_bars(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *,
                     label: str = "method", title: str = "") -> Figure:
    """Grouped bars, one cluster per column (metric), one bar per row (method);
    rows with ``source == "paper"`` are hatched."""
    if not rows:
        raise ValueError("plot_metric_bars: no rows")
    table = {str(r[label]): {c: r.get(c, np.nan) for c in columns} for r in rows}
    return plot_grouped_bars(table, title=title, fmt="%.1f",
                             hatched=[str(r[label]) for r in rows if r.get("source") == "paper"])


def plot_history(histories: Mapping[str, Sequence[Mapping[str, float]]], key: str = "loss") -> Figure:
    """``key`` (e.g. the training loss) per epoch, one line per run: ``{name: history}``
    where a history is ``mom.train``'s list of per-epoch dicts."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8), constrained_layout=True)
    for name, history in histories.items():
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h[key] for h in history], "-o", label=name, color=_GROUP_COLOURS.get(name))
    ax.set_xlabel("epoch"), ax.set_ylabel(key)
    ax.legend(fontsize=8)
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
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4), constrained_layout=True)
    marks = {0: "o", 1: "s"}

    def base(ax, title):
        for moon, m in marks.items():
            sel = ex.labels == moon
            ax.scatter(pts[sel, 0], pts[sel, 1], s=10, c="lightgray", marker=m, zorder=1)
        ax.scatter(*pts[r], s=260, marker="*", c="black", zorder=5, label="anchor $r$")
        ax.set_title(title, fontsize=10)
        ax.set_aspect("equal")
        ax.set_xticks([]), ax.set_yticks([])

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
    fig.colorbar(sc, ax=axes[1], shrink=0.8, label="$f(r)_j$ (log)")
    mark(axes[1], ex.nn_manifold, "tab:blue", "$NN^m$")
    base(axes[2], f"(c) $P^+$ and $P^-$ ($k^+$ {k}, $k^-$ {ex.cfg.k_neg})")
    if len(ex.positives):
        mark(axes[2], ex.positives, "tab:green", "$P^+$: manifold, not Euclidean", size=40)
    if len(ex.negatives):
        mark(axes[2], ex.negatives, "tab:red", "$P^-$: Euclidean, not manifold", size=40)
    for ax in axes:
        ax.legend(fontsize=7, loc="lower left")
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
    fig.suptitle(f"test split: {n} seeds per row, mean and 95% CI (t)", fontsize=10)
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
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.8),
                             constrained_layout=True, squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        ax.axhline(0.0, color="gray", lw=1, ls="--")
        sns.stripplot(data=df, x="pair", y=metric, order=pairs, ax=ax, color="tab:blue",
                      size=6, jitter=0.15, alpha=0.7)
        _ci_errorbars(ax, [result["paired"][p][metric] for p in pairs], range(len(pairs)))
        for x, p in enumerate(pairs):
            pv = result["paired"][p][metric]["p"]
            if pv is not None:
                ax.annotate(f"p={pv:.3f}", (x, ax.get_ylim()[1]), ha="center", va="top", fontsize=8)
        ax.set_xlabel("")
        ax.set_ylabel("difference in " + _METRIC_LABELS.get(metric, metric))
    fig.suptitle("paired per-seed differences, mean and 95% CI (t); p: sign-flip test",
                 fontsize=10)
    return fig


def plot_study_curves(result: Mapping[str, Any], metrics: Sequence[str] = _STUDY_METRICS) -> Figure:
    """Metric against epoch for the selected settings (test split, for reading only:
    nothing is chosen from it) and, when the study selected on validation classes,
    every grid setting on the validation split. Bands: 95% CI over seeds (seaborn)."""
    import seaborn as sns
    import pandas as pd
    df = pd.DataFrame(result["curves"])
    splits = [s for s in ("validation", "test") if s in set(df["split"])]
    fig, axes = plt.subplots(len(splits), len(metrics), figsize=(4.8 * len(metrics), 3.6 * len(splits)),
                             constrained_layout=True, squeeze=False)
    for i, split in enumerate(splits):
        part = df[df["split"] == split]
        for ax, metric in zip(axes[i], metrics):
            if split == "validation":
                sns.lineplot(data=part, x="epoch", y=metric, hue="row", style="setting", ax=ax,
                             palette=_GROUP_COLOURS, markers=True, errorbar=("ci", 95))
            else:
                trained = part[part["row"] != "initial"]
                sns.lineplot(data=trained, x="epoch", y=metric, hue="row", ax=ax, marker="o",
                             palette=_GROUP_COLOURS, errorbar=("ci", 95))
                init = part[part["row"] == "initial"][metric]
                if len(init):
                    ax.axhline(float(init.mean()), color=_GROUP_COLOURS["initial"], ls="--",
                               label="initial")
            ax.set_title(f"{split} split" + (" (for reading only: nothing is chosen here)"
                                              if split == "test" else ""), fontsize=9)
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_ylabel(_METRIC_LABELS.get(metric, metric))
            ax.legend(fontsize=6)
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
    """Write ``<path_stem>.png`` and ``<path_stem>.svg`` atomically; return both paths."""
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
