"""mom run --params smoke end to end: every stage runs and results.json has the
three rows with every key as finite numbers; stage files reload."""
import dataclasses
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
    import mom.datasets.factory
    real = mom.datasets.factory.build_dataset

    def scrambled(data_cfg, split):
        ds = real(data_cfg, split)
        if split != "train":
            return ds
        rng = np.random.default_rng(0)
        return _Relabelled(ds, rng.permutation(np.asarray(ds.labels)))

    monkeypatch.setattr(mom.datasets.factory, "build_dataset", scrambled)
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
    from mom.datasets.splits import build_splits, train_split
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


# ---------------------------------------------------------------- resuming a run folder
_TIMED = ("embed_s", "sample_s", "train_s", "tuples_per_s")  # per-epoch timings in the history


def _same_results(a, b):
    """Equal results.json content but for timings, environment and what was reused."""
    skip = ("timings_s", "peak_rss_mb", "env", "reused", "resumed", "history")  # not computed
    assert {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}
    untimed = [{m: [{k: v for k, v in e.items() if k not in _TIMED} for e in h]
                for m, h in r["history"].items()} for r in (a, b)]
    assert untimed[0] == untimed[1]


def _forbid(monkeypatch, *stages, allow_train=()):
    """Embedding ("embed"), mining ("mine"), training ("train": but the pools in
    ``allow_train``) or evaluating ("evaluate") fail the test if they start."""
    import mom.mining
    import mom.pipeline
    import mom.train

    def forbidden(what):
        def fail(*a, **k):
            raise AssertionError(f"{what} ran again")
        return fail

    targets = {"embed": (mom.pipeline, "embed_split"), "mine": (mom.mining, "mine"),
               "evaluate": (mom.pipeline, "evaluate_model")}
    for stage in stages:
        if stage == "train":
            real = mom.train.train

            def train(model, ds, pools, cfg, *a, **k):
                if cfg.pools not in allow_train:
                    raise AssertionError(f"training {cfg.pools} ran again")
                return real(model, ds, pools, cfg, *a, **k)
            monkeypatch.setattr(mom.train, "train", train)
        else:
            monkeypatch.setattr(*targets[stage], forbidden(stage))


def _rerun(out, *argv):
    assert main(["-q", "run", "--params", "smoke", "--out", str(out), *argv]) == 0
    return json.loads((out / "results.json").read_text())


@pytest.fixture
def smoke_copy(smoke_run, tmp_path):
    """A copy of the smoke run folder, to run again in."""
    import shutil
    out, results = smoke_run
    shutil.copytree(out, tmp_path / "run")
    return tmp_path / "run", results


def test_a_first_run_reuses_nothing_and_records_every_stage(smoke_run):
    from mom.pipeline import INITIAL, STAGES, STAGES_DIR
    out, results = smoke_run
    assert results["reused"] == []
    assert sorted(p.stem for p in (out / STAGES_DIR).glob("*.json")) == sorted(STAGES)
    assert (out / INITIAL).is_file()
    assert "reused 0 stage(s)" in (out / "run.log").read_text()


def test_a_second_run_reuses_every_stage_with_the_same_results(smoke_copy, monkeypatch, capsys):
    from mom.pipeline import STAGES
    out, results = smoke_copy
    _forbid(monkeypatch, "embed", "mine", "train", "evaluate")
    capsys.readouterr()
    again = _rerun(out, "--resume")
    assert again["reused"] == list(STAGES)
    _same_results(again, results)
    assert again["history"] == results["history"]  # the recorded one, timings included
    # the stage times are the recorded ones: what computing them took
    assert {s: again["timings_s"][s] for s in STAGES} == {s: results["timings_s"][s] for s in STAGES}
    assert "reused 8 stage(s)" in capsys.readouterr().out
    log = (out / "run.log").read_text()  # appended to the first run's
    assert log.count("data done") == 2 and "train_mom reused (stages/train_mom.json" in log


def test_a_new_learning_rate_retrains_only_the_rows(smoke_copy, monkeypatch):
    out, results = smoke_copy
    _forbid(monkeypatch, "embed", "mine", allow_train=("euclidean", "mom"))
    again = _rerun(out, "--set", "train.lr=0.02")
    assert again["reused"] == ["embed", "mine", "initial", "evaluate_initial"]
    assert again["initial"] == results["initial"] and again["pools"] == results["pools"]
    assert again["config"]["train"]["lr"] == 0.02
    for method in ("euclidean", "mom"):
        assert [e["lr"] for e in again["history"][method]] == [0.02]
        assert again["history"][method][0]["loss"] != results["history"][method][0]["loss"]
        log = json.loads((out / method / "train.json").read_text())
        assert log["train_config"]["lr"] == 0.02 and log["finished"]
    assert "train_mom: restarted, mom/checkpoint.pt was trained from other" in \
        (out / "run.log").read_text()


def test_new_mining_depths_recompute_the_pools_and_the_trained_rows(smoke_copy, monkeypatch):
    from mom.mining import Pools
    out, results = smoke_copy
    _forbid(monkeypatch, "embed", allow_train=("euclidean", "mom"))
    again = _rerun(out, "--set", "mining.k_pos=5")
    # the initial model depends on the descriptors, not on the pools
    assert again["reused"] == ["embed", "initial", "evaluate_initial"]
    assert Pools.load(out / "pools.npz").config.k_pos == 5
    assert again["initial"] == results["initial"]
    assert again["pools"] != results["pools"]


def test_a_killed_run_continues_where_it_stopped(smoke_run, tmp_path, monkeypatch):
    """Killed while evaluating the euclidean row: the rerun reuses the descriptors, the
    pools, the initial row and the euclidean training, and ends as an uninterrupted run."""
    import mom.pipeline
    real = mom.pipeline._Stages.start

    def killed(self, name, *a, **k):  # as the stage starts (scored, or copied if it fell back)
        real(self, name, *a, **k)
        if name == "evaluate_euclidean":
            raise RuntimeError("killed")

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(mom.pipeline._Stages, "start", killed)
        with pytest.raises(RuntimeError, match="killed"):
            main(["-q", "run", "--params", "smoke", "--out", str(out)])
    assert not (out / "results.json").exists()
    _forbid(monkeypatch, "embed", "mine", "train", allow_train=("mom",))
    again = _rerun(out)
    assert again["reused"] == ["embed", "mine", "initial", "evaluate_initial", "train_euclidean"]
    _same_results(again, smoke_run[1])


@pytest.mark.slow
def test_a_training_killed_mid_way_resumes_from_its_checkpoint(tmp_path, monkeypatch, capsys):
    """Two epochs, Ctrl-C after the first checkpoint of the euclidean row: one line on
    stderr says what was kept (exit status 130, the traceback only in run.log); the
    rerun continues that training from epoch 1 and says so; --force then recomputes
    every stage from scratch, to the same results."""
    import mom.train
    real = mom.train._save_checkpoint

    def interrupted(path, state, epoch):
        real(path, state, epoch)
        if epoch == 1 and path.parent.name == "euclidean":
            raise KeyboardInterrupt

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(mom.train, "_save_checkpoint", interrupted)
        capsys.readouterr()
        assert main(["-q", "run", "--params", "smoke", "--out", str(out), "--set",
                     "train.epochs=2"]) == 130
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"mom run: interrupted; kept in {out}: 4 finished stage(s) (embed, mine, initial, "
        f"evaluate_initial) and train_euclidean's checkpoint (epoch 1); the same command "
        f"continues from there (details in {out / 'run.log'})"]
    log = (out / "run.log").read_text()
    assert "interrupted (Ctrl-C)" in log and "Traceback" in log and "KeyboardInterrupt" in log
    assert main(["-q", "run", "--params", "smoke", "--out", str(out), "--set", "train.epochs=2"]) == 0
    closing = capsys.readouterr().out.splitlines()[-1]
    assert closing.endswith("; reused 4 stage(s): embed, mine, initial, evaluate_initial; "
                            "train_euclidean resumed from its checkpoint at epoch 1 of 2)")
    resumed = json.loads((out / "results.json").read_text())
    assert resumed["reused"] == ["embed", "mine", "initial", "evaluate_initial"]
    assert resumed["resumed"] == {"train_euclidean": {"from_epoch": 1, "epochs": 2}}
    assert "train_euclidean: resuming from euclidean/checkpoint.pt (epoch 1 of 2)" in \
        (out / "run.log").read_text()
    assert [e["epoch"] for e in resumed["history"]["euclidean"]] == [1, 2]
    capsys.readouterr()
    fresh = _rerun(out, "--set", "train.epochs=2", "--force")
    assert fresh["reused"] == [] and fresh["resumed"] == {}
    assert "reused" not in capsys.readouterr().out
    assert "resuming" not in (out / "run.log").read_text()  # --force starts a new log
    _same_results(resumed, fresh)


def test_the_initial_model_key_covers_what_build_model_reads():
    """The initial model's stage key holds the train fields of its architecture
    (pipeline._MODEL_FIELDS): build_model reads no other (but ``trainable``, which
    sets requires_grad and not a weight)."""
    from train_fixtures import TinyBackbone

    from mom.config import EmbedConfig, TrainConfig
    from mom.model import build_model
    from mom.pipeline import _MODEL_FIELDS

    class Recording:
        def __init__(self, cfg):
            self._cfg, self.read = cfg, set()

        def __getattr__(self, name):
            self.read.add(name)
            return getattr(self._cfg, name)

    for pooling in (None, "mac"):
        cfg = Recording(TrainConfig(embedding_dim=4, pooling=pooling, trainable="head"))
        build_model(EmbedConfig(), cfg, init_features=np.random.default_rng(0).normal(size=(10, 8)),
                    backbone=TinyBackbone())
        assert cfg.read - {"trainable"} <= set(_MODEL_FIELDS), cfg.read


def test_stage_keys_follow_the_sections_they_depend_on():
    from mom.config import load_params
    from mom.pipeline import _section, stage_key
    cfg = load_params("smoke")
    key = stage_key("embed", _section(cfg.embed))
    assert key == stage_key("embed", _section(dataclasses.replace(cfg.embed, device="cuda",
                                                                  num_workers=4)))
    assert key != stage_key("embed", _section(dataclasses.replace(cfg.embed, image_size=48)))
    assert len(key) == 16 and key != stage_key("mine", _section(cfg.embed))


def test_results_record_depths_guard_and_the_peak_memory_of_each_stage(smoke_run):
    out, results = smoke_run
    d = results["pools"]["depths"]
    assert d["rule"] == "auto" and d["statistic"] == "typical_community_size" and d["k_pos"] >= 1
    assert results["config"]["mining"]["k_pos"] == "auto"  # as asked; the numbers are in depths
    for method in ("euclidean", "mom"):
        g = results["guard"][method]
        assert g["active"] and len(g["losses"]) == 2 and g["kept_epoch"] in (0, 1)
    peaks = results["peak_rss_mb"]
    assert {"embed", "mine", "train_euclidean", "train_mom", "process"} <= set(peaks)
    assert all(0 < v <= peaks["process"] for v in peaks.values())
    rec = json.loads((out / "stages" / "mine.json").read_text())
    assert rec["peak_rss_mb"] == peaks["mine"]


def test_each_row_trains_with_its_own_setting_and_retrains_alone(smoke_copy, monkeypatch):
    out, results = smoke_copy
    _forbid(monkeypatch, "embed", "mine", "train", allow_train=("mom",))
    again = _rerun(out, "--set", "rows.mom={lr: 0.02}")
    # only the MoM row changed: the Euclidean row and everything before are reused
    assert again["reused"] == ["embed", "mine", "initial", "evaluate_initial", "train_euclidean",
                               "evaluate_euclidean"]
    assert again["euclidean"] == results["euclidean"]
    assert [e["lr"] for e in again["history"]["mom"]] == [0.02]
    assert [e["lr"] for e in again["history"]["euclidean"]] == [load_params("smoke").train.lr]
    assert again["config"]["rows"] == {"euclidean": {}, "mom": {"lr": 0.02}}
    log = json.loads((out / "mom" / "train.json").read_text())
    assert log["train_config"]["lr"] == 0.02 and log["train_config"]["pools"] == "mom"


def test_a_field_at_its_neutral_value_leaves_the_stage_keys_where_they_were():
    # a field added to a section later, declared neutral at its default, does not move
    # the key of a config that leaves it there (and does once it is set)
    import dataclasses as dc
    from mom.config import NEUTRAL, MiningConfig, load_params
    from mom.pipeline import _section, stage_key
    cfg = load_params("smoke").mining
    Later = dc.make_dataclass("MiningConfig", [("new_knob", int, dc.field(
        default=0, metadata={NEUTRAL: 0}))], bases=(MiningConfig,), frozen=True)
    same = Later(**dc.asdict(cfg))
    assert stage_key("mine", _section(same)) == stage_key("mine", _section(cfg))
    moved = Later(**dc.asdict(cfg), new_knob=3)
    assert stage_key("mine", _section(moved)) != stage_key("mine", _section(cfg))
    # a field without the declaration is hashed whatever its value
    Plain = dc.make_dataclass("MiningConfig", [("other", int, 0)], bases=(MiningConfig,),
                              frozen=True)
    assert stage_key("mine", _section(Plain(**dc.asdict(cfg)))) != stage_key("mine", _section(cfg))


def test_the_second_row_starts_from_the_first_rows_embedding_and_a_fallen_back_row_is_not_rescored(
        tmp_path, monkeypatch):
    # both rows start from the initial model: the training set is embedded by it once;
    # a row whose guard returned the initial network is scored as the initial row, copied
    import mom.guard
    import mom.pipeline
    import mom.train
    monkeypatch.setattr(mom.guard, "choose_epoch", lambda losses: 0)  # every guard falls back
    given, scored = [], []
    real_train, real_eval = mom.train.train, mom.pipeline.evaluate_model

    def train(model, ds, pools, cfg, *a, start_embedding=None, **k):
        given.append((cfg.pools, start_embedding))
        return real_train(model, ds, pools, cfg, *a, start_embedding=start_embedding, **k)

    def evaluate(model, ds, cfg, *a, desc="", **k):
        scored.append(desc)
        return real_eval(model, ds, cfg, *a, desc=desc, **k)
    monkeypatch.setattr(mom.train, "train", train)
    monkeypatch.setattr(mom.pipeline, "evaluate_model", evaluate)
    out = tmp_path / "run"
    assert main(["-q", "run", "--params", "smoke", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [p for p, _ in given] == ["euclidean", "mom"]
    assert given[0][1] is None and given[1][1] is not None  # handed the first row's
    first = np.load(out / "features" / "test_initial.npy")
    assert scored == ["embed test (initial)"]  # neither fallen-back row embedded the test set
    for row in ("euclidean", "mom"):
        assert results["guard"][row]["fell_back"]
        assert results[row] == results["initial"]
        assert np.array_equal(np.load(out / "features" / f"test_{row}.npy"), first)
