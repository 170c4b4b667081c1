"""The anchor ablation under an anchor budget (mom.companion.ablation.anchor_budget_study)
on the smoke data: its shape, the pairing over seeds, one random draw per seed."""
import json

import numpy as np
import pytest

from mom.companion.ablation import anchor_budget_study
from mom.config import apply_overrides, load_params


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory):
    cfg = apply_overrides(load_params("smoke"), ["rows.mom={lr: 0.05}",
                                                 "rows.euclidean={lr: 0.02}"])
    out = tmp_path_factory.mktemp("budget")
    return anchor_budget_study(cfg, out, budget=0.25, seeds=2), out


def test_cells_and_pairs_cover_both_anchor_choices_and_pool_families(budget_run):
    r, out = budget_run
    assert set(r["cells"]) == {"stationary", "random"}
    for anchors in r["cells"]:
        for pools in ("euclidean", "mom"):
            s = r["cells"][anchors][pools]["recall@1"]
            assert s["n"] == 2 and s["ci95"][0] <= s["mean"] <= s["ci95"][1]
    assert set(r["paired"]) == {"stationary-random (euclidean)", "stationary-random (mom)",
                                "mom-euclidean (stationary)", "mom-euclidean (random)",
                                "mom-initial (stationary)", "mom-initial (random)"}
    d = r["paired"]["stationary-random (mom)"]["recall@1"]
    per = r["per_seed"]
    assert d["mean"] == pytest.approx(np.mean([a["recall@1"] - b["recall@1"] for a, b in
                                               zip(per["stationary"]["mom"], per["random"]["mom"])]))
    # the budget: round(0.25 * 60) = 15 anchors asked; random gets as many as the modes found
    n = r["n_anchors"]
    assert n["asked"] == 15 and n["random"] == min(15, n["stationary_modes"])
    assert r["guard"] == "none" and r["rows"]["mom"] == {"lr": 0.05}


def test_each_seed_draws_its_own_random_anchors_and_trains_each_row_at_its_setting(budget_run):
    r, out = budget_run
    studies = [json.loads((out / f"random-{s}" / "study.json").read_text()) for s in range(2)]
    assert [s["config"]["mining"]["seed"] for s in studies] == [0, 1]
    assert [s["config"]["train"]["seed"] for s in studies] == [8, 9]  # paired with seeds 0, 1
    stationary = json.loads((out / "stationary" / "study.json").read_text())
    assert stationary["config"]["mining"]["anchors"] == "stationary"
    assert stationary["selected"] == {"euclidean": {"train.lr": 0.02}, "mom": {"train.lr": 0.05}}
    assert stationary["config"]["train"]["guard"] == "none"


def test_a_budget_outside_zero_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="anchor budget"):
        anchor_budget_study(load_params("smoke"), tmp_path, budget=1.5)
