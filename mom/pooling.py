"""Global pooling of a feature map (B, C, H, W) into a descriptor (B, C).

Pure tensor functions ``gap``, ``mac``, ``gem``, ``rmac`` (and the R-MAC
region layout ``rmac_regions``) with a thin :class:`Pooling` module. None of
them L2-normalises its output except ``rmac``, whose definition includes it
(docs/method.md §2: MAC per region, L2 each, sum, L2).
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["l2n", "gap", "mac", "gem", "rmac", "rmac_regions", "Pooling", "POOLINGS"]

POOLINGS = ("gap", "mac", "gem", "rmac")


def l2n(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rows of (B, D) scaled to unit L2 norm (an all-zero row stays zero)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def gap(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling: (B, C, H, W) -> (B, C)."""
    return x.mean(dim=(2, 3))


def mac(x: torch.Tensor) -> torch.Tensor:
    """Maximum activation of convolutions: (B, C, H, W) -> (B, C)."""
    return x.amax(dim=(2, 3))


def gem(x: torch.Tensor, p: float | torch.Tensor = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """Generalised mean (Radenović et al.): (mean x^p)^(1/p) over H, W.

    p = 1 is GAP; p -> inf tends to MAC. Activations are clamped at ``eps`` so
    the power is defined (backbone outputs are post-ReLU, hence >= 0)."""
    return x.clamp_min(eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


def _extra_regions(short: int, long: int, overlap: float) -> int:
    """How many more regions the longer side gets than the shorter one, chosen
    (from 1..6) so that square regions of side ``short`` overlap closest to
    ``overlap``; 0 for a square map."""
    if long <= short:
        return 0
    best, best_err = 1, math.inf
    for m in range(1, 7):
        step = (long - short) / m  # m + 1 regions placed evenly along the long side
        err = abs((short - step) / short - overlap)
        if err < best_err:
            best, best_err = m, err
    return best


def _starts(size: int, side: int, count: int) -> list[int]:
    if count == 1:
        return [0]
    return [math.floor(i * (size - side) / (count - 1)) for i in range(count)]


def rmac_regions(h: int, w: int, levels: int = 3, overlap: float = 0.4) -> list[tuple[int, int, int, int]]:
    """Square R-MAC regions (Tolias et al., ICLR 2016) as ``(y, x, side, side)``.

    Level l = 1..L has regions of side floor(2 min(h, w) / (l + 1)), l of them
    along the shorter side and l + m along the longer one (m from the aspect
    ratio, ~``overlap`` between neighbours), evenly spaced from edge to edge.
    The whole map is not included (``rmac`` adds it)."""
    if h < 1 or w < 1:
        raise ValueError(f"rmac_regions: empty feature map {h}x{w}")
    short = min(h, w)
    extra = _extra_regions(short, max(h, w), overlap)
    regions = []
    for level in range(1, levels + 1):
        side = max(1, math.floor(2 * short / (level + 1)))
        n_h = level + (extra if h > w else 0)
        n_w = level + (extra if w > h else 0)
        for y in _starts(h, side, n_h):
            for x0 in _starts(w, side, n_w):
                regions.append((y, x0, side, side))
    return regions


def rmac(x: torch.Tensor, levels: int = 3, overlap: float = 0.4) -> torch.Tensor:
    """Regional MAC: (B, C, H, W) -> (B, C), L2-normalised.

    MAC over the whole map and over every ``rmac_regions`` region, each
    L2-normalised, summed, and L2-normalised again."""
    total = l2n(mac(x))
    for y, x0, hh, ww in rmac_regions(x.shape[2], x.shape[3], levels, overlap):
        total = total + l2n(x[:, :, y:y + hh, x0:x0 + ww].amax(dim=(2, 3)))
    return l2n(total)


class Pooling(nn.Module):
    """``Pooling("gem", p=3.0)`` etc. as a module; ``learn_p=True`` makes GeM's
    p a trainable parameter. ``params()`` returns what keys the embedding cache."""

    def __init__(self, name: str = "gap", *, p: float = 3.0, learn_p: bool = False,
                 levels: int = 3, overlap: float = 0.4):
        super().__init__()
        if name not in POOLINGS:
            raise ValueError(f"unknown pooling {name!r}; choose one of {POOLINGS}")
        if name == "gem" and p <= 0:
            raise ValueError(f"GeM power p must be > 0, got {p}")
        self.name = name
        self.levels, self.overlap = int(levels), float(overlap)
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=learn_p) if name == "gem" else None

    @classmethod
    def from_config(cls, cfg) -> "Pooling":
        """The pooling an ``EmbedConfig`` names (its ``pooling``, ``gem_p``, ``rmac_levels``)."""
        return cls(cfg.pooling, p=cfg.gem_p, levels=cfg.rmac_levels)

    def params(self) -> dict:
        if self.name == "gem":
            return {"name": "gem", "p": round(float(self.p.detach()), 6)}
        if self.name == "rmac":
            return {"name": "rmac", "levels": self.levels, "overlap": self.overlap}
        return {"name": self.name}

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C)
        if self.name == "gap":
            return gap(x)
        if self.name == "mac":
            return mac(x)
        if self.name == "gem":
            return gem(x.float(), self.p)  # the power overflows in half precision
        return rmac(x, self.levels, self.overlap)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params().items())

