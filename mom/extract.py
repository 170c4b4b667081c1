"""Descriptor extraction: batched extraction of any network (``mom.model.EmbeddingNet``) on
any device, and ``embed`` with an on-disk cache keyed by everything that changes
the result (docs/design.md §5).

``embed(dataset)`` returns (N, D) float32 L2-normalised rows in dataset order.
With ``skip_corrupt=True`` it returns an :class:`EmbedResult` instead: the rows
of the readable images, their indices and the unreadable files (never NaN rows).

Sharded extraction (under torchrun, or ``distributed=True``): rank r of W embeds
the contiguous block ``shard_ranges(N, batch_size, W)[r]`` of whole batches, so
every batch it runs is a batch the single process runs and the rows are the same
bits (on deterministic kernels). With a file behind the result (``embed``'s
``cache_dir``, :func:`embed_to_file`, :func:`extract_to_file`, ``mom embed --out``
under torchrun) each rank writes its block atomically to
``<out>.shards/rank<r>-of-<W>.npy`` plus a JSON sidecar (its index range and the
key: a hash of the embedding config and the dataset fingerprint), written last;
rank 0 merges the blocks into ``<out>`` in dataset order, atomically, and removes
the shards. A rerun after a killed rank reuses each complete shard whose sidecar
matches and recomputes the others. Without a file (``embed`` without
``cache_dir``) the blocks are gathered in memory. Every rank must call these
functions (they are collective); every rank gets the whole result.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .backbones import backbone_meta, build_backbone, make_transform, eval_resize
from .config import EmbedConfig
from .device import rank_device, resolve_device  # resolve_device re-exported here
from .model import EmbeddingNet
from .pooling import Pooling, l2n
from .whitening import Whitening

__all__ = ["EmbedResult", "resolve_device", "extract", "embed", "embed_cache_key",
           "make_transform", "CACHE_FORMAT", "SHARD_FORMAT", "shard_ranges", "shard_folder",
           "embed_to_file", "extract_to_file"]

CACHE_FORMAT = "mom-embed-1"  # bump when the cached bytes' meaning changes
SHARD_FORMAT = "mom-embed-shard-1"  # bump when a shard file's meaning changes


class _Items(torch.utils.data.Dataset):
    """item j -> (transformed tensor of dataset[rows[j]], j, error message or "") for the
    loader; ``rows`` (default: every index) is a range of dataset indices, the messages
    name the dataset index."""

    def __init__(self, dataset, transform, skip_corrupt: bool, image_size: int | None,
                 rows: range | None = None):
        self.dataset, self.transform, self.skip = dataset, transform, skip_corrupt
        self.size = image_size
        self.rows = range(len(dataset)) if rows is None else rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, j: int):
        i = self.rows[j]
        try:
            img, _ = self.dataset[i]
            return self.transform(img), j, ""
        except (ValueError, OSError) as err:
            paths = getattr(self.dataset, "paths", None)
            where = f"{paths[i]} (item {i})" if paths is not None else f"item {i}"
            msg = f"{where}: {err}" if paths is None or str(paths[i]) not in str(err) else str(err)
            if not self.skip or self.size is None:
                raise ValueError(msg) from err
            return torch.zeros(3, self.size, self.size), j, msg


@torch.inference_mode()
def _extract(model, dataset, transform, device, batch_size, num_workers, progress,
             skip_corrupt=False, image_size=None, desc="embed", rows: range | None = None
             ) -> tuple[np.ndarray, np.ndarray, list]:
    """(features of the readable items (K, D), their positions in ``rows`` (K,),
    [(dataset index, error)] of the rest). ``rows``: the dataset indices to embed, in
    order (default: all); batches are cut from its start, as for the whole dataset."""
    device = resolve_device(device)
    items = _Items(dataset, transform, skip_corrupt, image_size, rows)
    n = len(items)
    if n == 0:
        raise ValueError("extract: the dataset is empty")
    cuda = device.type == "cuda"
    loader = torch.utils.data.DataLoader(
        items, batch_size=batch_size, shuffle=False,
        num_workers=num_workers, pin_memory=cuda, persistent_workers=False)
    was_training = model.training
    # channels_last on every device: measured faster for these convolutions on CPU too
    # (EfficientNet-Lite0: about 1.5x at 64 and 224 px), the same numbers within rounding
    with torch.inference_mode(False):  # parameters moved here must stay usable for training
        model.to(device).eval()
        model.to(memory_format=torch.channels_last)
    out, ok, errors = None, np.zeros(n, dtype=bool), []
    try:
        with tqdm(total=n, disable=not progress, unit="img", desc=desc) as bar:
            for x, idx, err in loader:
                x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.float16, enabled=cuda):
                    z = model(x)
                z = l2n(z.float()).cpu().numpy()  # (B, D)
                if out is None:
                    out = np.empty((n, z.shape[1]), dtype=np.float32)  # (N, D)
                good = np.array([e == "" for e in err], dtype=bool)
                idx = idx.numpy()
                out[idx[good]] = z[good]
                ok[idx[good]] = True
                errors += [(int(items.rows[i]), e) for i, e in zip(idx, err) if e]
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
    channels_last; on CUDA also fp16 autocast and pinned memory. A corrupt image raises
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


def _cache_paths(cache_dir, key: str) -> tuple[Path, Path]:
    cache_dir = Path(cache_dir)
    return cache_dir / f"embed-{key[:32]}.npy", cache_dir / f"embed-{key[:32]}.json"


def _cache_hit(npy: Path, side: Path, key: str):
    """(array memory-mapped, extra sidecar dict) of a valid cache entry, else None."""
    from .io import load_json
    if not (npy.is_file() and side.is_file()):
        return None
    try:
        info = load_json(side)
        arr = np.load(npy, mmap_mode="r")
        if info.get("key") == key and list(arr.shape) == info.get("shape"):
            return arr, info.get("extra", {})
    except (ValueError, OSError):
        pass  # an unreadable entry (e.g. edited by hand) is recomputed and replaced
    return None


def _cached(cache_dir, key: str, inputs: dict, compute):
    """Load ``embed-<key>.npy`` (memory-mapped) if it and its sidecar exist,
    else ``compute() -> (array, extra sidecar dict)`` and store both atomically."""
    if cache_dir is None:
        return compute()
    from .io import save_json, save_npy
    npy, side = _cache_paths(cache_dir, key)
    hit = _cache_hit(npy, side, key)
    if hit is not None:
        return hit
    arr, extra = compute()
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    save_npy(npy, np.ascontiguousarray(arr, dtype=np.float32))
    save_json(side, {"key": key, "inputs": inputs, "shape": list(arr.shape), "extra": extra})
    return arr, extra


def _cached_sharded(cache_dir, key: str, inputs: dict, n: int, batch_size: int, info, shard):
    """:func:`_cached` over ranks: a hit on every rank is returned; otherwise the entry
    is built by :func:`_sharded_to_file` (shards beside it) and its sidecar written last."""
    from . import distributed as ddp
    from .io import save_json
    npy, side = _cache_paths(cache_dir, key)
    hit = _cache_hit(npy, side, key)
    if all(ddp.gather_objects(hit is not None, info)):
        return hit
    Path(cache_dir).mkdir(parents=True, exist_ok=True)

    def sidecar(shape, skipped):
        save_json(side, {"key": key, "inputs": inputs, "shape": list(shape),
                         "extra": {"skipped": skipped}})
    arr, skipped = _sharded_to_file(npy, n, batch_size, key, info, shard, on_merged=sidecar)
    return arr, {"skipped": skipped}


# ----------------------------------------------------------------------------- shards
def shard_ranges(n: int, batch_size: int, world_size: int) -> list[range]:
    """The dataset indices of each rank: contiguous blocks of whole batches.

    The ``ceil(n / batch_size)`` batches of the single-process pass are split as
    evenly as possible, in order (rank r: batches ``r*B//W .. (r+1)*B//W - 1``), so
    that each rank runs exactly batches the single process runs. A rank gets an empty
    range when there are fewer batches than ranks."""
    if n < 0 or batch_size < 1 or world_size < 1:
        raise ValueError(f"shard_ranges: need n >= 0, batch_size >= 1 and world_size >= 1, "
                         f"got {n}, {batch_size}, {world_size}")
    batches = -(-n // batch_size)
    cut = [min(n, (r * batches // world_size) * batch_size) for r in range(world_size + 1)]
    return [range(cut[r], cut[r + 1]) for r in range(world_size)]


def shard_folder(out) -> Path:
    """Where the shards of ``out`` are written: ``<out>.shards/`` beside it."""
    out = Path(out)
    return out.with_name(out.name + ".shards")


def _shard_paths(folder: Path, rank: int, world_size: int) -> tuple[Path, Path]:
    stem = f"rank{rank}-of-{world_size}"
    return folder / f"{stem}.npy", folder / f"{stem}.json"


def _shard_record(npy: Path, side: Path, key: str, rows: range, world_size: int,
                  check_bytes: bool) -> dict | None:
    """The sidecar of a complete shard of ``rows`` made under ``key``, else None
    (missing, partial, unreadable, another key, range or world size, or bytes that
    differ from the digest the sidecar recorded when ``check_bytes``)."""
    from .io import load_json, sha256_file
    if not (npy.is_file() and side.is_file()):
        return None
    try:
        rec = load_json(side)
        if (rec.get("format") != SHARD_FORMAT or rec.get("key") != key
                or rec.get("start") != rows.start or rec.get("stop") != rows.stop
                or rec.get("world_size") != world_size):
            return None
        arr = np.load(npy, mmap_mode="r")
        if arr.dtype != np.float32 or arr.ndim != 2 or list(arr.shape) != rec.get("shape"):
            return None
        if check_bytes and sha256_file(npy) != rec.get("sha256"):
            return None
        return rec
    except (ValueError, OSError, TypeError, AttributeError):
        return None


def _ensure_shard(folder: Path, rank: int, world_size: int, rows: range, key: str, shard) -> bool:
    """Make rank ``rank``'s shard of ``rows`` unless a complete matching one is there;
    True when it was (re)computed. ``shard(rows) -> (features (K, D), [(index, error)])``."""
    from .io import remove_stale_temps, save_json, save_npy, sha256_file
    npy, side = _shard_paths(folder, rank, world_size)
    if _shard_record(npy, side, key, rows, world_size, check_bytes=True) is not None:
        return False
    for p in (npy, side):  # temp files of a writer that was killed
        remove_stale_temps(p)
    side.unlink(missing_ok=True)  # the sidecar marks a complete shard: gone before the bytes change
    feats, skipped = shard(rows)
    save_npy(npy, np.ascontiguousarray(feats, dtype=np.float32))
    save_json(side, {"format": SHARD_FORMAT, "key": key, "rank": rank, "world_size": world_size,
                     "start": rows.start, "stop": rows.stop, "shape": list(feats.shape),
                     "sha256": sha256_file(npy), "skipped": [[int(i), str(e)] for i, e in skipped]})
    return True


def _write_rows(out: Path, parts: list[np.ndarray]) -> tuple[int, int]:
    """Write the row blocks ``parts`` one after the other as one float32 ``.npy``,
    atomically, a chunk at a time (never the whole array in memory). -> its shape."""
    from .io import atomic_write, remove_stale_temps
    dims = {p.shape[1] for p in parts}
    if len(dims) != 1:
        raise ValueError(f"merging shards of {out}: their widths differ ({sorted(dims)})")
    shape = (sum(len(p) for p in parts), dims.pop())
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
              "fortran_order": False, "shape": shape}
    chunk = max(1, (64 << 20) // (4 * max(1, shape[1])))  # rows of about 64 MB
    remove_stale_temps(out)
    with atomic_write(out, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for p in parts:
            for s in range(0, len(p), chunk):
                fh.write(np.ascontiguousarray(p[s:s + chunk], dtype=np.float32).tobytes())
    return shape


def _agree(exc: BaseException | None, info, what: str, payload=None) -> list:
    """Collective: every rank's ``payload``; raises on every rank when any rank failed
    (its own error where it failed, else one naming the rank that did)."""
    from . import distributed as ddp
    msg = None
    if exc is not None:
        kind = "value" if isinstance(exc, ValueError) else "os" if isinstance(exc, OSError) else "other"
        msg = (kind, f"{type(exc).__name__}: {exc}")
    got = ddp.gather_objects((msg, payload), info)
    if exc is not None:
        raise exc
    for r, (m, _) in enumerate(got):
        if m is not None:
            cls = {"value": ValueError, "os": OSError}.get(m[0], RuntimeError)
            raise cls(f"rank {r} of {info.world_size} failed {what}: {m[1]}")
    return [p for _, p in got]


def _sharded_to_file(out, n: int, batch_size: int, key: str, info, shard,
                     on_merged: Callable | None = None) -> tuple[np.ndarray, list]:
    """Each rank its shard file, rank 0 the merge into ``out`` (then ``on_merged(shape,
    skipped)``, then the shards removed). -> (``out`` memory-mapped, [[index, error]])."""
    from .io import load_json
    out = Path(out)
    if n == 0:
        raise ValueError("extract: the dataset is empty")
    folder = shard_folder(out)
    ranges = shard_ranges(n, batch_size, info.world_size)
    err = None
    try:
        if len(ranges[info.rank]):
            folder.mkdir(exist_ok=True)  # out's folder must exist, as for any output file
            _ensure_shard(folder, info.rank, info.world_size, ranges[info.rank], key, shard)
    except Exception as exc:  # noqa: BLE001  told to every rank, then raised
        err = exc
    _agree(err, info, "embedding its shard")
    err, skipped = None, None
    if info.is_main:
        try:
            parts, skipped = [], []
            for r, rows in enumerate(ranges):
                if not len(rows):
                    continue
                npy, side = _shard_paths(folder, r, info.world_size)
                if _shard_record(npy, side, key, rows, info.world_size, check_bytes=False) is None:
                    raise ValueError(f"shard {str(npy)!r} is missing or incomplete after every rank "
                                     "finished (do the ranks share this folder? the shards need a "
                                     "file system every rank sees)")
                parts.append(np.load(npy, mmap_mode="r"))  # (K_r, D)
                skipped += load_json(side)["skipped"]
            shape = _write_rows(out, parts)
            del parts  # the memory maps
            if on_merged is not None:
                on_merged(shape, skipped)
            shutil.rmtree(folder, ignore_errors=True)
        except Exception as exc:  # noqa: BLE001
            err = exc
    skipped = _agree(err, info, "merging the shards", skipped)[0]
    return np.load(out, mmap_mode="r"), skipped


def _gathered(n: int, batch_size: int, info, shard) -> tuple[np.ndarray, dict]:
    """Each rank its block, exchanged in memory (no files): -> ((N or K, D), extra)."""
    rows = shard_ranges(n, batch_size, info.world_size)[info.rank]
    err, part = None, None
    try:
        if len(rows):
            part = shard(rows)
    except Exception as exc:  # noqa: BLE001
        err = exc
    parts = [p for p in _agree(err, info, "embedding its shard", part) if p is not None]
    feats = np.concatenate([np.asarray(f, dtype=np.float32) for f, _ in parts])
    return feats, {"skipped": [[int(i), str(e)] for _, s in parts for i, e in s]}


def _net_shard(dataset, cfg: EmbedConfig, dev, progress: bool, skip_corrupt: bool, desc: str, info):
    """``shard(rows) -> (features, [(index, error)])`` with the network built on first use."""
    built = []

    def shard(rows: range):
        if not built:
            bb = build_backbone(cfg.backbone, cfg.weights)
            built.append((EmbeddingNet(bb, Pooling.from_config(cfg), scales=cfg.scales),
                          make_transform(bb.meta, cfg.image_size)))
        net, tf = built[0]
        label = desc if not info.active else f"{desc} (shard {info.rank + 1}/{info.world_size})"
        feats, _, skipped = _extract(net, dataset, tf, dev, cfg.batch_size, cfg.num_workers,
                                     progress and info.is_main, skip_corrupt, cfg.image_size, label,
                                     rows=rows)
        return feats, skipped
    return shard


def _device_and_key(dataset, cfg: EmbedConfig, skip_corrupt: bool):
    """(device, cache key, key inputs) of embedding ``dataset`` with ``cfg``: the key
    names the precision the device computes in (float16 autocast on CUDA)."""
    dev = resolve_device(cfg.device)
    precision = "cuda-fp16-autocast" if dev.type == "cuda" else "fp32"
    key, inputs = embed_cache_key(dataset, cfg, precision, skip_corrupt)
    return dev, key, inputs


def embed_to_file(dataset, out, cfg: EmbedConfig | None = None, *, progress: bool = True,
                  skip_corrupt: bool = False, desc: str = "embed", distributed: bool | None = None):
    """The raw descriptors of ``dataset`` (``cfg.whitening`` not applied) written to
    ``out`` (.npy), sharded over the ranks (module docstring); returns ``out``
    memory-mapped (read-only) on every rank, (N, D) float32, or with
    ``skip_corrupt`` an :class:`EmbedResult` of the readable rows.

    ``distributed``: True = over the torch.distributed environment (NCCL on CUDA,
    gloo on CPU); None = only when launched by torchrun; one process otherwise
    (one shard). ``out``'s folder must exist and be seen by every rank."""
    from . import distributed as ddp
    cfg = cfg or EmbedConfig()
    dev, key, _ = _device_and_key(dataset, cfg, skip_corrupt)
    info = ddp.setup(distributed, dev)
    try:
        dev = rank_device(dev, info)
        feats, skipped = _sharded_to_file(
            out, len(dataset), cfg.batch_size, key, info,
            _net_shard(dataset, cfg, dev, progress, skip_corrupt, desc, info))
    finally:
        ddp.teardown(info)
    return _result(feats, {"skipped": skipped}, len(dataset), skip_corrupt)


def extract_to_file(model: nn.Module, dataset, transform, out, *, key: str, device="auto",
                    batch_size: int = 128, num_workers: int = 0, progress: bool = True,
                    desc: str = "embed", distributed: bool | None = None) -> np.ndarray:
    """:func:`extract` sharded over the ranks into ``out`` (.npy), as :func:`embed_to_file`.

    ``key`` identifies the result (e.g. a hash of the weights file, the transform's
    settings and ``dataset.fingerprint()``): a shard left by an earlier run is reused
    only under the same key. Returns ``out`` memory-mapped on every rank."""
    from . import distributed as ddp
    dev = resolve_device(device)
    info = ddp.setup(distributed, dev)
    try:
        dev = rank_device(dev, info)
        label = desc if not info.active else f"{desc} (shard {info.rank + 1}/{info.world_size})"

        def shard(rows):
            feats, _, skipped = _extract(model, dataset, transform, dev, batch_size, num_workers,
                                         progress and info.is_main, desc=label, rows=rows)
            return feats, skipped
        key = hashlib.sha256(json.dumps({"format": SHARD_FORMAT, "key": key, "n": len(dataset),
                                         "dev": dev.type}).encode()).hexdigest()
        return _sharded_to_file(out, len(dataset), batch_size, key, info, shard)[0]
    finally:
        ddp.teardown(info)


def _result(feats, extra: dict, n: int, skip_corrupt: bool):
    if not skip_corrupt:
        return feats
    skipped = [(int(i), str(e)) for i, e in extra["skipped"]]
    kept = np.setdiff1d(np.arange(n), [i for i, _ in skipped]).astype(np.int64)
    return EmbedResult(feats, kept, skipped)


def embed(dataset, cfg: EmbedConfig | None = None, *, device: str | None = None,
          progress: bool = True, cache_dir=None, whitening=None, skip_corrupt: bool = False,
          desc: str = "embed", distributed: bool | None = None):
    """Descriptors (N, D) float32, L2-normalised rows, of ``dataset`` (docs/method.md §2).

    Args:
        cfg: the EmbedConfig (backbone, weights, pooling, image size, scales, batch
            size, ...); None = ``EmbedConfig()``. Every setting comes from it.
        device: overrides ``cfg.device`` when given (None: ``cfg.device``).
        cache_dir: folder for ``embed-<hash>.npy`` + JSON sidecar; a hit is
            returned memory-mapped (read-only) without building the network.
        whitening: a fitted :class:`mom.whitening.Whitening` (learned on the training
            split) to apply; None = none. ``cfg.whitening`` without one raises
            ValueError: a whitening is never learned on the images being embedded
            (``mom.pipeline.embed_split`` learns it on the training split).
        skip_corrupt: False = an unreadable image raises ValueError naming it;
            True = return an :class:`EmbedResult` without the unreadable items.
        desc: the progress bar's label (e.g. "embed train").
        distributed: True = sharded over the torch.distributed environment (NCCL on
            CUDA, gloo on CPU; module docstring), every rank gets the whole result;
            None = only when launched by torchrun (RANK/WORLD_SIZE set), as train.
            Every rank must call it. With ``cache_dir`` the shards are files beside
            the cache entry, kept until merged (a rerun redoes only the missing ones);
            without, they are gathered in memory.
    """
    cfg = cfg or EmbedConfig()
    if device is not None:
        cfg = dataclasses.replace(cfg, device=device)
    _check_whitening(cfg, whitening)  # before any work
    dev, key, inputs = _device_and_key(dataset, cfg, skip_corrupt)
    from . import distributed as ddp
    info = ddp.setup(distributed, dev)
    try:
        dev = rank_device(dev, info)
        shard = _net_shard(dataset, cfg, dev, progress, skip_corrupt, desc, info)
        if not info.active:
            def compute():
                feats, skipped = shard(range(len(dataset)))
                return feats, {"skipped": skipped}
            feats, extra = _cached(cache_dir, key, inputs, compute)
        elif cache_dir is None:
            feats, extra = _gathered(len(dataset), cfg.batch_size, info, shard)
        else:
            feats, extra = _cached_sharded(cache_dir, key, inputs, len(dataset), cfg.batch_size,
                                           info, shard)
    finally:
        ddp.teardown(info)
    if whitening is not None:  # one matrix product: cheaper than a cache entry of its own
        feats = whitening.apply(feats)
    return _result(feats, extra, len(dataset), skip_corrupt)


def _check_whitening(cfg: EmbedConfig, whitening) -> None:
    if whitening is not None and not isinstance(whitening, Whitening):
        raise ValueError("whitening must be None or a fitted mom.whitening.Whitening(mean, P), "
                         f"got {type(whitening).__name__}")
    if cfg.whitening and whitening is None:
        raise ValueError(
            "embed: embed.whitening is set but no fitted whitening was given, and it is never "
            "learned on the images being embedded. Fit it on the training split: "
            "w = mom.Whitening.fit(mom.embed(train, dataclasses.replace(cfg, whitening=False)), "
            "cfg.whiten_dim), then pass whitening=w (or set whitening=False in the config)")
