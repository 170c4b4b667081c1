"""The training model: PCA head against an eigendecomposition, trainable layers."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mom.model import build_model, pca_head, set_trainable
from train_fixtures import TinyBackbone, tiny_configs, tiny_model


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def descriptors(backbone, pooling, x):
    with torch.no_grad():
        return pooling(backbone.eval().features(x)).numpy()  # (N, C)


def test_pca_head_is_centred_projection_on_top_directions():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 6)) * np.array([5, 4, 3, 0.5, 0.2, 0.1]) + 2.0
    head = pca_head(x, 3)
    W, b = head.weight.detach().double().numpy(), head.bias.detach().double().numpy()
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)  # the head sees L2-normalised rows
    mean = xn.mean(0)
    evals, evecs = np.linalg.eigh(np.cov(xn.T))
    top = evecs[:, ::-1][:, :3]  # (C, 3) reference: eigenvectors of the covariance
    np.testing.assert_allclose(W @ W.T, np.eye(3), atol=1e-6)  # orthonormal rows
    np.testing.assert_allclose(W.T @ W, top @ top.T, atol=1e-5)  # the same subspace
    np.testing.assert_allclose(b, -W @ mean, atol=1e-5)
    y = head(torch.from_numpy(x).float()).detach().numpy()
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-4)  # centred
    assert np.all(np.diff(y.var(0)) < 0)  # by variance, descending
    with pytest.raises(ValueError, match="exceeds"):
        pca_head(x[:2], 3)
    with pytest.raises(ValueError, match="finite"):
        pca_head(np.full((5, 6), np.nan), 2)


def test_build_model_pca_init_gives_the_untrained_embedding():
    from mom.pooling import Pooling

    embed_cfg, cfg = tiny_configs(head_init="pca")
    bb = TinyBackbone()
    torch.manual_seed(0)
    x = torch.randn(30, 3, 16, 16)
    feats = descriptors(bb, Pooling("gap"), x)  # (30, 8)
    model = build_model(embed_cfg, cfg, init_features=feats, backbone=bb)
    assert not model.training
    with torch.no_grad():
        z = model(x).numpy()
    xn = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    evecs = np.linalg.eigh(np.cov(xn.T.astype(np.float64)))[1][:, ::-1][:, :4]  # (C, 4)
    ref = (xn - xn.mean(0)) @ evecs
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(z @ z.T, ref @ ref.T, atol=1e-4)  # equal up to component signs
    with pytest.raises(ValueError, match="needs init_features"):
        build_model(embed_cfg, cfg, backbone=TinyBackbone())
    with pytest.raises(ValueError, match="unwhitened"):
        build_model(embed_cfg, cfg, init_features=feats[:, :5], backbone=TinyBackbone())
    with pytest.raises(ValueError, match="head_init"):
        build_model(embed_cfg, dataclasses.replace(cfg, head_init="xavier"), backbone=TinyBackbone())


def test_set_trainable_modes():
    embed_cfg, cfg = tiny_configs()
    model = tiny_model(embed_cfg, cfg)
    names = lambda: {n.split(".")[0] + ("." + n.split(".")[2] if n.startswith("backbone") else "")
                     for n, p in model.named_parameters() if p.requires_grad}
    set_trainable(model, "head")
    assert names() == {"head"}
    set_trainable(model, "last:1")
    assert names() == {"head", "backbone.1"}
    set_trainable(model, "all")
    assert names() == {"head", "backbone.0", "backbone.1"}
    for bad in ("last:7", "last:x", "some"):
        with pytest.raises(ValueError, match="trainable"):
            set_trainable(model, bad)


def test_train_pooling_overrides_the_mining_descriptor():
    # docs/method.md §9: mining by multi-scale R-MAC, the trained network pools by average
    from mom.config import EmbedConfig, TrainConfig
    from mom.model import network_embed_config
    emb = EmbedConfig(pooling="rmac", scales=(1.0, 0.5), image_size=512, whitening=True)
    same = network_embed_config(emb, TrainConfig())
    assert (same.pooling, same.scales, same.image_size, same.whitening) == ("rmac", (1.0, 0.5), 512, False)
    net = network_embed_config(emb, TrainConfig(pooling="gap", image_size=227))
    assert (net.pooling, net.scales, net.image_size, net.whitening) == ("gap", (1.0,), 227, False)


def test_build_model_uses_the_training_pooling():
    embed_cfg, cfg = tiny_configs(pooling="mac")
    embed_cfg = dataclasses.replace(embed_cfg, pooling="gem", scales=(1.0, 0.5))
    model = build_model(embed_cfg, cfg, backbone=TinyBackbone())
    assert model.pooling.name == "mac" and tuple(model.scales) == (1.0,)
    same = build_model(embed_cfg, dataclasses.replace(cfg, pooling=None), backbone=TinyBackbone())
    assert same.pooling.name == "gem" and tuple(same.scales) == (1.0, 0.5)
