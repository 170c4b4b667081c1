"""A tiny backbone, image set and pools for the training tests (seconds on one CPU thread).

Import from test modules (``from train_fixtures import tiny_setup``).
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from mom.config import EmbedConfig, TrainConfig
from mom.mining import Pools

SIZE = 16  # image side in pixels


class TinyBackbone(nn.Module):
    """The Backbone interface (features, out_channels, meta, blocks) in two small stages."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.stages = nn.ModuleList([
            nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU()),
            nn.Sequential(nn.Conv2d(6, channels, 3, stride=2, padding=1), nn.BatchNorm2d(channels), nn.ReLU()),
        ])
        self.out_channels = channels
        self.meta = {"name": "tiny", "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
                     "input_range": (-1.0, 1.0), "channel_order": "RGB", "out_channels": channels}

    @property
    def blocks(self):
        return list(self.stages)

    def features(self, x):
        for s in self.stages:
            x = s(x)
        return x

    def forward(self, x):
        return self.features(x)


class TinyImages:
    """``n`` random RGB images in 3 colour-tinted classes; the dataset protocol."""

    name = "tiny"

    def __init__(self, n: int = 24, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.labels = np.arange(n, dtype=np.int64) % 3
        tint = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]])
        noise = rng.integers(0, 90, size=(n, SIZE, SIZE, 3))
        self.pixels = np.clip(tint[self.labels][:, None, None, :] + noise - 45, 0, 255).astype(np.uint8)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return Image.fromarray(self.pixels[i]), int(self.labels[i])


def _csr(lists, dtype):
    offsets = np.zeros(len(lists) + 1, np.int64)
    offsets[1:] = np.cumsum([len(x) for x in lists])
    return offsets, np.concatenate(lists).astype(dtype)


def tiny_pools(n: int = 24, seed: int = 0) -> Pools:
    """Every image an anchor; P+ 3 random others (weights in (0.5, 1]), P- 6 others;
    the Euclidean baseline has other random pools (weights 1)."""
    rng = np.random.default_rng(seed)

    def pools(method, weighted):
        pos, wts, neg = [], [], []
        for a in range(n):
            others = rng.permutation(np.setdiff1d(np.arange(n), [a]))
            pos.append(others[:3])
            neg.append(others[3:9])
            wts.append(rng.uniform(0.5, 1.0, 3) if weighted else np.ones(3))
        po, pi = _csr(pos, np.int64)
        _, pw = _csr(wts, np.float32)
        no, ni = _csr(neg, np.int64)
        return Pools(np.arange(n, dtype=np.int64), po, pi, pw, no, ni, method=method)

    mom = pools("mom", True)
    mom.baseline = pools("euclidean", False)
    return mom


def tiny_configs(**train) -> tuple[EmbedConfig, TrainConfig]:
    base = dict(embedding_dim=4, head_init="random", trainable="all", epochs=2, batch_size=6,
                tuples_per_epoch=12, image_size=SIZE, augment=True, device="cpu", lr=0.05,
                lr_step_epoch=1, seed=3)
    base.update(train)
    return EmbedConfig(image_size=SIZE, batch_size=8, device="cpu"), TrainConfig(**base)


def tiny_model(embed_cfg, train_cfg, seed: int = 0, init_features=None):
    from mom.train import build_model
    torch.manual_seed(seed)
    return build_model(embed_cfg, train_cfg, init_features=init_features, backbone=TinyBackbone())


def state_of(model) -> dict:
    return {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}
