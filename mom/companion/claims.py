"""The paper's claims against what this companion measured: one row per claim and data set,
with a verdict computed from the committed results (never typed by hand).

A claim of a difference ("MoM beats the initial network") is **shown** when the paired
95% interval over the training seeds lies above zero, **contradicted** when it lies
below, and **not shown** when it straddles zero. A claim needing data this machine does
not have (CUB-200-2011, Oxford5k) is **not run here**. The README's claims table is
:func:`claims_markdown` of the committed results (tests/test_claims.py checks it).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["verdict", "claims", "claims_markdown", "load_committed", "NOT_RUN", "SHOWN",
           "NOT_SHOWN", "CONTRADICTED"]

SHOWN, NOT_SHOWN, CONTRADICTED, NOT_RUN = "shown", "not shown", "contradicted", "not run here"
DATASET_NAMES = {"omniglot": "Omniglot (bundled, 68 + 68 characters)",
                 "default": "Fashion-MNIST (bundled subset, 5 + 5 classes)"}


def verdict(stat: Mapping[str, Any] | None) -> str:
    """The verdict of a paired difference ``{"mean", "ci95": [lo, hi]}`` (None: not run)."""
    if stat is None:
        return NOT_RUN
    ci = stat.get("ci95")
    if not ci:
        return NOT_SHOWN  # one seed: no interval, no evidence
    if ci[0] > 0:
        return SHOWN
    if ci[1] < 0:
        return CONTRADICTED
    return NOT_SHOWN


def _ci(stat: Mapping[str, Any], digits: int = 1) -> str:
    if stat.get("ci95"):
        lo, hi = stat["ci95"]
        return f"{stat['mean']:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"
    return f"{stat['mean']:+.{digits}f} (one run)"


def _row(claim: str, paper: str, ours: str, data: str, v: str) -> dict[str, str]:
    return {"claim": claim, "paper": paper, "ours": ours, "data": data, "verdict": v}


def _table1(name: str, study: Mapping[str, Any]) -> list[dict[str, str]]:
    """MoM against the initial network and the Euclidean baseline (R@1 and NMI), on the
    trained networks (``unguarded`` when the study has a guard)."""
    data = DATASET_NAMES.get(name, name)
    plain = study.get("unguarded") or study
    which = " (trained rows, unguarded)" if study.get("unguarded") else ""
    out = []
    for metric, label in (("recall@1", "R@1"), ("nmi", "NMI")):
        d = plain["paired"]["mom-initial"][metric]
        out.append(_row(f"MoM beats the initial network, {label}{which}",
                        "CUB: MoM 45.3 R@1, 55.0 NMI; initial row not quoted here",
                        _ci(d), data, verdict(d)))
    kept = ((study.get("guard") or {}).get("kept_epoch") or {}).get("euclidean") or []
    untrained = not study.get("unguarded") and kept and all(k == 0 for k in kept)
    for metric, label in (("recall@1", "R@1"), ("nmi", "NMI")):
        d = plain["paired"]["mom-euclidean"][metric]
        if untrained:  # the guarded baseline is the initial network: no trained baseline
            out.append(_row(f"MoM beats the Euclidean-mined baseline, {label}",
                            "CUB: MoM above the Euclidean baseline (ablation)",
                            f"{_ci(d)} against the guarded baseline, which kept the initial "
                            "network on every seed", data, NOT_SHOWN))
            continue
        out.append(_row(f"MoM beats the Euclidean-mined baseline, {label}{which}",
                        "CUB: MoM above the Euclidean baseline (ablation)", _ci(d), data, verdict(d)))
    return out


def _budget_ablation(name: str, ab: Mapping[str, Any]) -> list[dict[str, str]]:
    data = DATASET_NAMES.get(name, name) + f", {ab['n_anchors']['stationary']} anchors"
    out = []
    for pools, label in (("mom", "P+/P-"), ("euclidean", "NN^e")):
        d = ab["paired"][f"stationary-random ({pools})"]["recall@1"]
        out.append(_row(f"Stationary-distribution anchors beat random ones ({label} pools), R@1",
                        "Oxford5k mAP: stationary clearly above random", _ci(d), data, verdict(d)))
    for anchors in ("stationary", "random"):
        d = ab["paired"][f"mom-euclidean ({anchors})"]["recall@1"]
        out.append(_row(f"P+/P- beat NN^e pools ({anchors} anchors), R@1",
                        "CUB R@1 and Oxford5k mAP: P+/P- clearly above NN^e", _ci(d), data,
                        verdict(d)))
    return out


def _figure3(name: str, pools: Mapping[str, Any]) -> list[dict[str, str]]:
    """Hard (beyond the Euclidean neighbours by construction) and mostly correct: P+
    precision above one half and above the Euclidean neighbours at the same depth."""
    data = DATASET_NAMES.get(name, name)
    p, e = pools.get("pos_precision"), pools.get("pos_precision_euclid")
    if p is None or e is None:
        return []
    mostly = p > 0.5
    beats = p > e
    v = SHOWN if mostly and beats else NOT_SHOWN
    return [_row("P+ holds mostly correct positives beyond the Euclidean neighbours",
                 "CUB Figure 3: P+ mostly the anchor's class", f"P+ precision {p:.2f} "
                 f"(NN^e at the same depth {e:.2f}); P- purity {pools.get('neg_purity', float('nan')):.2f}",
                 data, v)]


def claims(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    """Claim rows from ``{params name: {"study": study.json, "budget_ablation": ...,
    "figure3_pools": pool diagnostics}}`` (any part may be missing), then the paper's own
    data sets, not run here."""
    rows: list[dict[str, str]] = []
    for name, r in results.items():
        if r.get("study"):
            rows += _table1(name, r["study"])
    for name, r in results.items():
        if r.get("budget_ablation"):
            rows += _budget_ablation(name, r["budget_ablation"])
    for name, r in results.items():
        if r.get("figure3_pools"):
            rows += _figure3(name, r["figure3_pools"])
    rows += [
        _row("Table 1 on CUB-200-2011 (MoM 45.3 R@1)", "45.3 / 57.8 / 68.6 / 78.4 R@1-8, 55.0 NMI",
             "—", "CUB-200-2011", NOT_RUN),
        _row("Anchor ablation on Oxford5k (mAP)", "stationary > random, P+/P- > NN^e", "—",
             "Oxford5k", NOT_RUN),
    ]
    return rows


def claims_markdown(rows: Sequence[Mapping[str, str]]) -> str:
    """The claims as a Markdown table: claim | paper | ours | data | verdict."""
    lines = ["| claim | paper | ours: mean [95% CI] | data | verdict |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['claim']} | {r['paper']} | {r['ours']} | {r['data']} | **{r['verdict']}** |")
    return "\n".join(lines)


def load_committed(results_root: str | Path, names: Sequence[str] = ("omniglot", "default")
                   ) -> dict[str, dict[str, Any]]:
    """What :func:`claims` reads, from ``results/<name>/`` for each parameter file name:
    ``study.json``, ``anchor_budget.json`` and ``figure3.json`` (its ``pools``) where
    they exist."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        folder = Path(results_root) / name
        if not folder.is_dir():
            continue
        part: dict[str, Any] = {}
        for key, file, pick in (("study", "study.json", None), ("budget_ablation", "anchor_budget.json", None),
                                ("figure3_pools", "figure3.json", "pools")):
            path = folder / file
            if path.is_file():
                value = json.loads(path.read_text())
                part[key] = value.get(pick) if pick else value
        if part:
            out[name] = part
    return out
