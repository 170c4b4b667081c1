"""The paper's claims against the committed results: one verdict rule, one table.

The README's claims table and each notebook's closing "what this run shows" cell
read their verdicts from here, so that a verdict is computed from the numbers it
stands on and never typed:

- a difference with a 95% interval over seeds (``mom.stats.paired``) is **shown** when
  the interval lies above 0, and **not shown** otherwise (the reason is named: it
  includes 0, or lies below it);
- one run, with no interval, is **not shown**, whatever its sign: training noise alone
  moves one run by as much (notebook 01's seeds measure it);
- a statistic over every anchor (pool precision, training labels) is shown when it
  beats its reference;
- a claim on data this companion did not run is **not run here**.

``claims(results_root)`` builds the rows from every parameter file's results folder
(``results/<params>/``; ``smoke`` is skipped), ``markdown(rows)`` the table;
``python -m mom.companion.claims`` prints it, and ``--write README.md`` replaces the
block between ``<!-- claims:begin -->`` and ``<!-- claims:end -->``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from .paper import TABLE1

__all__ = ["verdict", "compare", "difference_line", "claims", "markdown", "replace_block",
           "BEGIN", "END", "DATASET_NAMES", "NOT_RUN"]

BEGIN, END = "<!-- claims:begin -->", "<!-- claims:end -->"
LEAD = ("omniglot",)  # results folders listed first, in this order
DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST", "omniglot": "Omniglot",
                 "cub200": "CUB-200-2011", "roxford5k": "Oxford5k (revisited)",
                 "rparis6k": "Paris6k (revisited)", "folder": "an image folder"}
_MOM, _CYCLIC = TABLE1["MoM (paper)"], TABLE1["Cyclic match (paper)"]
# the paper's own data sets, until a results folder holds a run on them
NOT_RUN = [
    {"claim": "Table 1: MoM, without labels, against cyclic match (also label-free)",
     "paper": f"R@1 {_MOM['recall@1']} vs {_CYCLIC['recall@1']}; NMI {_MOM['nmi']}",
     "ours": "—", "data": "CUB-200-2011", "dataset": "cub200", "verdict": "not run here"},
    {"claim": "Anchor ablation: P+/P− beat Euclidean pools (R@1)",
     "paper": "clearly better (paper's ablation)", "ours": "—", "data": "CUB-200-2011",
     "dataset": "cub200", "verdict": "not run here"},
    {"claim": "Anchor ablation: stationary anchors beat random ones (mAP)",
     "paper": "clearly better (paper's ablation)", "ours": "—", "data": "Oxford5k",
     "dataset": "roxford5k", "verdict": "not run here"},
]


def verdict(mean: float, ci95: Sequence[float] | None = None) -> str:
    """The verdict on a claimed gain ``mean`` (> 0 is the claim), from its interval."""
    if ci95 is None:
        return "not shown (one run, no interval)"
    lo, hi = float(ci95[0]), float(ci95[1])
    if lo > 0:
        return "shown"
    if hi < 0:
        return "not shown (the interval lies below 0)"
    return "not shown (the interval includes 0)"


def compare(value: float, reference: float) -> str:
    """The verdict on "``value`` beats ``reference``" for a statistic over every anchor."""
    return "shown" if value > reference else "not shown"


def _signed(x: float) -> str:
    return f"{x:+.2f}".replace("-", "−")


def _interval(d: Mapping[str, Any]) -> str:
    text = _signed(d["mean"])
    if d.get("ci95"):
        text += f" [{_signed(d['ci95'][0])}, {_signed(d['ci95'][1])}]"
    return text


def difference_line(claim: str, d: Mapping[str, Any], unit: str = "points") -> str:
    """One line for a notebook's closing cell: ``claim: +1.02 [+0.32, +1.72] points: shown``."""
    return f"{claim}: {_interval(d)} {unit}: {verdict(d['mean'], d.get('ci95'))}"


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _data_label(record: Mapping[str, Any], extra: str = "") -> str:
    """"Fashion-MNIST (params default), 5 seeds": the data set and the parameter file."""
    data = (record.get("config") or {}).get("data", {})
    name = DATASET_NAMES.get(data.get("dataset"), str(data.get("dataset")))
    return f"{name} (params {record.get('params')}){extra}"


def _study_rows(study: Mapping[str, Any]) -> list[dict]:
    """Table 1's claims of one study. With a guard, the trained networks (``unguarded``:
    each training's last epoch) make the claim, and the guarded MoM row is reported beside
    it; a guarded baseline that kept the initial network on every seed is no trained
    baseline, so MoM's difference to it is not evidence against one."""
    n = study["rows"]["mom"]["recall@1"]["n"]
    data = _data_label(study, f", {n} seeds")
    how = ("settings chosen on validation classes" if study["protocol"]["select"] == "validation"
           else "the parameter file's setting, no label used")
    trained = study.get("unguarded")
    kept = ((study.get("guard") or {}).get("kept_epoch") or {}).get("euclidean") or []
    untrained_baseline = bool(kept) and all(k == 0 for k in kept)  # of the guarded rows
    pairs = [("mom-initial", "MoM improves {name} over the initial network", "MoM {name} {paper} on CUB")]
    if study["protocol"]["select"] == "validation":  # without labels the baseline is the same row
        pairs.append(("mom-euclidean", "MoM beats training on Euclidean pools, {name}",
                      "better than Euclidean pools (ablation)"))
    views = [(trained, "; trained networks")] if trained else [(study, "")]
    if trained:
        views.append((study, "; guarded"))
    rows = []
    for view, which in views:
        for metric, name in (("recall@1", "R@1"), ("nmi", "NMI")):
            if which == "; guarded" and metric != "recall@1":
                continue  # the guard beside the trained rows: R@1 says enough
            mom = view["rows"]["mom"][metric]["mean"]
            for pair, claim, paper in ((p, f"Table 1 ({how}{which}): " + c.format(name=name),
                                        t.format(name=name, paper=_MOM[metric])) for p, c, t in pairs):
                d = view["paired"][pair][metric]
                v = verdict(d["mean"], d.get("ci95"))
                ours = f"{_interval(d)} points (MoM {mom:.2f} %)"
                if pair == "mom-euclidean" and untrained_baseline and view is study:
                    v = "not shown (the guarded baseline kept the initial network on every seed)"
                rows.append({"claim": claim, "paper": paper, "ours": ours, "data": data,
                             "verdict": v})
    return rows


def _budget_rows(ab: Mapping[str, Any]) -> list[dict]:
    """The anchor ablation under an anchor budget (``anchor_budget.json``), paired over
    seeds (:func:`mom.companion.ablation.anchor_budget_study`)."""
    n = ab["n_anchors"]
    data = _data_label(ab, f", {n['stationary']} anchors of {ab['n_images']}, {ab['seeds']} seeds")
    rows = []
    for pools, label in (("mom", "P+/P− pools"), ("euclidean", "Euclidean pools")):
        d = ab["paired"][f"stationary-random ({pools})"]["recall@1"]
        rows.append({"claim": f"Anchor ablation: stationary anchors beat as many random ones, "
                              f"{label}, R@1",
                     "paper": "clearly better (Oxford5k mAP)", "ours": f"{_interval(d)} points",
                     "data": data, "verdict": verdict(d["mean"], d.get("ci95"))})
    for anchors in ("stationary", "random"):
        d = ab["paired"][f"mom-euclidean ({anchors})"]["recall@1"]
        rows.append({"claim": f"Anchor ablation: P+/P− beat Euclidean pools, {anchors} anchors, R@1",
                     "paper": "clearly better", "ours": f"{_interval(d)} points", "data": data,
                     "verdict": verdict(d["mean"], d.get("ci95"))})
    return rows


def _ablation_rows(ablation: Mapping[str, Any]) -> list[dict]:
    cells = {(r["anchors"], r["pools"]): r for r in ablation["rows"]}
    metric = ablation["rows"][0]["metric"]
    name = {"recall@1": "R@1"}.get(metric, metric)
    data = _data_label(ablation, ", one run a cell")
    rows = []
    for anchors in ("all", "stationary", "random"):
        if (anchors, "mom") in cells and (anchors, "euclidean") in cells:
            diff = cells[anchors, "mom"]["value"] - cells[anchors, "euclidean"]["value"]
            rows.append({"claim": f"Anchor ablation: P+/P− beat Euclidean pools, {anchors} anchors "
                                  f"({cells[anchors, 'mom']['n_anchors']}), {name}",
                         "paper": "clearly better", "ours": f"{_signed(diff)} points",
                         "data": data, "verdict": verdict(diff)})
    if ("stationary", "mom") in cells and ("random", "mom") in cells:
        diff = cells["stationary", "mom"]["value"] - cells["random", "mom"]["value"]
        rows.append({"claim": f"Anchor ablation: stationary anchors beat as many random ones, {name}",
                     "paper": "clearly better (Oxford5k mAP)", "ours": f"{_signed(diff)} points",
                     "data": data, "verdict": verdict(diff)})
    return rows


def _figure3_rows(figure3: Mapping[str, Any]) -> list[dict]:
    pools = figure3["pools"]
    data = _data_label(figure3, f", {pools['n_anchors']} anchors")
    return [
        {"claim": "Figure 3: P+ holds the anchor's class more often than the Euclidean "
                  "neighbours at the same depth",
         "paper": "P+ mostly the anchor's class (qualitative)",
         "ours": f"precision {pools['pos_precision']:.3f} vs {pools['pos_precision_euclid']:.3f}",
         "data": data, "verdict": compare(pools["pos_precision"], pools["pos_precision_euclid"])},
        {"claim": "Figure 3: P+ is mostly of the anchor's class (precision above one half)",
         "paper": "P+ mostly the anchor's class (qualitative)",
         "ours": f"precision {pools['pos_precision']:.3f}",
         "data": data, "verdict": compare(pools["pos_precision"], 0.5)},
        {"claim": "Figure 3: P− is mostly of other classes (purity above one half)",
         "paper": "P− mostly other classes (qualitative)", "ours": f"purity {pools['neg_purity']:.3f}",
         "data": data, "verdict": compare(pools["neg_purity"], 0.5)},
        *_hardness_rows(figure3, data),
    ]


def _hardness_rows(figure3: Mapping[str, Any], data: str) -> list[dict]:
    """How hard the mined tuples are (``figure3.json: hardness``, where it was computed):
    the share of an epoch's tuples the initial network violates (positive loss)."""
    violated = (figure3.get("hardness") or {}).get("violated")
    if not violated:
        return []
    mom, euclidean = violated["mom"]["loss"], violated["euclidean"]["loss"]
    return [{"claim": "Figure 3: MoM's tuples are harder than the Euclidean ones (the initial "
                      "network violates more of them)",
             "paper": "hard positives and negatives (qualitative)",
             "ours": f"{100 * mom:.1f} % vs {100 * euclidean:.1f} % of "
                     f"{violated['mom']['n']} tuples",
             "data": data, "verdict": compare(mom, euclidean)}]


def _not_run_rows(records: Mapping[str, Any], study: Mapping[str, Any]) -> list[dict]:
    """The claims a results folder with a validation study did not run: the label-free
    study (``study_none.json``) and the anchor ablation (``anchor_budget.json`` or
    ``anchor_ablation.json``), each named "not run here" rather than left out.
    ``records``: the folder's results files as loaded, ``{name: record or None}``."""
    data = _data_label(study)
    rows = []
    if records.get("study_none.json") is None:
        rows.append({"claim": "Table 1 (the parameter file's setting, no label used): MoM "
                              "improves R@1 over the initial network",
                     "paper": f"MoM R@1 {_MOM['recall@1']} on CUB", "ours": "—", "data": data,
                     "verdict": "not run here"})
    if all(records.get(n) is None for n in ("anchor_budget.json", "anchor_ablation.json")):
        rows.append({"claim": "Anchor ablation: stationary anchors beat as many random ones",
                     "paper": "clearly better (Oxford5k mAP)", "ours": "—", "data": data,
                     "verdict": "not run here"})
    return rows


def claims(results_root: str | Path) -> list[dict[str, str]]:
    """The claims table's rows, ``{"claim", "paper", "ours", "data", "verdict"}``: for
    every ``results_root/<params>/`` but smoke (sorted), the Table 1 rows of its
    ``study.json`` (selected on validation classes) and ``study_none.json`` (no label
    used), the ablation rows of ``anchor_budget.json`` and ``anchor_ablation.json`` and
    the Figure 3 rows of ``figure3.json`` (each where the file exists; a folder with a
    study names the label-free study and the ablation it lacks as "not run here"), then
    the claims on the paper's own
    data sets that no results folder ran (:data:`NOT_RUN`)."""
    root = Path(results_root)
    rows: list[dict] = []
    datasets = set()
    # the headline exhibit first, then the other data sets (alphabetical)
    order = {name: i for i, name in enumerate(LEAD)}
    for folder in sorted((p for p in root.iterdir() if p.is_dir() and p.name != "smoke"),
                         key=lambda p: (order.get(p.name, len(order)), p.name)):
        records = {}
        for name, build in (("study.json", _study_rows), ("study_none.json", _study_rows),
                            ("anchor_budget.json", _budget_rows),
                            ("anchor_ablation.json", _ablation_rows), ("figure3.json", _figure3_rows)):
            records[name] = record = _load(folder / name)
            if record is not None:
                rows += build(record)
                datasets.add((record.get("config") or {}).get("data", {}).get("dataset"))
        if records["study.json"] is not None:
            rows += _not_run_rows(records, records["study.json"])
    rows += [{k: v for k, v in r.items() if k != "dataset"} for r in NOT_RUN
             if r["dataset"] not in datasets]
    return rows


def markdown(rows: Sequence[Mapping[str, str]]) -> str:
    """The rows as a Markdown table: claim | the paper | ours | data set | verdict."""
    lines = ["| claim | the paper | ours: mean [95% CI] | data set | verdict |",
             "|---|---|---|---|---|"]
    for r in rows:
        shown = f"**{r['verdict']}**" if r["verdict"] == "shown" else r["verdict"]
        lines.append(f"| {r['claim']} | {r['paper']} | {r['ours']} | {r['data']} | {shown} |")
    return "\n".join(lines)


def replace_block(text: str, table: str) -> str:
    """``text`` with the lines between :data:`BEGIN` and :data:`END` replaced by ``table``."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"expected one {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    from .reproduce import REPO_ROOT
    parser = argparse.ArgumentParser(prog="python -m mom.companion.claims",
                                     description="print the claims table of the committed results")
    parser.add_argument("--results", default=str(REPO_ROOT / "results"), help="results folder")
    parser.add_argument("--write", default=None, metavar="FILE",
                        help="replace the claims block of FILE (e.g. README.md) instead")
    args = parser.parse_args(argv)
    table = markdown(claims(args.results))
    if args.write:
        from ..io import atomic_write
        text = replace_block(Path(args.write).read_text(), table)
        with atomic_write(args.write, "w") as fh:
            fh.write(text)
        print(f"wrote the claims table into {args.write}")
    else:
        print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
