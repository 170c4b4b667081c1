"""mom.companion.claims: the verdict rule, and the claims table built from results files."""
import json

import pytest

from mom.companion.claims import (BEGIN, END, NOT_RUN, claims, compare, difference_line,
                                  markdown, replace_block, verdict)


def test_the_verdict_rule():
    assert verdict(0.5, [0.1, 0.9]) == "shown"
    assert verdict(0.2, [-0.1, 0.5]) == "not shown (the interval includes 0)"
    assert verdict(-0.5, [-0.9, -0.1]) == "not shown (the interval lies below 0)"
    assert verdict(3.0) == verdict(-3.0) == "not shown (one run, no interval)"  # sign is no evidence
    assert compare(0.66, 0.61) == "shown" and compare(0.5, 0.5) == "not shown"
    assert difference_line("x", {"mean": 1.02, "ci95": [0.32, 1.72]}) == \
        "x: +1.02 [+0.32, +1.72] points: shown"
    assert difference_line("y", {"mean": -0.1}) == "y: −0.10 points: not shown (one run, no interval)"


def _paired(mean, lo, hi):
    return {"mean": mean, "ci95": [lo, hi], "n": 5}


def _study(select, params="toy", dataset="fashion_mnist"):
    metrics = {"recall@1": _paired(0.3, 0.1, 0.5), "nmi": _paired(-0.2, -0.6, 0.2)}
    return {"params": params, "config": {"name": params, "data": {"dataset": dataset}},
            "protocol": {"select": select},
            "rows": {"mom": {"recall@1": {"mean": 91.0, "n": 5}, "nmi": {"mean": 60.0, "n": 5}}},
            "paired": {"mom-initial": metrics, "mom-euclidean": metrics}}


def _write(folder, name, data):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data))


def test_claims_read_every_results_folder_but_smoke(tmp_path):
    _write(tmp_path / "toy", "study.json", _study("validation"))
    _write(tmp_path / "toy", "study_none.json", _study("none"))
    cells = [{"anchors": a, "pools": p, "value": v, "initial": 90.0, "metric": "recall@1",
              "n_anchors": 16} for a, p, v in (("all", "euclidean", 90.0), ("all", "mom", 90.5),
                                               ("stationary", "mom", 91.0), ("random", "mom", 90.0))]
    _write(tmp_path / "toy", "anchor_ablation.json",
           {"params": "toy", "config": {"data": {"dataset": "fashion_mnist"}}, "rows": cells})
    _write(tmp_path / "toy", "figure3.json", {"params": "toy", "config": {"data": {"dataset": "fashion_mnist"}},
                                              "pools": {"pos_precision": 0.6, "pos_precision_euclid": 0.7,
                                                        "neg_purity": 0.8, "n_anchors": 100}})
    _write(tmp_path / "smoke", "study.json", _study("validation", "smoke"))  # never a claim
    rows = claims(tmp_path)
    assert all("smoke" not in r["data"] for r in rows)
    table1 = [r for r in rows if r["claim"].startswith("Table 1 (")]
    # validation: MoM - initial and MoM - Euclidean per metric; none: MoM - initial per metric
    assert len(table1) == 4 + 2
    assert [r["verdict"] for r in table1[:2]] == ["shown", "shown"]  # R@1: interval above 0
    assert table1[2]["verdict"] == "not shown (the interval includes 0)"  # NMI
    ablation = {r["claim"]: r for r in rows if r["claim"].startswith("Anchor ablation")}
    assert len(ablation) == 2 + len([r for r in NOT_RUN if "ablation" in r["claim"].lower()])
    fig3 = [r for r in rows if r["claim"].startswith("Figure 3")]
    # 0.6 < 0.7; 0.6 > 0.5 (mostly the anchor's class); 0.8 > 0.5
    assert [r["verdict"] for r in fig3] == ["not shown", "shown", "shown"]
    not_run = [r for r in rows if r["verdict"] == "not run here"]
    assert {r["data"] for r in not_run} == {"CUB-200-2011", "Oxford5k"}
    # a results folder on CUB-200-2011 replaces its "not run here" rows, but for what that
    # folder itself lacks (here a study alone: its label-free study and its ablation)
    _write(tmp_path / "paper", "study.json", _study("validation", "paper", "cub200"))
    assert {r["data"] for r in claims(tmp_path) if r["verdict"] == "not run here"} == {
        "Oxford5k", "CUB-200-2011 (params paper)"}
    text = markdown(rows)
    assert text.splitlines()[0] == "| claim | the paper | ours: mean [95% CI] | data set | verdict |"
    assert len(text.splitlines()) == 2 + len(rows) and "| **shown** |" in text


def test_replace_block_rewrites_only_between_the_markers():
    text = f"intro\n{BEGIN}\nold\n{END}\noutro\n"
    assert replace_block(text, "| new |") == f"intro\n{BEGIN}\n| new |\n{END}\noutro\n"
    with pytest.raises(ValueError, match="claims:begin"):
        replace_block("no markers", "x")


def test_a_guarded_study_claims_on_its_trained_networks_and_names_a_fallen_back_baseline(tmp_path):
    guarded = _study("validation")
    guarded["unguarded"] = {"rows": guarded["rows"], "paired": {
        "mom-initial": {"recall@1": _paired(-1, -2, -0.5), "nmi": _paired(-1, -2, -0.5)},
        "mom-euclidean": {"recall@1": _paired(-1, -2, -0.5), "nmi": _paired(-1, -2, -0.5)}}}
    _write(tmp_path / "a", "study.json", guarded)
    rows = [r for r in claims(tmp_path) if r["claim"].startswith("Table 1")]
    trained = [r for r in rows if "; trained networks)" in r["claim"]]
    assert len(trained) == 4 and all("below 0" in r["verdict"] for r in trained)
    assert [r["verdict"] for r in rows if "; guarded)" in r["claim"]] == ["shown", "shown"]
    fell_back = _study("validation")
    fell_back["guard"] = {"kept_epoch": {"euclidean": [0, 0, 0, 0, 0]}}
    _write(tmp_path / "b", "study.json", fell_back)
    rows = [r for r in claims(tmp_path) if "Euclidean pools" in r["claim"] and "params toy" in r["data"]]
    assert any("kept the initial network" in r["verdict"] for r in rows)


def test_the_anchor_budget_study_gives_paired_rows(tmp_path):
    pair = {"recall@1": _paired(-1.0, -2.0, -0.5)}
    _write(tmp_path / "o", "anchor_budget.json", {
        "params": "o", "config": {"data": {"dataset": "omniglot"}}, "seeds": 5, "n_images": 1360,
        "n_anchors": {"stationary": 68}, "paired": {
            "stationary-random (mom)": pair, "stationary-random (euclidean)": pair,
            "mom-euclidean (stationary)": {"recall@1": _paired(1.0, 0.5, 1.5)},
            "mom-euclidean (random)": {"recall@1": _paired(1.0, -0.5, 2.5)}}})
    rows = {r["claim"]: r for r in claims(tmp_path) if r["claim"].startswith("Anchor ablation")
            and "Omniglot" in r["data"]}
    assert len(rows) == 4
    assert rows["Anchor ablation: stationary anchors beat as many random ones, P+/P− pools, R@1"][
        "verdict"] == "not shown (the interval lies below 0)"
    assert rows["Anchor ablation: P+/P− beat Euclidean pools, stationary anchors, R@1"]["verdict"] == "shown"
    assert "68 anchors of 1360, 5 seeds" in next(iter(rows.values()))["data"]


def test_a_study_folder_names_the_label_free_study_and_the_ablation_it_lacks(tmp_path):
    _write(tmp_path / "o", "study.json", _study("validation", "o", "omniglot"))
    figure3 = {"params": "o", "config": {"data": {"dataset": "omniglot"}},
               "pools": {"pos_precision": 0.075, "pos_precision_euclid": 0.056,
                         "neg_purity": 0.96, "n_anchors": 1356},
               "hardness": {"violated": {"mom": {"loss": 1.0, "n": 210},
                                         "euclidean": {"loss": 0.9, "n": 210}}}}
    _write(tmp_path / "o", "figure3.json", figure3)
    rows = [r for r in claims(tmp_path) if "Omniglot" in r["data"]]
    missing = [r["claim"] for r in rows if r["verdict"] == "not run here"]
    assert len(missing) == 2 and missing[0].startswith("Table 1 (the parameter file's setting")
    assert missing[1].startswith("Anchor ablation: stationary anchors")
    fig3 = {r["claim"]: r["verdict"] for r in rows if r["claim"].startswith("Figure 3")}
    assert fig3["Figure 3: P+ is mostly of the anchor's class (precision above one half)"] == "not shown"
    harder = [r for r in rows if "harder" in r["claim"]]
    assert harder[0]["verdict"] == "shown" and harder[0]["ours"] == "100.0 % vs 90.0 % of 210 tuples"
    _write(tmp_path / "o", "study_none.json", _study("none", "o", "omniglot"))
    _write(tmp_path / "o", "anchor_budget.json", {
        "params": "o", "config": {"data": {"dataset": "omniglot"}}, "seeds": 5, "n_images": 1360,
        "n_anchors": {"stationary": 68},
        "paired": {k: {"recall@1": _paired(0.1, -0.1, 0.3)} for k in (
            "stationary-random (mom)", "stationary-random (euclidean)",
            "mom-euclidean (stationary)", "mom-euclidean (random)")}})
    assert not [r for r in claims(tmp_path) if "Omniglot" in r["data"] and r["verdict"] == "not run here"]
