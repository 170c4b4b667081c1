"""The network (docs/method.md §2, §9): ``EmbeddingNet``, backbone -> pooling (-> multi-scale
sum) -> L2 -> head -> L2, both the descriptor of extraction (no head) and the trained model.

``head_init="pca"`` makes the head the top principal directions of the
training descriptors (label-free), so the untrained model already embeds
sensibly and is the "initial" row; ``trainable`` picks the layers that learn;
BatchNorm statistics are frozen during training (docs/method.md §9, §15).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import EmbedConfig, TrainConfig
from .pooling import Pooling, l2n
from .whitening import pca

__all__ = ["EmbeddingNet", "NormLinear", "pca_head", "build_model", "network_embed_config",
           "set_trainable", "freeze_batchnorm"]


class EmbeddingNet(nn.Module):
    """backbone -> pooling -> optional head -> L2: (B, 3, H, W) -> (B, D).

    ``scales`` (e.g. (1, 1/sqrt(2), 0.5)): the input is resized by each factor,
    each scale's descriptor L2-normalised, summed, then L2-normalised (docs/method.md §2)."""

    def __init__(self, backbone: nn.Module, pooling: nn.Module, head: nn.Module | None = None,
                 scales: tuple[float, ...] = (1.0,)):
        super().__init__()
        if not scales or min(scales) <= 0:
            raise ValueError(f"scales must be positive, got {scales}")
        self.backbone, self.pooling, self.head = backbone, pooling, head
        self.scales = tuple(float(s) for s in scales)

    def descriptor(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone output before the head, (B, C), not normalised (one scale)."""
        return self.pooling(self.backbone.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scales == (1.0,):
            d = self.descriptor(x)  # (B, C)
        else:
            d = 0
            for s in self.scales:
                xs = x if s == 1.0 else F.interpolate(
                    x, size=(max(1, round(x.shape[2] * s)), max(1, round(x.shape[3] * s))),
                    mode="bilinear", align_corners=False, antialias=s < 1)
                d = d + l2n(self.descriptor(xs).float())
        if self.head is not None:
            d = self.head(d)
        return l2n(d.float())  # (B, D)


class NormLinear(nn.Linear):
    """Linear map of the L2-normalised input: ``W x/||x|| + b``. The head sees the
    descriptor exactly as mining did (pooled, L2-normalised; docs/method.md §2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C) -> (B, D)
        return super().forward(nn.functional.normalize(x.float(), dim=1))


def pca_head(features: np.ndarray, dim: int) -> NormLinear:
    """Head projecting onto the top-``dim`` principal directions of the L2-normalised
    rows of ``features`` (N, C), centred: ``weight = P``, ``bias = -P @ mean``. Label-free."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError(f"pca_head: features must be a finite (N, C) array, got shape {x.shape}")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)  # (N, C) unit rows
    n, c = x.shape
    if dim > min(n, c):
        raise ValueError(f"pca_head: embedding_dim={dim} exceeds min(N={n}, C={c}) principal directions")
    mean, p, _ = pca(x, dim)  # (C,), (dim, C) directions by variance, deterministic signs
    head = NormLinear(c, dim)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(p))
        head.bias.copy_(torch.from_numpy(-p @ mean))
    return head


def network_embed_config(embed_cfg: EmbedConfig, train_cfg: TrainConfig) -> EmbedConfig:
    """The EmbedConfig of the trained network's pooled descriptor (before the head).

    Same as the mining descriptor unless ``train_cfg.pooling`` names another
    pooling: then single-scale at ``train_cfg.image_size`` (docs/method.md §9). No whitening.
    """
    import dataclasses
    if train_cfg.pooling is None:
        return dataclasses.replace(embed_cfg, whitening=False)
    return dataclasses.replace(embed_cfg, pooling=train_cfg.pooling, scales=(1.0,),
                               image_size=train_cfg.image_size, whitening=False)


def build_model(embed_cfg: EmbedConfig, train_cfg: TrainConfig, init_features: np.ndarray | None = None,
                backbone: nn.Module | None = None) -> nn.Module:
    """Backbone + pooling (+ multi-scale sum) + L2 + Linear(C, embedding_dim) + L2 (an EmbeddingNet).

    Args:
        embed_cfg: backbone name/weights and pooling.
        train_cfg: ``embedding_dim``, ``head_init`` ("pca" | "random"), ``trainable``.
        init_features: (N, C) descriptors of the training images by the network's own
            pooling (``mom.embed`` with ``network_embed_config``), C = backbone.out_channels --
            required for ``head_init="pca"``; the untrained model then embeds by their PCA.
        backbone: any module with the Backbone interface, instead of building
            ``embed_cfg.backbone`` (tests use a tiny one).
    Returns the model in eval mode, ``requires_grad`` set by ``train_cfg.trainable``.
    """
    if backbone is None:
        from .backbones import build_backbone
        backbone = build_backbone(embed_cfg.backbone, embed_cfg.weights)
    c, dim = int(backbone.out_channels), int(train_cfg.embedding_dim)
    if train_cfg.head_init == "pca":
        if init_features is None:
            raise ValueError("build_model: head_init='pca' needs init_features, the (N, C) "
                             "descriptors of the training images")
        if np.shape(init_features)[1] != c:
            raise ValueError(f"build_model: init_features have {np.shape(init_features)[1]} dims, the "
                             f"backbone gives {c} channels: pass the unwhitened descriptors, e.g. "
                             "mom.embed(ds, dataclasses.replace(embed_cfg, whitening=False))")
        head = pca_head(init_features, dim)
    elif train_cfg.head_init == "random":
        head = NormLinear(c, dim)
    else:
        raise ValueError(f"train.head_init must be 'pca' or 'random', got {train_cfg.head_init!r}")
    net = network_embed_config(embed_cfg, train_cfg)
    pooling = Pooling.from_config(net)
    model = EmbeddingNet(backbone, pooling, head, scales=net.scales)
    set_trainable(model, train_cfg.trainable)
    return model.eval()


def set_trainable(model: nn.Module, trainable: str) -> list[nn.Parameter]:
    """Set ``requires_grad``: "all"; "head"; "last:K" (the last K ``backbone.blocks``
    + head). Pooling parameters keep their own setting (GeM's ``learn_p``).
    Returns the trainable parameters."""
    pooling = getattr(model, "pooling", None)
    own = {id(p) for p in pooling.parameters()} if isinstance(pooling, nn.Module) else set()
    if trainable == "all":
        parts = [model]
    elif trainable == "head" or trainable.startswith("last:"):
        parts = [model.head]
        if trainable != "head":
            try:
                k = int(trainable.split(":", 1)[1])
            except ValueError:
                k = -1
            blocks = list(model.backbone.blocks)
            if not 0 <= k <= len(blocks):
                raise ValueError(f"train.trainable={trainable!r}: K must be 0..{len(blocks)}")
            parts += blocks[len(blocks) - k:]
    else:
        raise ValueError(f"train.trainable must be 'all', 'head' or 'last:K', got {trainable!r}")
    chosen = {id(p) for part in parts for p in part.parameters()}
    for p in model.parameters():
        if id(p) not in own:
            p.requires_grad_(id(p) in chosen)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"train.trainable={trainable!r} leaves no parameter to train")
    return params


def freeze_batchnorm(model: nn.Module) -> int:
    """Put every BatchNorm module in eval mode (running statistics frozen). Returns the count."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.eval()
    return len(bns)
