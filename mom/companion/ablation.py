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

from ..config import RunConfig
from .runs import cached_run

__all__ = ["ANCHORS", "POOLS", "ablation", "headline_metric", "ablation_table",
           "ablation_differences", "diagnostics_table"]

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
