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
