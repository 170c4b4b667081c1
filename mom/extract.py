"""Descriptor extraction: the embedding network, batched extraction on any
device, and ``embed`` with an on-disk cache keyed by everything that changes
the result (docs/design.md §5).

``embed(dataset)`` returns (N, D) float32 L2-normalised rows in dataset order.
With ``skip_corrupt=True`` it returns an :class:`EmbedResult` instead: the rows
of the readable images, their indices and the unreadable files (never NaN rows).
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .backbones import backbone_meta, build_backbone, make_transform, eval_resize
from .config import EmbedConfig
from .pooling import Pooling, l2n
from .whitening import apply_whitening, learn_whitening

__all__ = ["EmbeddingNet", "EmbedResult", "resolve_device", "extract", "embed", "embed_cache_key",
           "make_transform", "CACHE_FORMAT"]

CACHE_FORMAT = "mom-embed-1"  # bump when the cached bytes' meaning changes


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else MPS, else CPU; anything else as given."""
    if isinstance(device, torch.device):
        return device
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


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


class _Items(torch.utils.data.Dataset):
    """dataset[i] -> (transformed tensor, i, error message or "") for the loader."""

    def __init__(self, dataset, transform, skip_corrupt: bool, image_size: int | None):
        self.dataset, self.transform, self.skip = dataset, transform, skip_corrupt
        self.size = image_size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        try:
            img, _ = self.dataset[i]
            return self.transform(img), i, ""
        except (ValueError, OSError) as err:
            paths = getattr(self.dataset, "paths", None)
            where = f"{paths[i]} (item {i})" if paths is not None else f"item {i}"
            msg = f"{where}: {err}" if paths is None or str(paths[i]) not in str(err) else str(err)
            if not self.skip or self.size is None:
                raise ValueError(msg) from err
            return torch.zeros(3, self.size, self.size), i, msg


@torch.inference_mode()
def _extract(model, dataset, transform, device, batch_size, num_workers, progress,
             skip_corrupt=False, image_size=None, desc="embed") -> tuple[np.ndarray, np.ndarray, list]:
    """(features of the readable items (K, D), their indices (K,), [(index, error)] of the rest)."""
    device = resolve_device(device)
    n = len(dataset)
    if n == 0:
        raise ValueError("extract: the dataset is empty")
    cuda = device.type == "cuda"
    loader = torch.utils.data.DataLoader(
        _Items(dataset, transform, skip_corrupt, image_size), batch_size=batch_size, shuffle=False,
        num_workers=num_workers, pin_memory=cuda, persistent_workers=False)
    was_training = model.training
    model.to(device).eval()
    if cuda:
        model.to(memory_format=torch.channels_last)
    out, ok, errors = None, np.zeros(n, dtype=bool), []
    try:
        with tqdm(total=n, disable=not progress, unit="img", desc=desc) as bar:
            for x, idx, err in loader:
                x = x.to(device, non_blocking=True)
                if cuda:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.float16, enabled=cuda):
                    z = model(x)
                z = l2n(z.float()).cpu().numpy()  # (B, D)
                if out is None:
                    out = np.empty((n, z.shape[1]), dtype=np.float32)  # (N, D)
                good = np.array([e == "" for e in err], dtype=bool)
                idx = idx.numpy()
                out[idx[good]] = z[good]
                ok[idx[good]] = True
                errors += [(int(i), e) for i, e in zip(idx, err) if e]
                bar.update(len(idx))
    finally:
        model.train(was_training)
    kept = np.flatnonzero(ok)
    feats = out[kept] if len(kept) < n else out
    if not np.isfinite(feats).all():
        raise ValueError("extract: the model produced NaN/inf descriptors "
                         f"(device {device}; try fp32 or check the weights)")
    return feats, kept, errors


def extract(model: nn.Module, dataset, transform, *, device="auto", batch_size: int = 128,
            num_workers: int = 0, progress: bool = True, desc: str = "embed") -> np.ndarray:
    """Run ``model`` (e.g. an EmbeddingNet) over ``dataset`` in order.

    Returns (N, D) float32 with L2-normalised rows. Eval mode and no autograd
    during the pass (the model's train/eval mode is restored afterwards); on
    CUDA: fp16 autocast, channels_last, pinned memory. A corrupt image raises
    ValueError naming it. ``desc`` labels the progress bar (e.g. "embed test").
    """
    return _extract(model, dataset, transform, device, batch_size, num_workers, progress,
                    desc=desc)[0]


@dataclass(frozen=True)
class EmbedResult:
    """``embed(..., skip_corrupt=True)``: ``features`` (K, D) for the readable
    items whose dataset indices are ``kept`` (K,); ``skipped`` lists
    ``(index, error naming the file)`` for the others."""

    features: np.ndarray
    kept: np.ndarray
    skipped: list[tuple[int, str]]


def embed_cache_key(dataset, cfg: EmbedConfig, precision: str,
                    skip_corrupt: bool = False) -> tuple[str, dict]:
    """(sha256 hex, the inputs it hashes) for the raw (unwhitened) descriptors."""
    meta = backbone_meta(cfg.backbone, cfg.weights)
    inputs = {
        "format": CACHE_FORMAT,
        "dataset": {"name": getattr(dataset, "name", type(dataset).__name__),
                    "fingerprint": dataset.fingerprint(), "n": len(dataset)},
        "backbone": {"name": cfg.backbone, "weights_sha256": meta["weights_sha256"]},
        "transform": {"image_size": cfg.image_size, "resize": eval_resize(meta, cfg.image_size),
                      "mean": list(meta["mean"]), "std": list(meta["std"]),
                      "channel_order": meta["channel_order"], "scales": list(cfg.scales)},
        "pooling": Pooling.from_config(cfg).params(),
        "precision": precision,
        "skip_corrupt": bool(skip_corrupt),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest(), inputs


def _cached(cache_dir, key: str, inputs: dict, compute):
    """Load ``embed-<key>.npy`` (memory-mapped) if it and its sidecar exist,
    else ``compute() -> (array, extra sidecar dict)`` and store both atomically."""
    if cache_dir is None:
        return compute()
    from .io import load_json, save_json, save_npy
    cache_dir = Path(cache_dir)
    npy, side = cache_dir / f"embed-{key[:32]}.npy", cache_dir / f"embed-{key[:32]}.json"
    if npy.is_file() and side.is_file():
        try:
            info = load_json(side)
            arr = np.load(npy, mmap_mode="r")
            if info.get("key") == key and list(arr.shape) == info.get("shape"):
                return arr, info.get("extra", {})
        except (ValueError, OSError):
            pass  # an unreadable entry (e.g. edited by hand) is recomputed and replaced
    arr, extra = compute()
    cache_dir.mkdir(parents=True, exist_ok=True)
    save_npy(npy, np.ascontiguousarray(arr, dtype=np.float32))
    save_json(side, {"key": key, "inputs": inputs, "shape": list(arr.shape), "extra": extra})
    return arr, extra


def embed(dataset, backbone: str = "efficientnet_lite0", pooling: str = "gap", image_size: int = 64,
          device="auto", batch_size: int = 128, cache_dir=None, cfg: EmbedConfig | None = None,
          whitening=None, progress: bool = True, skip_corrupt: bool = False, desc: str = "embed"):
    """Descriptors (N, D) float32, L2-normalised rows, of ``dataset`` (docs/method.md §2).

    Args:
        cfg: an EmbedConfig; its fields replace the keyword defaults (a keyword
            given with a non-default value still wins).
        cache_dir: folder for ``embed-<hash>.npy`` + JSON sidecar; a hit is
            returned memory-mapped (read-only) without building the network.
        whitening: None = ``cfg.whitening``; True = PCA-whiten to
            ``cfg.whiten_dim`` learned on these descriptors; ``(mean, P)`` =
            apply a whitening learned elsewhere (e.g. the training split).
        skip_corrupt: False = an unreadable image raises ValueError naming it;
            True = return an :class:`EmbedResult` without the unreadable items.
        desc: the progress bar's label (e.g. "embed train").
    """
    given = {"backbone": backbone, "pooling": pooling, "image_size": image_size, "device": device,
             "batch_size": batch_size}
    if cfg is None:
        cfg = EmbedConfig(**given)
    else:  # keywords left at their defaults do not override cfg
        sig = inspect.signature(embed).parameters
        cfg = dataclasses.replace(cfg, **{k: v for k, v in given.items() if v != sig[k].default})
    dev = resolve_device(cfg.device)
    precision = "cuda-fp16-autocast" if dev.type == "cuda" else "fp32"
    key, inputs = embed_cache_key(dataset, cfg, precision, skip_corrupt)

    def compute():
        bb = build_backbone(cfg.backbone, cfg.weights)
        net = EmbeddingNet(bb, Pooling.from_config(cfg), scales=cfg.scales)
        feats, _, skipped = _extract(net, dataset, make_transform(bb.meta, cfg.image_size), dev,
                                     cfg.batch_size, cfg.num_workers, progress,
                                     skip_corrupt, cfg.image_size, desc)
        return feats, {"skipped": skipped}

    feats, extra = _cached(cache_dir, key, inputs, compute)
    if whitening is None:
        whitening = cfg.whitening
    if whitening is True:
        mean, P = learn_whitening(feats, cfg.whiten_dim)
    elif whitening is not False:
        if not (isinstance(whitening, (tuple, list)) and len(whitening) == 2):
            raise ValueError("whitening must be None, True, False or a (mean, P) pair, "
                             f"got {type(whitening).__name__}")
        mean, P = whitening
    if whitening is not False:  # one matrix product: cheaper than a cache entry of its own
        feats = apply_whitening(feats, mean, P)
    if not skip_corrupt:
        return feats
    skipped = [(int(i), str(e)) for i, e in extra["skipped"]]
    kept = np.setdiff1d(np.arange(len(dataset)), [i for i, _ in skipped]).astype(np.int64)
    return EmbedResult(feats, kept, skipped)
