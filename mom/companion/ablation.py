"""The anchor ablation: anchors (all / stationary / random) x pools (Euclidean / MoM).

Each anchor choice is one ``mom.pipeline.run`` (cached by configuration, see
``mom.companion.runs``); a run trains on both pool families from the same anchors and
seed, so one run gives the two cells of its row. The labels-based pool
diagnostics come from the same runs.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from ..config import RunConfig, config_to_dict
from .runs import cached_run

__all__ = ["ANCHORS", "POOLS", "ablation", "anchor_budget_study", "headline_metric",
           "ablation_table", "ablation_differences", "diagnostics_table"]

ANCHORS = ("all", "stationary", "random")
POOLS = ("euclidean", "mom")
# preferred headline metric per kind of evaluation: recall for classes, mAP for retrieval
_HEADLINES = ("recall@1", "map_medium", "map", "mAP")


def headline_metric(metrics: dict[str, Any]) -> str:
    """The key the ablation reports: Recall@1 where present, else a mAP key."""
    for key in _HEADLINES:
        if isinstance(metrics.get(key), (int, float)):
            return key
    raise ValueError(f"no headline metric among {_HEADLINES} in {sorted(metrics)}")


def ablation(cfg: RunConfig, runs_dir: str | Path, *, anchors: Sequence[str] = ANCHORS,
             progress: bool = False) -> list[dict[str, Any]]:
    """Rows ``{"anchors", "pools", "metric", "value", "initial", "n_anchors", "run_dir",
    "diagnostics"}``, one per anchor choice x pool family, in ``anchors`` x ``POOLS`` order.

    Random anchors are as many as the stationary modes chosen (when both run):
    the graph may have fewer modes than ``n_anchors``, and the comparison is
    between anchor choices, not anchor counts.
    """
    rows = []
    n_stationary = None
    for mode in anchors:
        if mode not in ANCHORS:
            raise ValueError(f"unknown anchor choice {mode!r}; known: {ANCHORS}")
        mining = dataclasses.replace(cfg.mining, anchors=mode)
        if mode == "random" and n_stationary is not None:
            mining = dataclasses.replace(mining, n_anchors=n_stationary)
        results, run_dir = cached_run(dataclasses.replace(cfg, mining=mining), runs_dir,
                                      progress=progress)
        if mode == "stationary":  # modes chosen, before anchors with an empty pool were skipped
            n_stationary = int(results["pools"]["n_anchors"]) + int(results["pools"]["n_skipped"])
        for pools in POOLS:
            metric = headline_metric(results[pools])
            rows.append({"anchors": mode, "pools": pools, "metric": metric,
                         "value": float(results[pools][metric]),
                         "initial": float(results["initial"][metric]),
                         "n_anchors": int(results["pools"]["n_anchors"]),
                         "run_dir": str(run_dir),
                         "diagnostics": _diagnostics(results["pools"], pools)})
    return rows


def ablation_table(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per anchor choice: ``{"anchors", "initial", "euclidean", "mom", "metric"}``."""
    table: dict[str, dict[str, Any]] = {}
    for r in rows:
        row = table.setdefault(r["anchors"], {"anchors": r["anchors"], "metric": r["metric"],
                                              "initial": r["initial"], "n_anchors": r["n_anchors"]})
        row[r["pools"]] = r["value"]
    return list(table.values())


def ablation_differences(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{pools: {anchors: {"mean": trained - initial, "ci95": None}}}``: each cell's
    change from the untrained network, in the shape of
    :func:`mom.companion.viz.plot_differences` (one run a cell: no interval)."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        table.setdefault(r["pools"], {})[r["anchors"]] = {"mean": r["value"] - r["initial"],
                                                          "ci95": None}
    return table


def diagnostics_table(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``{pools: {"<metric>\n<anchors>": value}}`` (P+ precision, P- purity) for a bar chart."""
    table: dict[str, dict[str, float]] = {}
    for metric in ("P+ precision", "P- purity"):
        for r in rows:
            if metric in r["diagnostics"]:
                table.setdefault(r["pools"], {})[f"{metric}\n{r['anchors']}"] = r["diagnostics"][metric]
    return table


def _diagnostics(pool_stats: dict[str, Any], pools: str) -> dict[str, float]:
    # the run records mom.mining.pool_diagnostics (none for unlabeled collections)
    from ..mining import diagnostic_keys
    return {label: float(pool_stats[key]) for label, key in diagnostic_keys(pools).items()
            if isinstance(pool_stats.get(key), (int, float))}


# ------------------------------------------------------------ the anchor-budget study
BUDGET_PAIRS = (("stationary", "random"),)  # anchor choices compared, per pool family


def anchor_budget_study(cfg: RunConfig, out: str | Path, *, budget: float = 0.05, seeds: int = 5,
                        work_dir: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    """The anchor ablation under an anchor budget, paired over training seeds.

    The paper makes its anchor claim on Oxford5k, where anchors are few. Here both
    anchor choices get ``round(budget * N)`` anchors of the N training images: the top
    stationary-distribution modes, or as many drawn uniformly at random (one draw per
    seed: draw ``s`` with ``mining.seed = s``, so the interval covers the draw too).
    Each (anchors, seed) trains both pool families, NN^e and P+/P-, each row at the
    parameter file's own setting (``rows``; :func:`mom.studies.study` with
    ``select="rows"``), the guard off (10% of a few dozen anchors judges nothing).
    Seed ``s`` trains with ``train.seed + s`` in every cell, so all differences are paired.

    Returns ``{"cells": {anchors: {pools: summary}}, "paired": {name: {metric: paired}},
    "per_seed": {anchors: {pools|initial: [metrics per seed]}}, "n_anchors": {...},
    "budget", "seeds"}`` (summaries and paired statistics of :mod:`mom.stats`).
    """
    from ..datasets.splits import train_split
    from ..stats import paired, summarize
    from ..studies import StudyConfig, study
    if not 0 < budget < 1:
        raise ValueError(f"anchor budget must be a fraction of the images in (0, 1), got {budget!r}")
    out = Path(out)
    work = Path(work_dir) if work_dir is not None else out / "work"
    n_images = len(train_split(cfg))
    n = max(2, round(budget * n_images))
    base = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, guard="none"))
    # each row at the parameter file's own setting (its rows); without rows, both at its train section
    select = "rows" if cfg.rows != type(cfg.rows)() else "none"
    scfg = StudyConfig(seeds=seeds, select=select)

    def one(mining, folder, study_cfg, train_seed=None):
        c = dataclasses.replace(base, mining=mining)
        if train_seed is not None:
            c = dataclasses.replace(c, train=dataclasses.replace(c.train, seed=train_seed))
        return study(c, out / folder, study_cfg, work_dir=work, progress=progress)

    stationary = one(dataclasses.replace(base.mining, anchors="stationary", n_anchors=n),
                     "stationary", scfg)
    depths = stationary.get("pools") or {}
    n_modes = int(depths.get("n_anchors", n)) + int(depths.get("n_skipped", 0))
    per_seed = {"stationary": stationary["per_seed"],
                "random": {row: [] for row in ("initial", *POOLS)}}
    for s in range(seeds):  # one random draw per seed, as many anchors as the modes found
        r = one(dataclasses.replace(base.mining, anchors="random", n_anchors=min(n, n_modes), seed=s),
                f"random-{s}", StudyConfig(seeds=1, select=select), train_seed=base.train.seed + s)
        for row in per_seed["random"]:
            per_seed["random"][row].append(r["per_seed"][row][0])
    metrics = [k for k in per_seed["stationary"]["mom"][0]]
    cells = {a: {p: {m: summarize([x[m] for x in per_seed[a][p]], f"{a} {p} {m}") for m in metrics}
                 for p in POOLS} for a in per_seed}

    def diff(a, pa, b, pb):
        return {m: paired([x[m] for x in per_seed[a][pa]], [y[m] for y in per_seed[b][pb]],
                          f"{a}/{pa} - {b}/{pb} {m}") for m in metrics}
    pairs = {}
    for pools in POOLS:
        pairs[f"stationary-random ({pools})"] = diff("stationary", pools, "random", pools)
    for anchors in per_seed:
        pairs[f"mom-euclidean ({anchors})"] = diff(anchors, "mom", anchors, "euclidean")
        pairs[f"mom-initial ({anchors})"] = diff(anchors, "mom", anchors, "initial")
    return {"params": cfg.name, "config": config_to_dict(cfg),
            "cells": cells, "paired": pairs, "per_seed": per_seed, "budget": budget,
            "seeds": seeds, "n_images": n_images,
            "n_anchors": {"asked": n, "stationary_modes": n_modes,
                          "stationary": int(depths.get("n_anchors", n)),
                          "random": min(n, n_modes)},
            "diagnostics": {"stationary": stationary.get("pools")},
            "rows": config_to_dict(cfg.rows), "guard": "none"}
