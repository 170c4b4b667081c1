"""mom.companion.claims: verdicts from paired intervals, and claim rows from results."""
import pytest

from mom.companion.claims import (CONTRADICTED, NOT_RUN, NOT_SHOWN, SHOWN, claims,
                                  claims_markdown, verdict)


def _d(mean, lo, hi):
    return {"mean": mean, "ci95": [lo, hi], "n": 5}


def test_verdict_reads_the_interval():
    assert verdict(_d(1.0, 0.2, 1.8)) == SHOWN
    assert verdict(_d(-1.0, -1.8, -0.2)) == CONTRADICTED
    assert verdict(_d(0.5, -0.1, 1.1)) == NOT_SHOWN
    assert verdict({"mean": 3.0, "ci95": None, "n": 1}) == NOT_SHOWN  # one run: no evidence
    assert verdict(None) == NOT_RUN


def _study(mi, me, guard=None, unguarded=True):
    paired = {"mom-initial": {"recall@1": mi, "nmi": mi}, "mom-euclidean": {"recall@1": me, "nmi": me}}
    s = {"paired": paired, "guard": guard or {}}
    if unguarded:
        s["unguarded"] = {"paired": paired}
    return s


def test_table1_claims_use_the_trained_rows_and_never_a_guard_fallback_as_the_baseline():
    rows = claims({"omniglot": {"study": _study(_d(6, 3, 9), _d(2, 0.5, 3.5))}})
    t1 = [r for r in rows if r["data"].startswith("Omniglot")]
    assert [r["verdict"] for r in t1] == [SHOWN] * 4
    assert all("unguarded" in r["claim"] for r in t1)
    # a guarded study whose Euclidean row kept the initial network on every seed has no
    # trained baseline: "not shown", whatever the interval
    fell_back = _study(_d(1, 0.1, 2), _d(1, 0.1, 2), guard={"kept_epoch": {"euclidean": [0, 0]}},
                       unguarded=False)
    rows = claims({"default": {"study": fell_back}})
    base = [r for r in rows if "Euclidean" in r["claim"]]
    assert [r["verdict"] for r in base] == [NOT_SHOWN, NOT_SHOWN]
    assert "kept the initial network" in base[0]["ours"]


def test_ablation_figure3_and_the_papers_data_sets():
    pair = {"recall@1": _d(-1, -2, -0.5)}
    ab = {"n_anchors": {"stationary": 68}, "paired": {
        "stationary-random (mom)": pair, "stationary-random (euclidean)": pair,
        "mom-euclidean (stationary)": {"recall@1": _d(1, -1, 3)},
        "mom-euclidean (random)": {"recall@1": _d(1, -1, 3)}}}
    pools = {"pos_precision": 0.3, "pos_precision_euclid": 0.2, "neg_purity": 0.9}
    rows = claims({"omniglot": {"budget_ablation": ab, "figure3_pools": pools}})
    verdicts = {r["claim"]: r["verdict"] for r in rows}
    assert verdicts["Stationary-distribution anchors beat random ones (P+/P- pools), R@1"] == CONTRADICTED
    assert verdicts["P+/P- beat NN^e pools (stationary anchors), R@1"] == NOT_SHOWN
    assert verdicts["P+ holds mostly correct positives beyond the Euclidean neighbours"] == NOT_SHOWN
    assert [r["verdict"] for r in rows[-2:]] == [NOT_RUN, NOT_RUN]
    assert "68 anchors" in rows[0]["data"]
    md = claims_markdown(rows)
    assert md.count("\n") == len(rows) + 1 and "**contradicted**" in md
