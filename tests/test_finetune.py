"""mom.fit: the same training as mom.train.train, from a built model or from a RunConfig."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import mom
import mom.backbones
import mom.extract
from mom.config import RunConfig
from mom.datasets import ArrayDataset
from mom.model import build_model, pca_head
from mom.train import train
from train_fixtures import TinyBackbone, TinyImages, state_of, tiny_configs, tiny_model, tiny_pools


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def _images():
    tiny = TinyImages()
    return ArrayDataset(tiny.pixels, tiny.labels, name="tiny")  # with a fingerprint, for embed


def test_fit_a_built_model_is_train():
    embed_cfg, cfg = tiny_configs(epochs=1)
    ds, pools = _images(), tiny_pools()
    want = train(tiny_model(embed_cfg, cfg), ds, pools, cfg, embed_cfg, progress=False)
    got = mom.fit(tiny_model(embed_cfg, cfg), ds, pools, cfg, embed_cfg=embed_cfg, progress=False)
    for k, v in state_of(want.model).items():
        torch.testing.assert_close(state_of(got.model)[k], v, rtol=0, atol=0)
    assert [r["loss"] for r in got.history] == [r["loss"] for r in want.history]
    with pytest.raises(ValueError, match="embed_cfg"):
        mom.fit(tiny_model(embed_cfg, cfg), ds, pools, cfg)


def test_fit_from_a_run_config_builds_the_pca_initialised_model(monkeypatch):
    embed_cfg, cfg = tiny_configs(epochs=1, head_init="pca")
    embed_cfg = dataclasses.replace(embed_cfg, weights="none")
    run_cfg = RunConfig(embed=embed_cfg, train=cfg)
    ds, pools = _images(), tiny_pools()

    def tiny_backbone(*a, **k):
        torch.manual_seed(0)  # the same weights for extraction and for the model
        return TinyBackbone()
    monkeypatch.setattr(mom.backbones, "build_backbone", tiny_backbone)
    monkeypatch.setattr(mom.extract, "build_backbone", tiny_backbone)
    raw = mom.embed(ds, embed_cfg, progress=False)  # (N, C) the head's PCA input
    initial = build_model(embed_cfg, cfg, init_features=raw, backbone=tiny_backbone())
    torch.testing.assert_close(initial.head.weight, pca_head(raw, cfg.embedding_dim).weight)
    want = train(initial, ds, pools, cfg, embed_cfg, progress=False)
    got = mom.fit(run_cfg, ds, pools, progress=False)
    for k, v in state_of(want.model).items():
        torch.testing.assert_close(state_of(got.model)[k], v, rtol=0, atol=0)
