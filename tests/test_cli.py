"""mom.cli: argument parsing, `mom mine` from a file, clear errors on bad input."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import clustered
from mom.cli import build_parser, config_from_args, main, mining_config_from_args
from mom.config import MiningConfig, apply_overrides, choices, load_params


def _other_value(f):
    """A valid value of the field's type that differs from its default."""
    default = f.default
    if isinstance(default, bool):
        return not default
    if f.name == "alpha":
        return default / 2  # must stay below 1
    if default is None:  # knn_nlist: unset by default, a number when given
        return 7
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
        assert type(getattr(cfg, f.name)) is type(_other_value(f)), f.name


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
    return clustered(n_per, n_clusters, dim, spread=0.3, seed=seed)


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


# ---------------------------------------------------------------- every mistake: one line, exit 2
@pytest.fixture
def no_heavy_work(monkeypatch):
    """Embedding, mining, model building or training fail the test if they start."""
    import mom.extract
    import mom.mining
    import mom.train

    def heavy(*a, **k):
        raise AssertionError("heavy work started before the input was checked")

    for module, name in ((mom.extract, "embed"), (mom.extract, "extract"), (mom.mining, "mine"),
                         (mom.train, "train"), (mom.train, "build_model")):
        monkeypatch.setattr(module, name, heavy)


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _refused(capsys, argv, command, *needles):
    """main(argv) exits 2 with exactly one line `mom COMMAND: error: ...` naming every needle."""
    assert main(["-q", *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"mom {command}: error: "), lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def files(tmp_path):
    """tmp_path with a file, a folder, features (40 rows) and labels."""
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "adir").mkdir()
    x, labels = _clustered_features(n_per=10, n_clusters=4)
    np.save(tmp_path / "f.npy", x)
    np.save(tmp_path / "l.npy", labels)
    return tmp_path


@pytest.mark.parametrize("argv, needles", [
    (["run", "--params", "smoke", "--out", "{tmp}/afile"], ["--out", "afile", "not a directory"]),
    (["run", "--params", "smoke", "--out", "{tmp}/afile/run"], ["--out", "afile", "is a file"]),
    (["run", "--params", "smoke", "--out", "{tmp}/o", "--cache-dir", "{tmp}/afile"],
     ["--cache-dir", "afile"]),
    (["embed", "--params", "smoke", "--out", "{tmp}/adir"], ["--out", "adir", "is a directory"]),
    (["embed", "--params", "smoke", "--out", "{tmp}/afile/x.npy"], ["--out", "afile", "is a file"]),
    (["embed", "--params", "smoke", "--out", "{tmp}/missing/x.npy"], ["missing", "does not exist"]),
    (["embed", "--params", "smoke", "--out", "{tmp}/x.npy", "--labels-out", "{tmp}/adir"],
     ["--labels-out", "adir"]),
    (["embed", "--params", "smoke", "--out", "{tmp}/x.npy", "--labels-out", "{tmp}/x.npy"],
     ["--labels-out", "x.npy", "--out"]),
    (["mine", "{tmp}/f.npy", "--out", "{tmp}/adir"], ["--out", "adir", "is a directory"]),
    (["mine", "{tmp}/f.npy", "--out", "{tmp}/afile/p.npz"], ["--out", "afile", "is a file"]),
    (["train", "--params", "smoke", "--pools", "{tmp}/p.npz", "--out", "{tmp}/afile"],
     ["--out", "afile", "not a directory"]),
    (["train", "--params", "smoke", "--pools", "{tmp}/p.npz", "--out", "{tmp}/afile/t"],
     ["--out", "afile", "is a file"]),
    (["evaluate", "{tmp}/f.npy", "--labels", "{tmp}/l.npy", "--out", "{tmp}/adir"],
     ["--out", "adir", "is a directory"]),
    (["evaluate", "{tmp}/f.npy", "--labels", "{tmp}/l.npy", "--out", "{tmp}/afile/m.json"],
     ["--out", "afile", "is a file"]),
    (["reproduce", "--params", "smoke", "--out", "{tmp}/afile"], ["--out", "afile", "not a directory"]),
    (["mine", "{tmp}/f.npy", "--format", "release", "--out", "{tmp}/afile"],
     ["--out", "afile", "not a directory"]),
    (["study", "--params", "smoke", "--out", "{tmp}/afile"], ["--out", "afile", "not a directory"]),
    (["study", "--params", "smoke", "--out", "{tmp}/s", "--work-dir", "{tmp}/afile/w"],
     ["--work-dir", "afile", "is a file"]),
    (["compare-pools", "{tmp}/p.npz", "{tmp}/p.npz", "--json", "{tmp}/adir"],
     ["--json", "adir", "is a directory"]),
])
def test_output_paths_are_checked_before_any_work(files, capsys, no_heavy_work, argv, needles):
    before = _tree(files)
    argv = [a.replace("{tmp}", str(files)) for a in argv]
    _refused(capsys, argv, argv[0], *needles)
    assert _tree(files) == before  # nothing written, no folder made


@pytest.mark.parametrize("override, needles", [
    ("train.lr=abc", ["train.lr", "expected a number, got 'abc'"]),
    ("train.lr=-1", ["train.lr", "must be > 0"]),
    ("train.epochs=0", ["train.epochs", "must be >= 1"]),
    ("mining.k_pos=-1", ["mining.k_pos", "must be >= 1"]),
    ("mining.anchors=best", ["mining.anchors", "'all', 'stationary', 'random'"]),
    ("embed.device=gpu", ["embed.device", "cuda:N"]),
    ("train.weights=sum", ["train.weights", "'raw', 'mean1'"]),
    ("mining.k_pos=1000", ["mining.k_pos=1000", "60 images"]),  # more than the training split
    ("train.batch_size=100", ["train.batch_size=100", "no full batch"]),
])
def test_bad_parameters_are_refused_before_any_work(tmp_path, capsys, no_heavy_work, override, needles):
    _refused(capsys, ["run", "--params", "smoke", "--out", str(tmp_path / "o"), "--set", override],
             "run", *needles)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["embed", "train", "evaluate"])
def test_every_command_checks_the_parameters(tmp_path, capsys, no_heavy_work, command):
    extra = {"embed": ["--out", str(tmp_path / "x.npy")],
             "train": ["--pools", str(tmp_path / "p.npz"), "--out", str(tmp_path / "t")],
             "evaluate": ["--checkpoint", str(tmp_path / "m.pt")]}[command]
    _refused(capsys, [command, "--params", "smoke", "--set", "train.lr=abc", *extra], command,
             "train.lr", "'abc'")
    assert _tree(tmp_path) == []


def test_a_folder_of_one_class_is_refused_naming_it(tmp_path, capsys, no_heavy_work):
    from data_fixtures import make_folder
    make_folder(tmp_path / "one", classes=("cat",), per_class=3)
    _refused(capsys, ["run", "--params", "smoke", "--out", str(tmp_path / "o"), "--set",
                      "data.dataset=folder", "--data-root", str(tmp_path / "one")],
             "run", str(tmp_path / "one"), "1 class folder", "train and test")
    assert not (tmp_path / "o").exists()


def test_mine_too_few_rows_names_the_file_and_the_flag(files, capsys, no_heavy_work):
    np.save(files / "few.npy", np.load(files / "f.npy")[:6])
    _refused(capsys, ["mine", str(files / "few.npy"), "--out", str(files / "p.npz"),
                      "--k-graph", "8"], "mine", "few.npy", "6 rows", "--k-graph 8", "--k-graph 5")
    _refused(capsys, ["mine", str(files / "few.npy"), "--out", str(files / "p.npz"),
                      "--k-graph", "3", "--k-pos", "7"], "mine", "few.npy", "--k-pos 7")
    assert not (files / "p.npz").exists()


def test_mine_refuses_labels_of_the_wrong_length_before_mining(files, capsys, no_heavy_work):
    np.save(files / "short.npy", np.arange(7))
    _refused(capsys, ["mine", str(files / "f.npy"), "--out", str(files / "p.npz"), "--k-graph", "6",
                      "--k-pos", "8", "--labels", str(files / "short.npy")],
             "mine", "short.npy", "(7,)", "(40,)")
    assert not (files / "p.npz").exists()


@pytest.mark.parametrize("flag, value, needles", [
    ("--k-pos", "-1", ["--k-pos: MiningConfig.k_pos: must be >= 1"]),
    ("--k-pos", "41", ["--k-pos 41 exceeds the 40 rows", "f.npy"]),
    ("--alpha", "1.5", ["--alpha: MiningConfig.alpha"]),
    ("--anchors", "best", ["--anchors", "'all', 'stationary', 'random'"]),
    ("--cg-dtype", "float16", ["--cg-dtype", "'float32', 'float64'"]),
])
def test_mine_flags_are_checked_naming_the_flag(files, capsys, no_heavy_work, flag, value, needles):
    _refused(capsys, ["mine", str(files / "f.npy"), "--out", str(files / "p.npz"), flag, value],
             "mine", *needles)
    assert not (files / "p.npz").exists()


def test_train_checks_the_pools_file_before_any_work(files, capsys, no_heavy_work):
    argv = ["train", "--params", "smoke", "--out", str(files / "t"), "--pools"]
    _refused(capsys, [*argv, str(files / "missing.npz")], "train", "missing.npz", "do not exist")
    from train_fixtures import tiny_pools
    tiny_pools(n=100).save(files / "p.npz")  # image ids up to 99: not the 60 smoke images
    _refused(capsys, [*argv, str(files / "p.npz")], "train", "p.npz", "refer to image 99",
             "60 images")
    pools = tiny_pools(n=30)
    pools.baseline = None
    pools.save(files / "mom_only.npz")
    _refused(capsys, [*argv, str(files / "mom_only.npz"), "--method", "euclidean"], "train",
             "mom_only.npz", "'euclidean' not available")
    _refused(capsys, [*argv, str(files / "mom_only.npz"), "--features", str(files / "f.npy")],
             "train", "f.npy", "shape (40, 8)", "60 images")
    assert not (files / "t").exists()


def test_os_errors_are_one_line_naming_the_file(files, capsys, monkeypatch):
    import errno

    from mom.mining import Pools

    def refuse(self, path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(Pools, "save", refuse)
    _refused(capsys, ["mine", str(files / "f.npy"), "--out", str(files / "p.npz"), "--k-graph", "6",
                      "--k-pos", "8", "--k-neg", "20", "--pool-size", "4"],
             "mine", f"'{files / 'p.npz'}': Permission denied")


def test_one_line_of_an_error():
    from mom.cli import _one_line
    assert _one_line(IsADirectoryError(21, "Is a directory", "out")) == "'out': Is a directory"
    assert _one_line(OSError(18, "Invalid cross-device link", "a", None, "b")) == \
        "'a' -> 'b': Invalid cross-device link"
    assert _one_line(ValueError("two\nlines")) == "two lines"
    assert _one_line(OSError(28, "writing 'x' failed: No space")) == "[Errno 28] writing 'x' failed: No space"
    assert _one_line(KeyboardInterrupt()) == "KeyboardInterrupt"


def test_a_failed_run_writes_the_error_to_run_log(tmp_path, capsys, monkeypatch):
    import mom.extract

    def broken(*a, **k):
        raise ValueError("images/7.png: cannot identify image file")

    monkeypatch.setattr(mom.extract, "embed", broken)
    out = tmp_path / "o"
    _refused(capsys, ["run", "--params", "smoke", "--out", str(out)], "run", "7.png")
    log = (out / "run.log").read_text()
    assert "error: images/7.png: cannot identify image file" in log
    assert "Traceback" in log  # where it happened, for whoever reads the log
    import logging
    assert not [h for h in logging.getLogger("mom").handlers if isinstance(h, logging.FileHandler)]


def test_run_names_its_progress_bars(tmp_path, monkeypatch):
    import torch

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
    monkeypatch.setattr(mom.train, "build_model", lambda *a, **k: torch.nn.Identity())
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


def test_python_dash_m_mom_and_version(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import mom
    root = Path(mom.__file__).resolve().parent.parent
    env = {**__import__("os").environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-m", "mom", "--version"], capture_output=True, text=True,
                          cwd=root, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"mom {mom.__version__}"
    done = subprocess.run([sys.executable, "-m", "mom", "-q", "mine", str(tmp_path / "absent.npy"),
                           "--out", str(tmp_path / "p.npz")], capture_output=True, text=True,
                          cwd=root, env=env, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [f"mom mine: error: features file "
                                        f"'{tmp_path / 'absent.npy'}' does not exist"]


def test_version_flag(capsys):
    import mom
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"mom {mom.__version__}"


def test_distribution_is_named_mining_on_manifolds():
    import tomllib
    from pathlib import Path

    import mom
    root = Path(mom.__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["name"] == "mining-on-manifolds"
    assert project["version"] == mom.__version__
    assert project["scripts"] == {"mom": "mom.cli:main"}
    assert "mining-on-manifolds[notebooks]" in project["optional-dependencies"]["dev"]
    assert "mining-on-manifolds" in (root / "README.md").read_text()


def test_run_resumes_by_default_and_force_recomputes(tmp_path, monkeypatch, capsys):
    import mom.pipeline
    seen = []

    def fake_run(cfg, out, progress=True, cache_dir=None, *, resume=True):
        seen.append(resume)
        return {"initial": {"recall@1": 50.0}, "timings_s": {"total": 1.0},
                "reused": ["embed", "mine"] if resume else []}

    monkeypatch.setattr(mom.pipeline, "run", fake_run)
    argv = ["-q", "run", "--params", "smoke", "--out", str(tmp_path / "o")]
    for flags in ([], ["--resume"], ["--force"]):
        assert main([*argv, *flags]) == 0
    assert seen == [True, True, False]
    printed = capsys.readouterr().out
    assert printed.count("reused 2 stage(s): embed, mine") == 2
    with pytest.raises(SystemExit) as info:  # argparse: usage and one line, no traceback
        main([*argv, "--force", "--resume"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_run_without_out_writes_the_folder_the_notebooks_reuse(tmp_path, monkeypatch, capsys):
    import mom.pipeline
    from mom.companion.runs import run_dir_for
    from mom.config import load_params
    seen = []

    def fake_run(cfg, out, progress=True, cache_dir=None, *, resume=True):
        seen.append(Path(out))
        return {"initial": {"recall@1": 50.0}, "timings_s": {"total": 1.0}, "reused": []}

    monkeypatch.setattr(mom.pipeline, "run", fake_run)
    monkeypatch.chdir(tmp_path)
    assert main(["-q", "run", "--params", "smoke"]) == 0
    assert seen == [run_dir_for(load_params("smoke"), Path("runs") / "smoke")]
    assert f"wrote {seen[0] / 'results.json'}" in capsys.readouterr().out


def test_mine_takes_features_as_a_flag_too(tmp_path, capsys):
    x, _ = _clustered_features()
    np.save(tmp_path / "f.npy", x)
    assert main(["-q", "mine", "--features", str(tmp_path / "f.npy"), "--out", str(tmp_path / "a.npz"),
                 "--k-graph", "5", "--k-pos", "5", "--k-neg", "10"]) == 0
    assert main(["-q", "mine", str(tmp_path / "f.npy"), "--out", str(tmp_path / "b.npz"),
                 "--k-graph", "5", "--k-pos", "5", "--k-neg", "10"]) == 0
    from mom.mining import Pools
    assert np.array_equal(Pools.load(tmp_path / "a.npz").pos_ids, Pools.load(tmp_path / "b.npz").pos_ids)
    capsys.readouterr()
    assert main(["-q", "mine", "--out", str(tmp_path / "c.npz")]) == 2
    assert "FEATURES or --features" in capsys.readouterr().err
    assert not (tmp_path / "c.npz").exists()


def test_mine_names_each_stage_in_its_progress_bar(tmp_path, capsys):
    x, _ = _clustered_features(n_per=30)
    np.save(tmp_path / "f.npy", x)
    assert main(["mine", str(tmp_path / "f.npy"), "--out", str(tmp_path / "p.npz"), "--k-graph", "5",
                 "--k-pos", "5", "--k-neg", "10", "--anchors", "stationary", "--n-anchors", "5"]) == 0
    err = capsys.readouterr().err
    for stage in ("kNN graph", "stationary distribution", "manifold similarity", "Euclidean pools"):
        assert stage in err, stage


def test_mine_reads_the_features_memory_mapped(tmp_path, monkeypatch):
    import mom.cli as cli
    x, _ = _clustered_features()
    np.save(tmp_path / "f.npy", x)
    seen = {}
    real = np.load

    def spy(*a, **k):
        seen["mmap_mode"] = k.get("mmap_mode")
        return real(*a, **k)
    monkeypatch.setattr(np, "load", spy)
    assert cli.main(["-q", "mine", str(tmp_path / "f.npy"), "--out", str(tmp_path / "p.npz"),
                     "--k-graph", "5", "--k-pos", "5", "--k-neg", "10"]) == 0
    assert seen["mmap_mode"] == "r"


def test_mine_with_auto_depths_prints_them(tmp_path, capsys):
    from conftest import clustered
    from mom.cli import main
    x, _ = clustered(n_per=30, classes=4, dim=16, spread=0.3, seed=3)
    np.save(tmp_path / "f.npy", x)
    main(["mine", str(tmp_path / "f.npy"), "--out", str(tmp_path / "p.npz"), "--k-graph", "10",
          "--k-pos", "auto", "--k-neg", "auto", "--pool-size", "10"])
    out = capsys.readouterr().out
    assert "depths (auto): k+ " in out and "typical_community_size" in out
    from mom.mining import Pools
    assert Pools.load(tmp_path / "p.npz").depths.rule == "auto"
    with pytest.raises(SystemExit):
        main(["mine", str(tmp_path / "f.npy"), "--out", str(tmp_path / "q.npz"), "--k-pos", "deep"])
    assert "expected an integer or auto, got 'deep'" in capsys.readouterr().err


def test_mine_with_adapt_k_graph_prints_the_graphs_k(tmp_path, capsys):
    from conftest import clustered
    from mom.cli import main
    x, _ = clustered(n_per=12, classes=6, dim=16, spread=0.3, seed=7)
    np.save(tmp_path / "f.npy", x)
    assert main(["mine", str(tmp_path / "f.npy"), "--out", str(tmp_path / "p.npz"),
                 "--k-graph", "30", "--adapt-k-graph", "true", "--k-pos", "4", "--k-neg", "20",
                 "--pool-size", "10"]) == 0
    out = capsys.readouterr().out
    assert "k_graph (adapted): " in out and "depths (auto)" not in out
    from mom.mining import Pools
    assert Pools.load(tmp_path / "p.npz").depths.k_graph < 30


def test_embed_test_split_whitens_with_the_training_fit(tmp_path):
    import mom
    from mom.datasets import build_dataset
    from mom.datasets.splits import train_split
    from mom.whitening import Whitening
    out = tmp_path / "test.npy"
    main(["-q", "embed", "--params", "smoke", "--set", "embed.whitening=true",
          "--set", "embed.whiten_dim=8", "--split", "test", "--out", str(out)])
    cfg = apply_overrides(load_params("smoke"), ["embed.whitening=true", "embed.whiten_dim=8"])
    raw_cfg = dataclasses.replace(cfg.embed, whitening=False)
    train_raw = np.asarray(mom.embed(train_split(cfg), raw_cfg, progress=False))
    test_raw = np.asarray(mom.embed(build_dataset(cfg.data, "test"), raw_cfg, progress=False))
    want = Whitening.fit(train_raw, 8).apply(test_raw)
    np.testing.assert_allclose(np.load(out), want, atol=1e-5)
    wrong = Whitening.fit(test_raw, 8).apply(test_raw)  # what fitting on the test split gives
    assert not np.allclose(np.load(out), wrong, atol=1e-3)


@pytest.mark.slow
def test_study_command_draws_the_study_figures(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["-q", "study", "--params", "smoke", "--out", str(out), "--select", "none",
                 "--seeds", "2", "--no-grid"]) == 0
    assert "study.json" in capsys.readouterr().out
    for name in ("study_rows", "study_paired", "study_curves"):
        for ext in ("png", "svg"):
            assert (out / "figures" / f"{name}.{ext}").stat().st_size > 1000


@pytest.mark.parametrize("argv", [["-q", "run", "--out", "o"], ["run", "-q", "--out", "o"],
                                  ["run", "--out", "o", "--quiet"]])
def test_quiet_is_accepted_before_or_after_the_command(argv):
    args = build_parser().parse_args(argv)
    assert args.quiet is True and args.command == "run"
    assert build_parser().parse_args(["run", "--out", "o"]).quiet is False


@pytest.mark.parametrize("command", ["run", "mine", "reproduce", "compare-pools"])
def test_version_is_accepted_after_the_command(command, capsys):
    import mom
    with pytest.raises(SystemExit) as info:
        main([command, "--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"mom {mom.__version__}"


def _all_help(parser) -> dict[str, str]:
    import argparse
    texts = {"mom": parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                texts[name] = sub.format_help()
    return texts


def test_help_is_in_plain_words():
    texts = _all_help(build_parser())
    assert len(texts) == 9
    for name, text in texts.items():
        assert "`" not in text, f"mom {name} --help shows markup: {text}"
        assert ":func:" not in text and ":class:" not in text, name
    top = texts["mom"]
    assert "Mining on Manifolds" in top and "examples:" in top and "mom run --params default" in top


def test_an_interrupted_command_says_what_was_kept(tmp_path, capsys, monkeypatch):
    import mom.release

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(mom.release, "compare_pools", interrupted)
    x, _ = _clustered_features()
    np.save(tmp_path / "f.npy", x)
    assert main(["-q", "mine", str(tmp_path / "f.npy"), "--out", str(tmp_path / "p.npz"),
                 "--k-graph", "6", "--k-pos", "8", "--k-neg", "20", "--pool-size", "4"]) == 0
    capsys.readouterr()
    assert main(["-q", "compare-pools", str(tmp_path / "p.npz"), str(tmp_path / "p.npz")]) == 130
    err = capsys.readouterr().err
    assert err.splitlines() == ["mom compare-pools: interrupted; nothing was written "
                                "(every output is written whole or not at all)"]
    # a run interrupted before any stage finished
    import mom.pipeline
    monkeypatch.setattr(mom.pipeline, "run", interrupted)
    assert main(["-q", "run", "--params", "smoke", "--out", str(tmp_path / "r")]) == 130
    assert capsys.readouterr().err.splitlines() == [
        f"mom run: interrupted; no stage had finished in {tmp_path / 'r'}; the same command "
        "starts again"]


def test_a_missing_dataset_names_the_override_on_the_command_line(tmp_path, capsys, no_heavy_work):
    from mom.datasets import CUB200
    with pytest.raises(FileNotFoundError) as info:
        CUB200(tmp_path)
    assert "pass download=True" in str(info.value)  # the Python call's own words
    rc = main(["-q", "run", "--params", "paper", "--data-root", str(tmp_path), "--out",
               str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1
    assert err.strip().endswith("or add --set data.download=true")
    assert "download=True" not in err and not (tmp_path / "o").exists()
