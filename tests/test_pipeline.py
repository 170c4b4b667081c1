"""mom run --params smoke end to end: every stage runs and results.json has the
three rows with every key as finite numbers; stage files reload."""
import json
import math

import numpy as np
import pytest

from mom.cli import main
from mom.config import load_params

ROWS = ("initial", "euclidean", "mom")
KEYS = ("recall@1", "recall@2", "recall@4", "recall@8", "nmi")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    assert main(["-q", "run", "--params", "smoke", "--out", str(out)]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_results_have_three_rows_of_finite_percentages(smoke_run):
    _, results = smoke_run
    for row in ROWS:
        for key in KEYS:
            value = results[row][key]
            assert isinstance(value, float) and math.isfinite(value), (row, key)
            assert 0.0 <= value <= 100.0, (row, key)
        # recall can only grow with K
        r = [results[row][f"recall@{k}"] for k in (1, 2, 4, 8)]
        assert r == sorted(r)
    assert results["config"]["name"] == "smoke"
    assert results["config"]["train"]["epochs"] == load_params("smoke").train.epochs


def test_run_writes_every_stage_file(smoke_run):
    out, results = smoke_run
    for path in ("config.json", "pools.npz", "features/train.npy", "features/test_labels.npy",
                 "features/test_initial.npy", "features/test_mom.npy", "run.log"):
        assert (out / path).is_file(), path
    for method in ("euclidean", "mom"):
        assert (out / method / "train.json").is_file()
        assert list((out / method).glob("*.pt")), f"no checkpoint in {method}/"
    assert json.loads((out / "config.json").read_text()) == results["config"]
    feats = np.load(out / "features" / "train.npy")
    assert feats.shape[0] == results["data"]["train"]
    assert np.allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-4)
    assert results["pools"]["n_anchors"] > 0


def test_evaluate_command_reproduces_a_row_from_files(smoke_run, capsys):
    out, results = smoke_run
    capsys.readouterr()
    rc = main(["-q", "evaluate", str(out / "features" / "test_mom.npy"), "--labels",
               str(out / "features" / "test_labels.npy"), "--params", "smoke"])
    assert rc == 0
    again = json.loads(capsys.readouterr().out)
    for key in KEYS:
        assert again[key] == pytest.approx(results["mom"][key])


class _Relabelled:
    """A dataset with the same images and different labels (``ds[i]`` included)."""

    def __init__(self, ds, labels):
        self._ds, self.labels, self.name = ds, np.asarray(labels, np.int64), ds.name

    def __len__(self):
        return len(self._ds)

    def __getitem__(self, i):
        return self._ds[i][0], int(self.labels[i])

    def fingerprint(self):
        return self._ds.fingerprint()


@pytest.mark.slow
def test_training_labels_change_only_the_pool_diagnostics(smoke_run, tmp_path, monkeypatch):
    """The label-free rule: scrambled training labels leave every row identical."""
    import mom.datasets
    real = mom.datasets.build_dataset

    def scrambled(data_cfg, split):
        ds = real(data_cfg, split)
        if split != "train":
            return ds
        rng = np.random.default_rng(0)
        return _Relabelled(ds, rng.permutation(np.asarray(ds.labels)))

    monkeypatch.setattr(mom.datasets, "build_dataset", scrambled)
    assert main(["-q", "run", "--params", "smoke", "--out", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "results.json").read_text())
    _, results = smoke_run
    for row in ROWS:
        assert again[row] == results[row], row
    assert again["pools"]["pos_precision"] != results["pools"]["pos_precision"]


def test_run_refuses_a_test_split_with_one_class_before_any_work(tmp_path, capsys):
    from data_fixtures import make_folder
    make_folder(tmp_path / "data" / "train", classes=("a", "b"), per_class=3)
    make_folder(tmp_path / "data" / "test", classes=("c",), per_class=3)
    out = tmp_path / "run"
    rc = main(["-q", "run", "--params", "smoke", "--out", str(out), "--set", "data.dataset=folder",
               "--set", f"data.root={tmp_path / 'data'}", "--set", "data.per_class=null"])
    assert rc == 2
    assert "1 class(es)" in capsys.readouterr().err
    assert not (out / "results.json").exists() and not (out / "pools.npz").exists()


def test_train_split_is_the_runs_training_images(tmp_path):
    """Retrieval data: the folder data.train_root when set (all of it), else the
    benchmark's database; labelled data: the train split. The CLI's embed takes the
    same images as the pipeline."""
    import dataclasses

    from data_fixtures import make_folder, make_oxford

    from mom.config import RunConfig
    from mom.pipeline import build_splits, train_split
    make_oxford(tmp_path / "ox", n_db=5)
    make_folder(tmp_path / "extra", classes=("a", "b", "c"), per_class=2)
    data = dataclasses.replace(RunConfig().data, dataset="roxford5k", root=str(tmp_path / "ox"))
    cfg = RunConfig(data=data)
    assert len(train_split(cfg)) == 5  # the database
    assert len(build_splits(cfg)[0]) == 5
    cfg = RunConfig(data=dataclasses.replace(data, train_root=str(tmp_path / "extra")))
    train, bench = build_splits(cfg)
    assert len(train) == len(train_split(cfg)) == 6  # every image of the folder, not a half
    assert len(bench.database) == 5
    out = tmp_path / "f.npy"
    rc = main(["-q", "embed", "--params", "smoke", "--set", "data.dataset=roxford5k",
               "--set", f"data.root={tmp_path / 'ox'}", "--set", f"data.train_root={tmp_path / 'extra'}",
               "--split", "train", "--out", str(out)])
    assert rc == 0 and np.load(out).shape[0] == 6
