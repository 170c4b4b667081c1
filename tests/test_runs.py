"""Cached runs keyed by configuration, run folders, and the ablation built on them."""

import numpy as np
import pytest

import mom.pipeline
from mom.companion.ablation import (ablation, ablation_differences, ablation_table, diagnostics_table,
                                    headline_metric)
from mom.companion.runs import cached_run, config_key, finished_runs, load_run, run_dir_for
from mom.companion.widgets import PoolInspector
from mom.config import apply_overrides, config_to_dict, load_params
from mom.datasets import build_dataset
from mom.io import save_json
from mom.mining import mine


def fake_run(cfg, out_dir, progress=True, cache_dir=None):
    """Stands in for mom.pipeline.run: the files a run writes, numbers from the config."""
    from pathlib import Path
    out = Path(out_dir)
    (out / "features").mkdir(parents=True, exist_ok=True)
    ds = build_dataset(cfg.data, "train")
    rng = np.random.default_rng(len(cfg.mining.anchors))
    x = rng.normal(size=(len(ds), 8)).astype(np.float32) + np.eye(8, dtype=np.float32)[ds.labels % 8] * 3
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    np.save(out / "features" / "train.npy", x)
    mine(x, cfg.mining).save(out / "pools.npz")
    score = {"all": 50.0, "stationary": 60.0, "random": 40.0}[cfg.mining.anchors]
    results = {"config": config_to_dict(cfg),
               "initial": {"recall@1": 30.0}, "euclidean": {"recall@1": score - 5},
               "mom": {"recall@1": score},
               "pools": {"n_anchors": 10, "n_skipped": 0, "pos_precision": 0.7, "neg_purity": 0.8,
                         "baseline_pos_precision": 0.6, "baseline_neg_purity": 0.9}}
    save_json(out / "results.json", results)
    fake_run.calls.append(cfg.mining.anchors)
    fake_run.n_anchors[cfg.mining.anchors] = cfg.mining.n_anchors
    return results


@pytest.fixture
def patched(monkeypatch):
    fake_run.calls, fake_run.n_anchors = [], {}
    monkeypatch.setattr(mom.pipeline, "run", fake_run)
    return apply_overrides(load_params("smoke"), ["data.per_class=6"])


def test_cached_run_reuses_exactly_the_same_config(tmp_path, patched):
    cfg = patched
    first, d1 = cached_run(cfg, tmp_path)
    again, d2 = cached_run(cfg, tmp_path)
    assert d1 == d2 == run_dir_for(cfg, tmp_path) and fake_run.calls == ["all"]
    assert again == first
    other = apply_overrides(cfg, ["mining.anchors=random"])
    assert config_key(other) != config_key(cfg)
    cached_run(other, tmp_path)
    assert fake_run.calls == ["all", "random"]
    assert finished_runs(tmp_path) == sorted([d1, run_dir_for(other, tmp_path)])
    # a results.json recording another config (edited by hand) is not trusted
    save_json(d1 / "results.json", {**first, "config": config_to_dict(other)})
    cached_run(cfg, tmp_path)
    assert fake_run.calls == ["all", "random", "all"]


def test_load_run_and_inspector_over_runs(tmp_path, patched):
    _, d1 = cached_run(patched, tmp_path)
    _, d2 = cached_run(apply_overrides(patched, ["mining.anchors=random"]), tmp_path)
    art = load_run(d1)
    assert art.config == patched and art.features.shape[1] == 8 and len(art.pools) > 0
    insp = PoolInspector.from_runs([d1, d2])
    assert len(insp.sources) == 2 and "anchors random" in insp.sources[1]
    insp.switch(insp.sources[1])
    assert insp.state["anchor"] == int(load_run(d2).pools.anchors[0])
    (d2 / "pools.npz").unlink()
    with pytest.raises(ValueError, match="pools.npz"):
        load_run(d2)
    with pytest.raises(ValueError, match="no run folders"):
        PoolInspector.from_runs([])


def test_ablation_tables_from_runs(tmp_path, patched):
    rows = ablation(patched, tmp_path)
    # random anchors: as many as the stationary run chose (n_anchors 10 + n_skipped 0)
    assert fake_run.n_anchors["random"] == 10 and fake_run.n_anchors["stationary"] == 1500
    assert [(r["anchors"], r["pools"]) for r in rows] == [
        (a, p) for a in ("all", "stationary", "random") for p in ("euclidean", "mom")]
    assert fake_run.calls == ["all", "stationary", "random"]
    table = {r["anchors"]: r for r in ablation_table(rows)}
    assert table["stationary"]["mom"] == 60.0 and table["random"]["euclidean"] == 35.0
    diff = ablation_differences(rows)  # trained - initial, one run a cell: no interval
    assert {a: d["mean"] for a, d in diff["mom"].items()} == {
        a: table[a]["mom"] - table[a]["initial"] for a in ("all", "stationary", "random")}
    assert diff["euclidean"]["random"] == {"mean": 35.0 - 30.0, "ci95": None}
    diag = diagnostics_table(rows)
    assert list(diag) == ["euclidean", "mom"]
    assert diag["mom"]["P+ precision\nall"] == 0.7 and diag["mom"]["P- purity\nrandom"] == 0.8
    assert diag["euclidean"]["P+ precision\nstationary"] == 0.6 and len(diag["euclidean"]) == 6
    ablation(patched, tmp_path, anchors=("all",))  # cached: no new run
    assert fake_run.calls == ["all", "stationary", "random"]
    with pytest.raises(ValueError, match="unknown anchor"):
        ablation(patched, tmp_path, anchors=("modes",))


def test_headline_metric():
    assert headline_metric({"recall@1": 1.0, "map": 2.0}) == "recall@1"
    assert headline_metric({"map": 2.0}) == "map"
    with pytest.raises(ValueError, match="no headline"):
        headline_metric({"nmi": 3.0})
