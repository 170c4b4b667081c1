"""mom.config: the three parameter files load, round-trip and reject bad keys."""
import dataclasses
import re

import pytest

from mom.config import (MiningConfig, RunConfig, apply_overrides, config_from_dict,
                        config_to_dict, load_params)

BUNDLED = ("smoke", "default", "paper")


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_params_load_and_round_trip(name):
    cfg = load_params(name)
    assert isinstance(cfg, RunConfig) and cfg.name == name
    again = config_from_dict(config_to_dict(cfg))
    assert again == cfg
    # tuples survive the trip through JSON lists with their element types
    assert isinstance(again.eval.ks, tuple) and all(isinstance(k, int) for k in again.eval.ks)


def test_paper_params_are_spec_section_7():
    cfg = load_params("paper")
    assert (cfg.data.dataset, cfg.data.root) == ("cub200", None)
    e = cfg.embed
    assert e.backbone in ("googlenet", "googlenet_caffe")
    assert (e.pooling, e.rmac_levels, e.whitening, e.whiten_dim) == ("rmac", 3, True, 512)
    assert e.image_size == 512 and len(e.scales) == 3
    assert e.scales[1] == pytest.approx(2 ** -0.5) and e.scales[2] == pytest.approx(0.5)
    m = cfg.mining
    assert (m.k_graph, m.gamma, m.alpha, m.cg_iterations) == (30, 3.0, 0.99, 20)
    assert (m.k_pos, m.k_neg, m.pool_size, m.anchors) == (50, 100, 50, "all")
    t = cfg.train
    assert (t.embedding_dim, t.epochs, t.batch_size, t.lr, t.momentum, t.dampening) == \
        (64, 100, 42, 0.01, 0.9, 0.9)
    assert (t.weight_decay, t.lr_step_epoch, t.lr_gamma, t.seed, t.image_size) == \
        (5e-4, 50, 0.1, 8, 227)
    assert (t.margin, t.hard_negatives, t.tuples_per_epoch, t.loss) == (0.5, 10, None, "triplet")


def test_default_and_smoke_use_the_bundled_offline_data():
    for name in ("default", "smoke"):
        cfg = load_params(name)
        assert cfg.data.dataset == "fashion_mnist" and cfg.data.root is None
    smoke = load_params("smoke")
    assert smoke.train.epochs == 1 and smoke.data.per_class <= 20


def test_overrides_coerce_types_and_leave_the_rest():
    cfg = load_params("default")
    new = apply_overrides(cfg, ["train.epochs=2", "mining.k_pos=7", "train.lr=1e-3",
                                "eval.ks=[1, 5]", "train.freeze_bn=false", "data.root=/x"])
    assert new.train.epochs == 2 and new.mining.k_pos == 7 and new.train.lr == 1e-3
    assert new.eval.ks == (1, 5) and new.train.freeze_bn is False and new.data.root == "/x"
    assert new.embed == cfg.embed and new.mining.k_neg == cfg.mining.k_neg
    assert cfg == load_params("default")  # the original is untouched (frozen)
    assert apply_overrides(cfg, {"train.epochs": 3}).train.epochs == 3


@pytest.mark.parametrize("bad, key", [
    (["train.epoch=2"], "epoch"),
    (["trian.epochs=2"], "trian"),
    (["epochs=2"], "epochs"),
    (["train.epochs"], "train.epochs"),
    (["train.freeze_bn=maybe"], "freeze_bn"),
])
def test_bad_override_names_the_key(bad, key):
    with pytest.raises(ValueError, match=rf"\b{re.escape(key)}\b"):
        apply_overrides(load_params("smoke"), bad)


def test_bad_keys_in_a_params_file_name_the_key(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("mining:\n  k_poss: 3\n")
    with pytest.raises(ValueError, match="k_poss"):
        load_params(p)
    p.write_text("minning:\n  k_pos: 3\n")
    with pytest.raises(ValueError, match="minning"):
        load_params(p)
    p.write_text("mining:\n  k_pos: 3\n")
    cfg = load_params(p)
    assert cfg.mining == dataclasses.replace(MiningConfig(), k_pos=3) and cfg.name == "mine"


def test_unknown_params_name_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="no_such_params.*smoke"):
        load_params("no_such_params")


def test_boolean_overrides():
    from mom.config import parse_bool
    cfg = apply_overrides(load_params("smoke"), ["train.augment=No", "train.amp=1"])
    assert cfg.train.augment is False and cfg.train.amp is True
    with pytest.raises(ValueError, match=r"TrainConfig.amp: expected a boolean .*'maybe'"):
        apply_overrides(load_params("smoke"), ["train.amp=maybe"])
    assert parse_bool("TRUE") is True and parse_bool("0") is False


# ---------------------------------------------------------------- field checks
from mom.config import (DataConfig, EmbedConfig, EvalConfig, TrainConfig,  # noqa: E402
                        choices)

SECTIONS = (DataConfig, EmbedConfig, MiningConfig, TrainConfig, EvalConfig)


def _enum_fields():
    return [(cls, f.name) for cls in SECTIONS for f in dataclasses.fields(cls)
            if choices(cls, f.name) is not None]


def test_enum_like_fields_are_literals():
    names = {f"{cls.__name__}.{name}" for cls, name in _enum_fields()}
    assert {"DataConfig.dataset", "DataConfig.source", "EmbedConfig.backbone", "EmbedConfig.pooling",
            "MiningConfig.solver", "MiningConfig.cg_dtype", "MiningConfig.cg_backend",
            "MiningConfig.anchors", "MiningConfig.knn_index", "TrainConfig.pools", "TrainConfig.loss",
            "TrainConfig.pooling", "TrainConfig.head_init", "TrainConfig.weights"} <= names
    assert choices(MiningConfig, "anchors") == ("all", "stationary", "random")
    assert choices(TrainConfig, "pooling") == ("gap", "mac", "gem", "rmac")  # optional Literal
    assert choices(MiningConfig, "k_pos") is None and choices(TrainConfig, "trainable") is None


@pytest.mark.parametrize("cls, name", _enum_fields(), ids=lambda x: getattr(x, "__name__", x))
def test_a_name_outside_a_literal_is_refused_at_construction(cls, name):
    allowed = choices(cls, name)
    for value in allowed:
        assert getattr(cls(**{name: value}), name) == value
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\.{name}: expected one of "
                                         rf"{re.escape(', '.join(map(repr, allowed)))}, got 'best'$"):
        cls(**{name: "best"})


def test_mining_anchors_example_from_the_issue():
    with pytest.raises(ValueError, match=r"MiningConfig\.anchors.*'all', 'stationary', 'random'"):
        MiningConfig(anchors="best")


def test_literal_names_match_the_modules_that_implement_them():
    from mom import backbones, knn, pipeline, pooling
    from mom.companion import ablation
    from mom.datasets import DATASETS
    assert choices(DataConfig, "dataset") == DATASETS
    assert choices(EmbedConfig, "backbone") == backbones.BACKBONES
    assert choices(EmbedConfig, "pooling") == pooling.POOLINGS
    assert choices(MiningConfig, "knn_index") == knn.INDEXES
    assert choices(MiningConfig, "anchors") == ablation.ANCHORS
    assert set(choices(TrainConfig, "pools")) == set(pipeline.METHODS)
    from mom.sampler import WEIGHT_MODES
    assert choices(TrainConfig, "weights") == WEIGHT_MODES


def test_every_numeric_field_has_a_range_rule():
    import typing

    from mom.config import _RULES, _hints
    numeric = 0
    for cls in SECTIONS:
        for f in dataclasses.fields(cls):
            hint = _hints(cls)[f.name]
            kinds = set(typing.get_args(hint)) | {hint, *map(typing.get_origin, typing.get_args(hint))}
            if int in kinds or float in kinds or tuple in kinds or typing.get_origin(hint) is tuple:
                numeric += 1
                assert f.name in _RULES[cls.__name__], f"{cls.__name__}.{f.name} has no range rule"
    assert numeric == sum(map(len, _RULES.values()))  # and no rule for a field that is gone


@pytest.mark.parametrize("cls, name, bad, rule", [
    (DataConfig, "per_class", 0, ">= 1"),
    (EmbedConfig, "gem_p", 0.0, "> 0"),
    (EmbedConfig, "rmac_levels", 0, ">= 1"),
    (EmbedConfig, "scales", (1.0, 0.0), "> 0"),
    (EmbedConfig, "image_size", 7, ">= 8"),
    (EmbedConfig, "whiten_dim", 0, ">= 1"),
    (EmbedConfig, "batch_size", 0, ">= 1"),
    (EmbedConfig, "num_workers", -1, ">= 0"),
    (MiningConfig, "k_graph", 1, ">= 2"),
    (MiningConfig, "gamma", 0.0, "> 0"),
    (MiningConfig, "alpha", 0.0, "strictly between 0 and 1"),
    (MiningConfig, "alpha", 1.0, "strictly between 0 and 1"),
    (MiningConfig, "cg_iterations", 0, ">= 1"),
    (MiningConfig, "cg_tol", -1e-3, ">= 0"),
    (MiningConfig, "k_pos", -1, ">= 1"),
    (MiningConfig, "k_neg", 0, ">= 1"),
    (MiningConfig, "pool_size", 0, ">= 1"),
    (MiningConfig, "n_anchors", 0, ">= 1"),
    (MiningConfig, "power_iterations", 0, ">= 1"),
    (MiningConfig, "block_size", 0, ">= 1"),
    (MiningConfig, "seed", -1, ">= 0"),
    (TrainConfig, "margin", -0.1, ">= 0"),
    (TrainConfig, "n_negatives", 0, ">= 1"),
    (TrainConfig, "hard_negatives", 0, ">= 1"),
    (TrainConfig, "embedding_dim", 0, ">= 1"),
    (TrainConfig, "epochs", 0, ">= 1"),
    (TrainConfig, "batch_size", 0, ">= 1"),
    (TrainConfig, "tuples_per_epoch", 0, ">= 1"),
    (TrainConfig, "lr", 0.0, "> 0"),
    (TrainConfig, "lr", -1.0, "> 0"),
    (TrainConfig, "momentum", 1.0, r"in \[0, 1\)"),
    (TrainConfig, "momentum", -0.1, r"in \[0, 1\)"),
    (TrainConfig, "dampening", 1.5, r"in \[0, 1\]"),
    (TrainConfig, "weight_decay", -1e-4, ">= 0"),
    (TrainConfig, "lr_step_epoch", 0, ">= 1"),
    (TrainConfig, "lr_gamma", 0.0, "> 0"),
    (TrainConfig, "image_size", 4, ">= 8"),
    (TrainConfig, "seed", -1, ">= 0"),
    (TrainConfig, "num_workers", -2, ">= 0"),
    (EvalConfig, "ks", (1, 0), ">= 1"),
    (EvalConfig, "nmi_seeds", (-1,), ">= 0"),
])
def test_out_of_range_values_are_refused_naming_the_field(cls, name, bad, rule):
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\.{name}(\[\d+\])?: must be {rule}"):
        cls(**{name: bad})


@pytest.mark.parametrize("cls, values", [
    (TrainConfig, {"momentum": 0.0, "margin": 0.0, "dampening": 1.0, "weight_decay": 0.0,
                   "num_workers": 0, "image_size": 8, "tuples_per_epoch": 1, "seed": 0}),
    (MiningConfig, {"k_graph": 2, "alpha": 0.5, "cg_tol": 0.0, "seed": 0}),
    (EmbedConfig, {"whiten_dim": None, "scales": (1.0, 0.5), "image_size": 8}),
    (EvalConfig, {"ks": (1,), "nmi_seeds": (0,)}),
    (DataConfig, {"per_class": None, "per_class": 1}),  # noqa: F601
])
def test_boundary_values_are_accepted(cls, values):
    cfg = cls(**values)
    assert all(getattr(cfg, k) == v for k, v in values.items())


@pytest.mark.parametrize("cls, name, bad, expected", [
    (EvalConfig, "ks", (), "must not be empty"),
    (EvalConfig, "nmi_seeds", (), "must not be empty"),
    (EmbedConfig, "scales", (), "must not be empty"),
    (EvalConfig, "ks", 4, "expected a list"),
    (TrainConfig, "lr", "abc", "expected a number, got 'abc'"),
    (TrainConfig, "lr", float("nan"), "expected a finite number"),
    (TrainConfig, "lr", None, "expected a number, got None"),
    (MiningConfig, "k_pos", 2.5, "expected an integer, got 2.5"),
    (MiningConfig, "k_pos", True, "expected an integer, got True"),
    (TrainConfig, "amp", "yes", "expected true or false"),
    (DataConfig, "root", 3, "expected a string"),
    (EmbedConfig, "backbone", None, "expected one of"),
])
def test_values_of_the_wrong_type_are_refused_naming_the_field(cls, name, bad, expected):
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\.{name}(\[\d+\])?: {re.escape(expected)}"):
        cls(**{name: bad})


@pytest.mark.parametrize("value, ok", [
    ("auto", True), ("cpu", True), ("cuda", True), ("cuda:0", True), ("cuda:12", True),
    ("mps", True), ("gpu", False), ("cuda:", False), ("cuda:a", False), ("CPU", False), ("", False),
])
def test_device_syntax(value, ok):
    for cls in (EmbedConfig, TrainConfig):
        if ok:
            assert cls(device=value).device == value
        else:
            with pytest.raises(ValueError, match=rf"{cls.__name__}\.device: expected auto, cpu, "
                                                 r"cuda, cuda:N or mps"):
                cls(device=value)


@pytest.mark.parametrize("value, ok", [
    ("all", True), ("head", True), ("last:0", True), ("last:3", True),
    ("last:", False), ("last:x", False), ("last:-1", False), ("first:2", False), ("some", False),
])
def test_trainable_syntax(value, ok):
    if ok:
        assert TrainConfig(trainable=value).trainable == value
    else:
        with pytest.raises(ValueError, match=r"TrainConfig\.trainable: expected all, head or last:K"):
            TrainConfig(trainable=value)


def test_values_are_normalised_once_at_construction():
    import pathlib

    import numpy as np
    cfg = MiningConfig(k_pos=np.int64(7), alpha=np.float32(0.5))
    assert type(cfg.k_pos) is int and type(cfg.alpha) is float and cfg.k_pos == 7
    assert TrainConfig(lr=1).lr == 1.0 and type(TrainConfig(lr=1).lr) is float
    assert EvalConfig(ks=[1, 5]).ks == (1, 5)
    assert DataConfig(root=pathlib.Path("/data/x")).root == "/data/x"
    assert config_to_dict(RunConfig(data=DataConfig(root=pathlib.Path("/d"))))["data"]["root"] == "/d"


def test_run_config_sections_must_be_their_classes():
    with pytest.raises(ValueError, match=r"RunConfig\.train: expected a TrainConfig, got MiningConfig"):
        RunConfig(train=MiningConfig())


def test_replace_is_checked_too():
    with pytest.raises(ValueError, match=r"TrainConfig\.epochs"):
        dataclasses.replace(TrainConfig(), epochs=0)


def test_train_weights_field():
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    assert names[names.index("lr_gamma") + 1] == "weights"
    assert TrainConfig().weights == "raw" and TrainConfig(weights="mean1").weights == "mean1"
    assert apply_overrides(load_params("smoke"), ["train.weights=mean1"]).train.weights == "mean1"


@pytest.mark.parametrize("override, names", [
    ("train.lr=abc", ("train.lr", "TrainConfig.lr: expected a number, got 'abc'")),
    ("train.lr=-1", ("train.lr", "TrainConfig.lr: must be > 0, got -1.0")),
    ("train.epochs=0", ("train.epochs", "must be >= 1")),
    ("train.epochs=2.5", ("train.epochs", "expected an integer, got 2.5")),
    ("mining.k_pos=-1", ("mining.k_pos", "must be >= 1")),
    ("mining.k_pos=many", ("mining.k_pos", "expected an integer, got 'many'")),
    ("mining.anchors=best", ("mining.anchors", "'all', 'stationary', 'random'")),
    ("eval.ks=[1, x]", ("eval.ks", "EvalConfig.ks[1]: expected an integer, got 'x'")),
    ("eval.ks=[1,", ("eval.ks", "not a YAML value")),
    ("eval.nmi_seeds=[]", ("eval.nmi_seeds", "must not be empty")),
    ("embed.device=gpu", ("embed.device", "cuda:N")),
    ("train.trainable=last:x", ("train.trainable", "last:K")),
    ("data.dataset=mnist", ("data.dataset", "'fashion_mnist'")),
])
def test_overrides_name_the_key_and_the_problem(override, names):
    with pytest.raises(ValueError) as info:
        apply_overrides(load_params("smoke"), [override])
    message = str(info.value)
    assert message.startswith(f"override '{names[0]}': ") and names[1] in message


def test_overrides_keep_text_for_string_fields_and_accept_a_scalar_for_a_list():
    cfg = apply_overrides(load_params("smoke"), ["data.root=2024", "eval.ks=4", "embed.weights=none"])
    assert cfg.data.root == "2024" and cfg.eval.ks == (4,) and cfg.embed.weights is None


def test_bad_values_in_a_params_file_name_the_file_and_the_field(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train:\n  lr: abc\n")
    with pytest.raises(ValueError, match=r"bad\.yaml \[train\]: TrainConfig\.lr: expected a number"):
        load_params(p)
    p.write_text("mining:\n  alpha: 1.5\n")
    with pytest.raises(ValueError, match=r"bad\.yaml \[mining\]: MiningConfig\.alpha: must be"):
        load_params(p)
    p.write_text("train: [lr: 1\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: not valid YAML"):
        load_params(p)


def test_paper_oxford_is_the_retrieval_setting():
    c = load_params("paper_oxford")
    assert (c.data.dataset, c.mining.anchors, c.mining.n_anchors, c.mining.k_neg) == \
        ("roxford5k", "stationary", 1500, 10000)
    assert (c.train.loss, c.train.margin, c.train.n_negatives) == ("contrastive", 0.7, 5)
    assert (c.embed.backbone, c.embed.pooling) == ("vgg16", "mac")


def test_rows_give_each_trained_row_its_own_train_fields():
    from mom.config import RowsConfig, config_from_dict, config_to_dict
    cfg = apply_overrides(load_params("smoke"), ["rows.mom={lr: 0.03, epochs: 2}",
                                                 "rows.euclidean={train.lr: 0.001}"])
    assert cfg.row_train("mom").lr == 0.03 and cfg.row_train("mom").epochs == 2
    assert cfg.row_train("euclidean").lr == 0.001 and cfg.row_train("euclidean").pools == "euclidean"
    assert cfg.row_train("euclidean").epochs == cfg.train.epochs
    assert cfg.row_train("mom", epochs=1).epochs == 1 and cfg.row_train("mom", epochs=1).lr == 0.03
    d = config_to_dict(cfg)
    assert d["rows"] == {"euclidean": {"lr": 0.001}, "mom": {"epochs": 2, "lr": 0.03}}
    assert config_from_dict(d) == cfg
    assert config_to_dict(load_params("smoke"))["rows"] == {"euclidean": {}, "mom": {}}
    assert RowsConfig(mom={"lr": 1}).mom == (("lr", 1.0),)  # the field's own type


@pytest.mark.parametrize("value,match", [
    ("{seed: 3}", "'seed' cannot differ between the rows"),
    ("{image_size: 32}", "'image_size' cannot differ between the rows"),
    ("{lr: -1}", r"TrainConfig.lr: must be > 0"),
    ("{lrr: 1}", "'lrr' is not a train field"),
    ("[1, 2]", "expected a mapping of train fields"),
    ("{micro_batch: 2, freeze_bn: false}", "micro_batch: 2 needs freeze_bn"),
])
def test_bad_rows_name_the_row_and_field(value, match):
    with pytest.raises(ValueError, match=match) as err:
        apply_overrides(load_params("smoke"), [f"rows.mom={value}"])
    assert "mom" in str(err.value)
