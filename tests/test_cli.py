"""mom.cli: argument parsing, `mom mine` from a file, clear errors on bad input."""
import dataclasses
import json

import numpy as np
import pytest

from mom.cli import build_parser, config_from_args, main, mining_config_from_args
from mom.config import MiningConfig, choices, load_params


def _other_value(f):
    """A valid value of the field's type that differs from its default."""
    default = f.default
    if isinstance(default, bool):
        return not default
    if f.name == "alpha":
        return default / 2  # must stay below 1
    if isinstance(default, (int, float)):
        return default + 1
    return next(c for c in choices(MiningConfig, f.name) if c != default)


def test_mine_has_a_flag_for_every_mining_field():
    fields = dataclasses.fields(MiningConfig)
    argv = ["mine", "f.npy", "--out", "p.npz"]
    for f in fields:
        argv += ["--" + f.name.replace("_", "-"), str(_other_value(f))]
    cfg = mining_config_from_args(build_parser().parse_args(argv))
    for f in fields:
        assert getattr(cfg, f.name) == _other_value(f), f.name
        assert type(getattr(cfg, f.name)) is type(f.default), f.name


def test_mine_defaults_come_from_spec_or_params():
    args = build_parser().parse_args(["mine", "f.npy", "--out", "p.npz", "--k-pos", "9"])
    assert mining_config_from_args(args) == dataclasses.replace(MiningConfig(), k_pos=9)
    args = build_parser().parse_args(["mine", "f.npy", "--out", "p.npz", "--params", "default"])
    assert mining_config_from_args(args) == load_params("default").mining


def test_run_arguments_apply_data_root_device_and_overrides():
    args = build_parser().parse_args(
        ["run", "--params", "smoke", "--out", "o", "--data-root", "/d", "--device", "cpu",
         "--set", "train.epochs=3", "--set", "mining.k_pos=4", "--set", "train.device=auto"])
    cfg = config_from_args(args)
    assert cfg.data.root == "/d" and cfg.train.epochs == 3 and cfg.mining.k_pos == 4
    assert cfg.embed.device == "cpu" and cfg.train.device == "auto"  # --set wins
    assert cfg.embed == dataclasses.replace(load_params("smoke").embed, device="cpu")


def _clustered_features(n_per=20, n_clusters=3, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    x = np.concatenate([c + 0.3 * rng.normal(size=(n_per, dim)) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(n_clusters), n_per)


def test_mine_command_writes_a_loadable_pools_file(tmp_path, capsys):
    from mom.mining import Pools
    x, labels = _clustered_features()
    np.save(tmp_path / "f.npy", x)
    np.save(tmp_path / "l.npy", labels)
    out = tmp_path / "pools.npz"
    rc = main(["-q", "mine", str(tmp_path / "f.npy"), "--out", str(out), "--k-graph", "6",
               "--k-pos", "8", "--k-neg", "20", "--pool-size", "4", "--labels",
               str(tmp_path / "l.npy")])
    assert rc == 0 and out.is_file()
    printed = capsys.readouterr().out
    assert "anchors" in printed
    diagnostics = json.loads(printed[printed.index("{"):])
    assert 0.0 <= diagnostics["pos_precision"] <= 1.0 and "neg_purity" in diagnostics
    pools = Pools.load(out)
    assert 0 < len(pools) <= len(x)
    assert pools.config.k_pos == 8 and pools.config.pool_size == 4
    for a, pos, neg in zip(pools.anchors, pools.positives, pools.negatives):
        assert 0 < len(pos) <= 4 and 0 < len(neg) <= 4
        assert a not in pos and a not in neg
        assert pos.max() < len(x) and neg.max() < len(x)


@pytest.mark.parametrize("argv, message", [
    (["run", "--params", "no_such_params", "--out", "{tmp}/o"], "no_such_params"),
    (["run", "--params", "paper", "--out", "{tmp}/o"], "data.root"),
    (["run", "--params", "paper", "--data-root", "{tmp}/missing", "--out", "{tmp}/o"], "missing"),
    (["run", "--params", "smoke", "--set", "train.epoch=2", "--out", "{tmp}/o"], "epoch"),
    (["mine", "{tmp}/absent.npy", "--out", "{tmp}/p.npz"], "absent.npy"),
    (["evaluate", "{tmp}/absent.npy"], "--labels"),
    (["reproduce", "--params", "no_such_params", "--out", "{tmp}/o"], "no_such_params"),
    (["reproduce", "--params", "smoke", "--set", "mining.kpos=3", "--out", "{tmp}/o"], "kpos"),
])
def test_bad_input_exits_2_with_a_clear_message(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["-q", *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o" / "results.json").exists()


def test_mine_rejects_a_non_matrix(tmp_path, capsys):
    np.save(tmp_path / "f.npy", np.zeros(5, np.float32))
    assert main(["-q", "mine", str(tmp_path / "f.npy"), "--out", str(tmp_path / "p.npz")]) == 2
    assert "(N, D)" in capsys.readouterr().err
    assert not (tmp_path / "p.npz").exists()


# ---------------------------------------------------------------- progress bars
def test_run_names_its_progress_bars(tmp_path, monkeypatch):
    import mom.extract
    import mom.pipeline
    import mom.train
    descs = []
    x, _ = _clustered_features(n_per=12, n_clusters=5, dim=16)  # the 60 smoke training images

    def fake_embed(ds, *a, desc="embed", **k):
        descs.append(desc)
        return x

    def fake_evaluate(model, ds, cfg, progress=True, desc="embed test"):
        descs.append(desc)
        return {"recall@1": 50.0}, np.zeros((len(ds), 4), np.float32)

    def fake_train(model, ds, pools, cfg, *a, **k):
        descs.append(f"train {cfg.pools}")
        return mom.train.TrainResult(model, [])

    monkeypatch.setattr(mom.extract, "embed", fake_embed)
    monkeypatch.setattr(mom.pipeline, "evaluate_model", fake_evaluate)
    monkeypatch.setattr(mom.train, "build_model", lambda *a, **k: object())
    monkeypatch.setattr(mom.train, "train", fake_train)
    assert main(["-q", "run", "--params", "smoke", "--out", str(tmp_path / "o")]) == 0
    assert descs == ["embed train", "embed test (initial)", "train euclidean",
                     "embed test (euclidean)", "train mom", "embed test (mom)"]


def test_embed_command_names_its_split_in_the_progress_bar(tmp_path, monkeypatch):
    import mom.extract
    descs = []

    def fake_embed(ds, *a, desc="embed", **k):
        descs.append(desc)
        return np.ones((len(ds), 2), np.float32) / np.sqrt(2)

    monkeypatch.setattr(mom.extract, "embed", fake_embed)
    for split in ("train", "test"):
        assert main(["-q", "embed", "--params", "smoke", "--split", split,
                     "--out", str(tmp_path / f"{split}.npy")]) == 0
    assert descs == ["embed train", "embed test"]


def test_training_bars_name_the_pools_and_the_epoch(monkeypatch):
    import mom.extract
    import mom.train
    from train_fixtures import TinyImages, tiny_configs, tiny_model, tiny_pools
    descs = []
    real = mom.train.tqdm

    def recording(*a, **k):
        descs.append(k.get("desc"))
        return real(*a, **k)

    monkeypatch.setattr(mom.train, "tqdm", recording)
    monkeypatch.setattr(mom.extract, "tqdm", recording)
    embed_cfg, cfg = tiny_configs(epochs=1, pools="euclidean")
    mom.train.train(tiny_model(embed_cfg, cfg), TinyImages(), tiny_pools(), cfg, embed_cfg,
                    progress=False)
    assert descs == ["euclidean epoch 1/1 embed", "euclidean epoch 1/1 train"]
