"""BVLC GoogLeNet as in Caffe (docs/method.md §9): LRN, no batch norm.

The architecture only; weights come from a user-supplied file (a Caffe model
converted to a PyTorch state dict), loaded by ``mom.backbones`` by name or,
for other naming schemes, one-to-one in layer order with every shape checked.
Module order follows the Caffe prototxt (conv1, conv2 reduce, conv2, then per
inception: 1x1, 3x3_reduce, 3x3, 5x5_reduce, 5x5, pool_proj; classifier last).
Inputs: BGR in 0..255 minus the mean pixel, 227 x 227 crops.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["GoogLeNetCaffe", "INCEPTIONS"]

# name: (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj)
INCEPTIONS = {
    "3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


def _conv(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2), nn.ReLU(inplace=True))


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)  # Caffe rounds pooled sizes up


def _lrn() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)  # Caffe: alpha / size, as torch


class Inception(nn.Module):
    def __init__(self, c_in, c1, c3r, c3, c5r, c5, cp):
        super().__init__()
        self.b1 = _conv(c_in, c1, 1)
        self.b3 = nn.Sequential(_conv(c_in, c3r, 1), _conv(c3r, c3, 3))
        self.b5 = nn.Sequential(_conv(c_in, c5r, 1), _conv(c5r, c5, 5))
        self.bp = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), _conv(c_in, cp, 1))
        self.out_channels = c1 + c3 + c5 + cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H, W)
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1)


class GoogLeNetCaffe(nn.Module):
    """``stages`` (ordered, for partial fine-tuning) -> (B, 1024, 7, 7) at 227 px;
    ``classifier``: 7x7 average pool, dropout 0.4, Linear(1024, 1000)."""

    def __init__(self):
        super().__init__()
        stem = nn.Sequential(_conv(3, 64, 7, stride=2), _pool(), _lrn(),
                             _conv(64, 64, 1), _conv(64, 192, 3), _lrn(), _pool())
        inc = {k: Inception(*v) for k, v in INCEPTIONS.items()}
        self.stages = nn.ModuleList([
            stem, inc["3a"], nn.Sequential(inc["3b"], _pool()), inc["4a"], inc["4b"], inc["4c"],
            inc["4d"], nn.Sequential(inc["4e"], _pool()), inc["5a"], inc["5b"]])
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Dropout(0.4),
                                        nn.Linear(1024, 1000))
        for m in self.modules():  # Caffe's xavier fillers, constant 0.2 biases
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.constant_(m.bias, 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for s in self.stages:
            x = s(x)
        return self.classifier(x)
