"""mom.study: the protocol on the smoke data (seconds), resumption, and bad input."""
from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest

import mom.studies as ms
from mom.config import load_params
from mom.studies import StudyConfig, class_split, expand_grid, load_grid, study

GRID = (("train.lr", (0.01, 0.1)), ("train.epochs", (1, 2)))


@pytest.fixture(scope="module")
def smoke():
    return load_params("smoke")


@pytest.fixture(scope="module")
def done(smoke, tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    result = study(smoke, out / "s", StudyConfig(seeds=2, grid=GRID), progress=False)
    return result, out / "s"


def test_study_json_has_the_promised_shape(done):
    result, out = done
    on_disk = json.loads((out / "study.json").read_text())
    for key in ("rows", "paired", "selected", "protocol", "config", "env"):
        assert key in on_disk
    assert set(on_disk["rows"]) == {"initial", "euclidean", "mom"}
    for row in on_disk["rows"].values():
        for metric in ("recall@1", "recall@8", "nmi", "map@r", "r_precision"):
            s = row[metric]
            assert set(s) >= {"mean", "std", "ci95", "n"} and s["n"] == 2
            assert s["ci95"][0] <= s["mean"] <= s["ci95"][1]
    for pair in ("mom-initial", "mom-euclidean"):
        for metric in ("recall@1", "nmi"):
            d = on_disk["paired"][pair][metric]
            assert set(d) >= {"mean", "ci95", "p", "n"} and d["n"] == 2
            a, b = pair.split("-")
            per = on_disk["per_seed"]
            assert d["mean"] == pytest.approx(np.mean([x[metric] - y[metric]
                                                       for x, y in zip(per[a], per[b])]))
    assert set(on_disk["selected"]) == {"euclidean", "mom"}
    for row, chosen in on_disk["selected"].items():
        scores = {json.dumps(t["overrides"], sort_keys=True): t["score"]
                  for t in on_disk["selection"][row]}
        assert len(scores) == 4  # both rows get the whole grid
        assert scores[json.dumps(chosen, sort_keys=True)] == max(scores.values())
    proto = on_disk["protocol"]
    assert proto["select"] == "validation" and len(proto["validation_classes"]) == 2
    assert set(proto["mining_classes"]).isdisjoint(proto["validation_classes"])
    assert not (out / "figures").exists()  # the figures are the companion's (mom study draws them)
    from mom.companion.viz import save_study_figures
    made = save_study_figures(result, out / "figures")
    assert [p.name for p in made] == ["study_rows.png", "study_paired.png", "study_curves.png"]
    for name in ("study_rows", "study_paired", "study_curves"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000


def test_runs_csv_one_line_per_setting_row_seed_split(done):
    result, out = done
    with open(out / "runs.csv") as fh:
        lines = list(csv.DictReader(fh))
    val = [ln for ln in lines if ln["split"] == "validation"]
    test = [ln for ln in lines if ln["split"] == "test"]
    assert len(val) == 4 * 2 * 1 + 1  # settings x trained rows x select seeds + initial
    assert len(test) == 3 * 2  # rows x seeds
    for col in ("recall@1", "recall@2", "recall@4", "recall@8", "nmi", "map@r", "r_precision",
                "overrides", "selected", "seed", "row", "setting"):
        assert col in lines[0]
    chosen = [ln for ln in val if ln["selected"] == "True"]
    assert sorted(ln["row"] for ln in chosen) == ["euclidean", "mom"]
    for ln in chosen:
        assert json.loads(ln["overrides"]) == result["selected"][ln["row"]]
    assert all(ln["selected"] == "True" for ln in test)


def test_resume_recomputes_nothing_and_gives_the_same_numbers(done, smoke, monkeypatch):
    result, out = done

    def boom(*a, **k):
        raise AssertionError("a finished cell was trained again")
    import mom.pipeline as mp
    monkeypatch.setattr(ms, "_run_cell", boom)
    monkeypatch.setattr(mp, "embed_split", boom)  # descriptors and pools come from the cache
    again = study(smoke, out, StudyConfig(seeds=2, grid=GRID), progress=False)
    assert again["rows"] == result["rows"] and again["selected"] == result["selected"]


def test_the_test_split_chooses_nothing(done, smoke, tmp_path, monkeypatch):
    # scramble the test labels: the selection (validation classes only) must not move
    result, _ = done
    import mom.datasets.splits as mp
    real = mp.build_splits

    def scrambled(cfg):
        train, test = real(cfg)
        test.labels = np.random.default_rng(0).permutation(test.labels)
        return train, test
    monkeypatch.setattr(mp, "build_splits", scrambled)
    other = study(smoke, tmp_path / "s", StudyConfig(seeds=1, grid=GRID), progress=False)
    assert other["selected"] == result["selected"]
    assert other["selection"] == result["selection"]


def test_select_none_uses_the_parameter_file_and_no_grid(smoke, tmp_path):
    r = study(smoke, tmp_path / "n", StudyConfig(seeds=2, select="none"), progress=False)
    assert r["selected"] == {"euclidean": {}, "mom": {}} and r["selection"] == {}
    assert "validation_classes" not in r["protocol"]
    with pytest.raises(ValueError, match="grid needs"):
        StudyConfig(select="none", grid=GRID)


def test_work_dir_is_shared_between_studies(smoke, tmp_path, monkeypatch):
    study(smoke, tmp_path / "a", StudyConfig(seeds=1, select="none"), work_dir=tmp_path / "w",
          progress=False)
    monkeypatch.setattr(ms, "_run_cell", lambda *a, **k: (_ for _ in ()).throw(AssertionError()))
    r = study(smoke, tmp_path / "b", StudyConfig(seeds=1, select="none"), work_dir=tmp_path / "w",
              progress=False)
    assert r["rows"]["mom"]["recall@1"]["n"] == 1


def test_euclidean_cells_ignore_the_weight_mode(smoke):
    from mom.datasets import build_dataset
    ds = build_dataset(smoke.data, "train")
    raw = smoke
    mean1 = dataclasses.replace(smoke, train=dataclasses.replace(smoke.train, weights="mean1"))
    assert ms._cell_key(raw, "euclidean", ds, ds) == ms._cell_key(mean1, "euclidean", ds, ds)
    assert ms._cell_key(raw, "mom", ds, ds) != ms._cell_key(mean1, "mom", ds, ds)


def test_top_level_names():
    import mom
    import mom.studies
    assert mom.study is mom.studies.study and callable(mom.study)
    assert mom.StudyConfig is StudyConfig and mom.load_study is ms.load_study


# ----------------------------------------------------------------- grids and bad input
def test_grid_expansion_and_loading(tmp_path):
    assert expand_grid(()) == [{}]
    assert expand_grid(GRID) == [{"train.lr": 0.01, "train.epochs": 1},
                                 {"train.lr": 0.01, "train.epochs": 2},
                                 {"train.lr": 0.1, "train.epochs": 1},
                                 {"train.lr": 0.1, "train.epochs": 2}]
    p = tmp_path / "g.yaml"
    p.write_text("train.lr: [0.01, 0.1]\ntrain.epochs: 3\n")
    assert load_grid(p) == (("train.lr", (0.01, 0.1)), ("train.epochs", (3,)))
    d = ms.load_study("default")
    assert d.seeds == 5 and d.grid[0] == ("train.lr", (0.01, 0.1)) and d.select == "validation"
    assert ms.load_study("default", select="none").grid == ()
    assert ms.load_study("smoke", seeds=3).seeds == 3
    assert ms.load_study("no-such-file") == StudyConfig()
    with pytest.raises(ValueError, match="grid needs"):
        ms.load_study("default", select="none", grid={"train.lr": [0.1]})


def _no_work(monkeypatch):
    """Fail the test if anything is embedded or trained."""
    import mom.pipeline as mp
    def boom(*a, **k):
        raise AssertionError("work started before the bad input was refused")
    monkeypatch.setattr(ms, "_run_cell", boom)
    monkeypatch.setattr(ms, "_prepare", boom)
    monkeypatch.setattr(mp, "embed_split", boom)


@pytest.mark.parametrize("grid,match", [
    ({"train.no_such": [1]}, "unknown field 'train.no_such'"),
    ({"bogus.lr": [1]}, "unknown field 'bogus.lr'"),
    ({"train.lr": ["abc"]}, r"train.lr='abc' is a str"),
    ({"train.lr": [True]}, "train.lr=True is a bool"),
    ({"train.epochs": [1.5]}, "train.epochs=1.5 is a float"),
    ({"train.pools": ["mom"]}, "set by the study itself"),
    ({"lr": [0.1]}, "not section.field"),
])
def test_bad_grid_fails_before_any_work(smoke, tmp_path, monkeypatch, grid, match):
    _no_work(monkeypatch)
    with pytest.raises(ValueError, match=match):
        study(smoke, tmp_path / "s", StudyConfig(grid=load_grid(grid)), progress=False)
    assert not (tmp_path / "s").exists()


def test_bad_grid_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_grid(tmp_path / "missing.yaml")
    (tmp_path / "g.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        load_grid(tmp_path / "g.yaml")
    with pytest.raises(ValueError, match="twice"):
        load_grid({"train.lr": [0.1, 0.1]})


def test_a_grid_over_the_step_budget_is_refused_before_any_work(smoke, tmp_path, monkeypatch):
    _no_work(monkeypatch)
    # smoke: 16 tuples an epoch in batches of 8 = 2 steps; two learning rates x 2 epochs
    # = 8 steps a row, over a budget of 6
    with pytest.raises(ValueError, match=r"learning rates \[0.01, 0.1\].* 8 SGD steps per row.*"
                                         r"budget of 6 \(budget_steps\)"):
        study(smoke, tmp_path / "s", StudyConfig(grid=GRID, budget_steps=6), progress=False)
    assert not (tmp_path / "s").exists()


def test_a_grid_within_the_budget_records_it(smoke, tmp_path):
    r = study(smoke, tmp_path / "s", StudyConfig(seeds=1, grid=GRID, budget_steps=8),
              progress=False)
    assert r["protocol"]["budget"] == {"steps_per_row": 8, "budget_steps": 8}


def test_guarded_study_reports_the_unguarded_networks_and_selects_either(smoke, tmp_path):
    guarded = dataclasses.replace(smoke, train=dataclasses.replace(smoke.train, guard="holdout"))
    plain = study(guarded, tmp_path / "u", StudyConfig(seeds=2, grid=GRID, select_guarded=False),
                  work_dir=tmp_path / "w", progress=False)
    picked = study(guarded, tmp_path / "g", StudyConfig(seeds=2, grid=GRID),
                   work_dir=tmp_path / "w", progress=False)
    for r in (plain, picked):
        assert set(r["unguarded"]["rows"]) == {"initial", "euclidean", "mom"}
        assert set(r["unguarded"]["paired"]) == {"mom-initial", "mom-euclidean", "euclidean-initial"}
    # the unguarded rows are each training's last epoch; the guarded ones the kept epoch
    cells = {(c["row"], c["seed"]): c for c in map(
        lambda p: json.loads(p.read_text()), (tmp_path / "w" / "cells" / "test").glob("*.json"))
        if c["overrides"] == plain["selected"][c["row"]]}
    for row in ("euclidean", "mom"):
        for s, per in enumerate(plain["unguarded"]["per_seed"][row]):
            last = cells[(row, s)]["history"][-1]
            assert per["recall@1"] == last["recall@1"]
    # selection on the last epochs: the validation score of the chosen setting is its
    # trained network's, not the guard's choice
    for row, table in plain["selection"].items():
        best = max(t["score"] for t in table)
        assert [t["overrides"] for t in table if t["score"] == best][0] == plain["selected"][row]


def test_a_study_ignores_the_parameter_files_rows(smoke, tmp_path):
    from mom.config import apply_overrides
    with_rows = apply_overrides(smoke, ["rows.mom={lr: 0.1}", "rows.euclidean={epochs: 1}"])
    r = study(with_rows, tmp_path / "n", StudyConfig(seeds=1, select="none"),
              work_dir=tmp_path / "w", progress=False)
    assert r["protocol"]["rows_ignored"] == {"euclidean": {"epochs": 1}, "mom": {"lr": 0.1}}
    assert r["config"]["rows"] == {"euclidean": {}, "mom": {}}
    same = study(smoke, tmp_path / "m", StudyConfig(seeds=1, select="none"),
                 work_dir=tmp_path / "w", progress=False)
    assert same["per_seed"] == r["per_seed"]


def test_select_rows_reuses_the_validation_studys_test_cells(done, smoke, tmp_path, monkeypatch):
    from mom.config import apply_overrides
    result, out = done
    rows = {row: {k.removeprefix("train."): v for k, v in result["selected"][row].items()}
            for row in ("euclidean", "mom")}
    cfg = apply_overrides(smoke, {f"rows.{row}": v for row, v in rows.items()})
    monkeypatch.setattr(ms, "_run_cell", lambda *a, **k: (_ for _ in ()).throw(AssertionError()))
    again = study(cfg, tmp_path / "r", StudyConfig(seeds=2, select="rows"), work_dir=out / "work",
                  progress=False)
    assert again["per_seed"] == result["per_seed"]
    assert again["selected"] == result["selected"] and again["protocol"]["rows"] == {
        row: rows[row] for row in rows}
    with pytest.raises(ValueError, match="has no rows section"):
        study(smoke, tmp_path / "x", StudyConfig(seeds=1, select="rows"), progress=False)


def test_a_rows_setting_and_the_same_grid_setting_share_one_cell_key(smoke):
    from mom.config import apply_overrides
    from mom.datasets import build_dataset
    ds = build_dataset(smoke.data, "train")
    by_grid = apply_overrides(smoke, {"train.lr": 0.1})
    by_rows = apply_overrides(smoke, ["rows.mom={lr: 0.1}"])
    assert ms._cell_key(by_grid, "mom", ds, ds) == ms._cell_key(by_rows, "mom", ds, ds)
    assert ms._cell_key(by_rows, "euclidean", ds, ds) == ms._cell_key(smoke, "euclidean", ds, ds)


@pytest.mark.parametrize("kwargs,match", [
    ({"budget_steps": 0}, "budget_steps must be a positive integer"),
    ({"select_guarded": "yes"}, "select_guarded must be true or false"),
    ({"seeds": 0}, "seeds must be a positive integer"),
    ({"select": "test"}, "select must be one of"),
    ({"val_fraction": 1.0}, "val_fraction"),
    ({"select_metric": "loss"}, "select_metric"),
    ({"select_seeds": 0}, "select_seeds"),
])
def test_bad_study_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StudyConfig(**kwargs)


def test_validation_split_needs_two_classes_a_side(smoke, tmp_path, monkeypatch):
    assert [len(x) for x in class_split(np.repeat(np.arange(5), 3), 0.2, 0)] == [3, 2]
    assert [len(x) for x in class_split(np.repeat(np.arange(100), 2), 0.2, 0)] == [80, 20]
    with pytest.raises(ValueError, match="leaves 1 to mine"):
        class_split(np.repeat(np.arange(3), 4), 0.2, 0)
    with pytest.raises(ValueError, match="unlabeled"):
        class_split(np.full(6, -1), 0.2, 0)
    _no_work(monkeypatch)
    with pytest.raises(ValueError, match="at least 2 on each side"):
        study(smoke, tmp_path / "s", StudyConfig(val_fraction=0.7), progress=False)


def test_folder_of_another_configuration_is_refused(done, smoke, monkeypatch):
    _, out = done
    _no_work(monkeypatch)
    other = dataclasses.replace(smoke, train=dataclasses.replace(smoke.train, margin=0.3))
    with pytest.raises(ValueError, match=r"different configuration.*train.margin"):
        study(other, out, StudyConfig(seeds=2, grid=GRID), progress=False)
    with pytest.raises(ValueError, match="different configuration.*val_fraction"):
        study(smoke, out, StudyConfig(seeds=2, grid=GRID, val_fraction=0.3), progress=False)


def test_cli_study_and_its_errors(tmp_path, capsys):
    from mom.cli import main
    assert main(["-q", "study", "--params", "smoke", "--seeds", "0", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "mom study: error: study seeds must be a positive integer, got 0"
    g = tmp_path / "g.yaml"
    g.write_text("train.nope: [1]\n")
    assert main(["-q", "study", "--params", "smoke", "--grid", str(g), "--out",
                 str(tmp_path / "b")]) == 2
    assert "unknown field 'train.nope'" in capsys.readouterr().err
    assert main(["-q", "study", "--params", "smoke", "--select", "none", "--grid", str(g),
                 "--out", str(tmp_path / "c")]) == 2
    assert main(["-q", "study", "--params", "smoke", "--seeds", "1", "--select", "none",
                 "--out", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "| mom-initial |" in out and (tmp_path / "d" / "study.json").is_file()


def test_retrieval_benchmarks_are_fingerprinted_by_database_and_queries():
    class DS:
        def __init__(self, fp):
            self.fp = fp

        def fingerprint(self):
            return self.fp

    class Bench:
        gnd = [{}]
        database, queries = DS("db"), DS("q")
    assert ms._fingerprint(Bench()) == "dbq" and ms._fingerprint(DS("x")) == "x"
