"""Losses on embedding tuples: weighted triplet and contrastive (docs/method.md §8).

Pure tensor functions first, thin ``nn.Module`` wrappers after. Distances are
Euclidean between the rows given (L2-normalised embeddings in training); the
triplet loss uses *squared* distances, the contrastive loss squares the
positive distance and the hinge on the negative distance.

Only tensor shapes are checked here; values are not (checking them would
force a device synchronisation on every step).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["triplet_loss", "contrastive_loss", "TripletLoss", "ContrastiveLoss"]

_REDUCTIONS = ("mean", "sum", "none")


def _check_pair(name: str, z: torch.Tensor, za: torch.Tensor) -> None:
    if z.shape != za.shape:
        raise ValueError(f"{name}: expected shape {tuple(za.shape)} like za, got {tuple(z.shape)}")


def _check_common(za: torch.Tensor, margin: float, reduction: str) -> None:
    if za.ndim != 2:
        raise ValueError(f"za: expected a 2-D (B, D) tensor, got shape {tuple(za.shape)}")
    _check_settings(margin, reduction)


def _check_settings(margin: float, reduction: str) -> None:
    if margin < 0:
        raise ValueError(f"margin: expected >= 0, got {margin}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")


def _weights(weights, za: torch.Tensor) -> torch.Tensor | None:
    if weights is None:
        return None
    w = torch.as_tensor(weights, dtype=za.dtype, device=za.device)
    if w.shape != za.shape[:1]:
        raise ValueError(f"weights: expected shape ({za.shape[0]},), got {tuple(w.shape)}")
    return w


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def triplet_loss(za: torch.Tensor, zp: torch.Tensor, zn: torch.Tensor, weights=None,
                 margin: float = 0.5, reduction: str = "mean") -> torch.Tensor:
    """w · max(0, m + ||za − zp||² − ||za − zn||²) per triplet, then reduced.

    ``za, zp, zn`` (B, D); ``weights`` (B,) positive weights w+ (None = 1).
    ``reduction="mean"`` divides by B (not by the sum of weights), as in
    docs/method.md §8; ``"sum"``; ``"none"`` returns the (B,) per-triplet losses.
    """
    _check_common(za, margin, reduction)
    _check_pair("zp", zp, za)
    _check_pair("zn", zn, za)
    d_pos = (za - zp).pow(2).sum(dim=1)  # (B,)
    d_neg = (za - zn).pow(2).sum(dim=1)  # (B,)
    loss = torch.clamp(margin + d_pos - d_neg, min=0.0)  # (B,)
    w = _weights(weights, za)
    if w is not None:
        loss = w * loss
    return _reduce(loss, reduction)


def contrastive_loss(za: torch.Tensor, zp: torch.Tensor, zn: torch.Tensor,
                     margin: float = 0.7, *, weights=None, reduction: str = "mean") -> torch.Tensor:
    """Contrastive loss on (anchor, positive, negatives) tuples (docs/method.md §8).

    Pair losses: ||za − zp||² for the positive, max(0, m − ||za − zn_j||)² for
    each negative. ``za, zp`` (B, D); ``zn`` (B, D) or (B, n_neg, D).
    ``weights`` (B,), keyword-only, optionally scales every pair of a tuple
    (None = 1; the paper's retrieval setting uses none). ``reduction="mean"`` averages over
    all B·(1 + n_neg) pairs of the batch; ``"sum"`` sums them; ``"none"``
    returns the (B, 1 + n_neg) pair losses, positive first.
    """
    _check_common(za, margin, reduction)
    _check_pair("zp", zp, za)
    if zn.ndim == 2:
        zn = zn.unsqueeze(1)  # (B, 1, D)
    if zn.ndim != 3 or zn.shape[0] != za.shape[0] or zn.shape[2] != za.shape[1]:
        raise ValueError(f"zn: expected shape ({za.shape[0]}, {za.shape[1]}) or "
                         f"({za.shape[0]}, n_neg, {za.shape[1]}), got {tuple(zn.shape)}")
    if zn.shape[1] == 0:
        raise ValueError("zn: no negatives (n_neg = 0)")
    pos = (za - zp).pow(2).sum(dim=1, keepdim=True)  # (B, 1)
    # vector_norm's gradient at a zero difference is 0, not NaN (duplicate images)
    d_neg = torch.linalg.vector_norm(za.unsqueeze(1) - zn, dim=2)  # (B, n_neg)
    neg = torch.clamp(margin - d_neg, min=0.0).pow(2)  # (B, n_neg)
    loss = torch.cat([pos, neg], dim=1)  # (B, 1 + n_neg)
    w = _weights(weights, za)
    if w is not None:
        loss = w[:, None] * loss
    return _reduce(loss, reduction)


class TripletLoss(nn.Module):
    """Module form of :func:`triplet_loss`; ``forward(za, zp, zn, weights=None)``."""

    def __init__(self, margin: float = 0.5, reduction: str = "mean"):
        super().__init__()
        _check_settings(margin, reduction)
        self.margin, self.reduction = float(margin), reduction

    def forward(self, za, zp, zn, weights=None):
        return triplet_loss(za, zp, zn, weights, margin=self.margin, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, reduction={self.reduction!r}"


class ContrastiveLoss(nn.Module):
    """Module form of :func:`contrastive_loss`; ``forward(za, zp, zn, weights=None)``."""

    def __init__(self, margin: float = 0.7, reduction: str = "mean"):
        super().__init__()
        _check_settings(margin, reduction)
        self.margin, self.reduction = float(margin), reduction

    def forward(self, za, zp, zn, weights=None):
        return contrastive_loss(za, zp, zn, self.margin, weights=weights,
                                reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, reduction={self.reduction!r}"
