"""Fine-tuning on mined tuples (docs/method.md §7-§10): the loop, checkpoints, resumption.

Each epoch: re-embed the training set with the current model (test
transform), draw the epoch's tuples (:func:`mom.sampler.sample_epoch`),
then SGD over batches of ``batch_size`` tuples (drop last) with the triplet or
contrastive loss. ``pools.select(cfg.pools)`` picks the manifold pools or the
Euclidean baseline; both run through this same code. BatchNorm statistics stay
frozen when ``freeze_bn`` (docs/method.md §9, §15). Under torchrun, or with
``distributed=True``, training is data parallel; see :mod:`mom.distributed`
for the batch semantics.

The model itself (PCA head, trainable layers, frozen BN) is :mod:`mom.model`;
``build_model`` is re-exported here.

Files in ``out_dir``: ``checkpoint.pt`` (every epoch, atomic: model,
optimiser, scheduler, RNG states, history), ``train.json`` (config, per-epoch
metrics, package versions, git commit) and, at the end, ``model.pt`` (weights
+ backbone meta + configs).
"""
from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import distributed as ddp
from .config import EmbedConfig, TrainConfig, config_to_dict
from .io import atomic_write, env_info, remove_stale_temps, save_json
from .model import NormLinear, build_model, freeze_batchnorm, pca_head, set_trainable  # noqa: F401 (API)
from .sampler import WEIGHT_MODES, rescale_weights, sample_epoch

__all__ = ["TrainResult", "build_model", "pca_head", "set_trainable", "freeze_batchnorm",
           "make_optimizer", "NormLinear", "TupleImages", "tuple_loss", "train", "CHECKPOINT", "LOG"]

CHECKPOINT = "checkpoint.pt"
LOG = "train.json"
WEIGHTS = "model.pt"
# fields that may change between a run and its resumption without changing the result
_RESUMABLE_CHANGES = ("epochs", "device", "num_workers")


@dataclass
class TrainResult:
    model: nn.Module  # the trained model, unwrapped (no DDP), on the training device
    history: list[dict] = field(default_factory=list)  # one dict per epoch
    guard: dict | None = None  # train.guard's record (held-out losses, kept epoch), or None
    # the training set's embedding by the model as given (epoch 0's start), or None when
    # the run resumed past epoch 0: another training from the same model can start from it
    start_embedding: np.ndarray | None = None


def make_optimizer(params, cfg: TrainConfig):
    """The paper's SGD (momentum, dampening, weight decay) and lr x lr_gamma after lr_step_epoch."""
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, dampening=cfg.dampening,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[cfg.lr_step_epoch], gamma=cfg.lr_gamma)
    return opt, sched


# ----------------------------------------------------------------------------- data
class TupleImages(torch.utils.data.Dataset):
    """Item t: the images of tuple t stacked (2 + K, 3, H, W) and its weight."""

    def __init__(self, dataset, ids: np.ndarray, weights: np.ndarray, transform: Callable):
        self.dataset, self.ids, self.weights, self.transform = dataset, ids, weights, transform  # (T, 2+K)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, t: int):
        imgs = [self.transform(self.dataset[int(i)][0]) for i in self.ids[t]]
        return torch.stack(imgs), torch.tensor(self.weights[t], dtype=torch.float32)


def tuple_loss(z: torch.Tensor, weights: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Loss of a batch of embedded tuples ``z`` (B, 2 + K, D): anchor, positive, K negatives."""
    from .losses import contrastive_loss, triplet_loss

    za, zp, zn = z[:, 0], z[:, 1], z[:, 2:]  # (B, D), (B, D), (B, K, D)
    if cfg.loss == "triplet":  # K > 1: the mean of the K triplet losses
        return torch.stack([triplet_loss(za, zp, zn[:, k], weights=weights, margin=cfg.margin)
                            for k in range(zn.shape[1])]).mean()
    if cfg.loss == "contrastive":
        return contrastive_loss(za, zp, zn, margin=cfg.margin)  # unweighted, as docs/method.md §8
    raise ValueError(f"train.loss must be 'triplet' or 'contrastive', got {cfg.loss!r}")


# ----------------------------------------------------------------------------- state
def _rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(s: dict) -> None:
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"])
    if s.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def _resumable_config(cfg: TrainConfig) -> dict:
    d = config_to_dict(cfg)
    return {k: v for k, v in d.items() if k not in _RESUMABLE_CHANGES}


def _save_checkpoint(path: Path, state: dict, epoch: int) -> None:
    try:
        with atomic_write(path, "wb") as fh:
            torch.save(state, fh)
    except OSError as exc:  # atomic_write's message already names the file
        raise OSError(exc.errno, f"checkpoint of epoch {epoch}: {exc.strerror or exc}; "
                                 "the previous checkpoint is left intact") from exc


# ----------------------------------------------------------------------------- loop
def train(model: nn.Module, dataset, pools, cfg: TrainConfig, embed_cfg: EmbedConfig,
          out_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
          eval_fn: Callable[[nn.Module, int], dict] | None = None, distributed: bool | None = None,
          transforms: tuple[Callable, Callable] | None = None,
          start_embedding: np.ndarray | None = None) -> TrainResult:
    """Fine-tune ``model`` on tuples from ``pools.select(cfg.pools)`` (docs/method.md §9-§10).

    Args:
        model: maps (B, 3, H, W) to L2-normalised (B, D); usually from :func:`build_model`.
        dataset: the training images (``ds[i] -> (PIL image, label)``; labels unused).
        pools: mined ``Pools``; ``cfg.pools`` chooses "mom" or the "euclidean" baseline.
        cfg, embed_cfg: training and embedding configs (embed_cfg: extraction batch size).
        out_dir: where checkpoint.pt / train.json / model.pt go (None: nothing written).
        resume: continue from ``out_dir/checkpoint.pt`` if it exists.
        eval_fn: ``eval_fn(model, epoch) -> dict`` after each epoch (rank 0); merged into history.
        distributed: True = data parallel over the torch.distributed environment;
            None = only when launched by torchrun (RANK/WORLD_SIZE set).
        transforms: (train, test) image transforms; default ``make_transform`` of
            ``model.backbone.meta`` at ``cfg.image_size``.
        start_embedding: the training set's embedding by ``model`` as given (test
            transform, ``cfg.image_size``), e.g. ``TrainResult.start_embedding`` of another
            training from the same model: epoch 0 starts from it instead of embedding the
            set again (the same training bit for bit; ignored when resuming).
    Returns ``TrainResult(model, history, guard, start_embedding)``. Raises FloatingPointError on a non-finite loss.
    """
    from .device import rank_device, resolve_device

    if cfg.weights not in WEIGHT_MODES:
        raise ValueError(f"train.weights must be one of {WEIGHT_MODES}, got {cfg.weights!r}")
    pools = pools.select(cfg.pools)
    if len(pools) == 0:
        raise ValueError(f"train: the {cfg.pools!r} pool set is empty (no anchor with non-empty "
                         "P+ and P-); nothing to train on - check the mining depths")
    if resume and out_dir is None:
        raise ValueError("train: resume=True needs the out_dir that holds checkpoint.pt")
    n_tuples = cfg.epoch_tuples(len(dataset))
    if n_tuples < cfg.batch_size:
        raise ValueError(f"train: {n_tuples} tuples per epoch give no full batch of {cfg.batch_size}")
    device = resolve_device(cfg.device)
    info = ddp.setup(distributed, device)
    try:
        device = rank_device(device, info)  # cuda:LOCAL_RANK under torchrun
        train_tf, test_tf = _transforms(model, cfg, transforms)
        job = _Job(dataset=dataset, cfg=cfg, embed_cfg=embed_cfg,
                   out=Path(out_dir) if out_dir is not None else None, progress=progress,
                   device=device, info=info, n_tuples=n_tuples, train_tf=train_tf,
                   test_tf=test_tf)
        return _fit(job, model, pools, resume, eval_fn, start_embedding)
    finally:
        ddp.teardown(info)


@dataclass(frozen=True)
class _Job:
    """What every step of one training reads; fixed for the whole run."""
    dataset: Any  # the training images
    cfg: TrainConfig
    embed_cfg: EmbedConfig
    out: Path | None  # where checkpoint.pt, train.json and model.pt go; None: nothing written
    progress: bool
    device: torch.device  # this rank's
    info: ddp.DistInfo
    n_tuples: int  # tuples an epoch, all ranks together
    train_tf: Callable  # the image transform of the SGD steps
    test_tf: Callable  # that of the embeddings (each epoch's, the guard's)

    @property
    def ckpt_path(self) -> Path | None:
        return self.out / CHECKPOINT if self.out is not None else None

    @property
    def writes(self) -> bool:
        """Whether this process writes the files: rank 0, with an ``out_dir``."""
        return self.out is not None and self.info.is_main


@dataclass
class _Loop:
    """What the epochs advance: the model and its optimiser, the tuple sampler's RNG, the
    history, and the pools (without the held-out anchors of ``train.guard``)."""
    model: nn.Module
    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    sampler_rng: np.random.Generator  # same on every rank: same tuple list
    pools: Any  # the training pools
    held: Any  # the held-out pools, or None
    guard: dict | None  # the guard's record (see _guard_split), or None
    history: list[dict]  # one record per epoch done
    start: int  # the first epoch to run: those a checkpoint holds are done
    local: np.ndarray  # the ids of this rank's tuples among an epoch's
    env: dict | None  # env_info() for train.json, where this process writes it
    # the guard's embedding after the last epoch's steps: the next epoch's start embedding
    # (the same weights, the same test transform), so it is not computed twice
    after: np.ndarray | None = None
    first: np.ndarray | None = None  # epoch 0's start embedding, for TrainResult


def _transforms(model, cfg: TrainConfig, transforms) -> tuple[Callable, Callable]:
    """(train, test) image transforms: ``transforms``, else ``make_transform`` of
    ``model.backbone.meta`` at ``cfg.image_size`` (augmented for training when ``cfg.augment``)."""
    from .extract import make_transform

    if transforms is None:
        meta = model.backbone.meta
        transforms = (make_transform(meta, cfg.image_size, train=cfg.augment),
                      make_transform(meta, cfg.image_size, train=False))
    train_tf, test_tf = transforms
    return train_tf, test_tf


def _fit(job: _Job, model, pools, resume: bool, eval_fn, start_embedding=None) -> TrainResult:
    """The training of :func:`train` once its arguments are checked: set up (or resume),
    the epochs still to run, each followed by its checkpoint, then the kept weights."""
    loop = _setup(job, model, pools, resume)
    if start_embedding is not None and loop.start == 0:
        emb = np.asarray(start_embedding)
        if emb.shape[0] != len(job.dataset):
            raise ValueError(f"train: start_embedding has {emb.shape[0]} rows for "
                             f"{len(job.dataset)} training images")
        loop.after = emb  # consumed by epoch 0 as the guard's after-embedding is by the next
    for epoch in range(loop.start, job.cfg.epochs):
        loop.history.append(_epoch(job, loop, epoch, eval_fn))
        _end_epoch(job, loop, epoch)
    return _finish(job, loop)


def _setup(job: _Job, model, pools, resume: bool) -> _Loop:
    """The state before the first epoch to run: the output folder, the model on its device,
    optimiser and scheduler, every RNG seeded (or restored with the rest from the
    checkpoint when ``resume``), the guard's held-out anchors, DDP and AMP."""
    cfg, device, info = job.cfg, job.device, job.info
    if job.writes:
        job.out.mkdir(parents=True, exist_ok=True)
        for name in (CHECKPOINT, LOG, WEIGHTS):  # temp files of a run killed while writing
            remove_stale_temps(job.out / name)
    model.to(device)
    # the layout extract uses (faster on CPU and CUDA); set before DDP builds its buckets
    model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("train: the model has no parameter with requires_grad")
    opt, sched = make_optimizer(params, cfg)
    sampler_rng = np.random.default_rng(cfg.seed)  # same on every rank: same tuple list
    history, start, saved_guard = _restore(job.ckpt_path if resume else None, model, opt, sched,
                                           sampler_rng, cfg, info)
    pools, held, guard = _guard_split(pools, cfg, saved_guard)
    net = model
    if info.active:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    scaler = torch.amp.GradScaler("cuda", enabled=bool(cfg.amp) and device.type == "cuda")
    return _Loop(model=model, net=net, opt=opt, sched=sched, scaler=scaler,
                 sampler_rng=sampler_rng, pools=pools, held=held, guard=guard, history=history,
                 start=start, local=ddp.local_batches(job.n_tuples, cfg.batch_size, info),
                 env=env_info() if job.writes else None)


def _epoch(job: _Job, loop: _Loop, epoch: int, eval_fn) -> dict:
    """Epoch ``epoch`` (from 0): embed the training set with the current model, draw the
    epoch's tuples, one pass of SGD over them; then the guard's held-out loss and
    ``eval_fn`` (rank 0). Returns the epoch's history record."""
    cfg = job.cfg
    t0 = time.perf_counter()
    if loop.after is not None and (REUSE_AFTER_EMBEDDING or epoch == loop.start == 0):
        emb, loop.after = loop.after, None  # (N, D)
        _skip_loader_draw()  # the draw that embedding pass would have made
    else:
        emb = _embed_all(loop.model, job, epoch)  # (N, D)
    if epoch == 0:
        loop.first = emb
    if loop.held is not None and len(loop.guard["losses"]) == epoch:  # the untrained network
        _guard_check(loop.guard, loop.model, emb, loop.held, cfg)
    t1 = time.perf_counter()
    tup = sample_epoch(loop.pools, emb, job.n_tuples, cfg.hard_negatives, cfg.n_negatives,
                       loop.sampler_rng)
    loader = _tuple_loader(job, tup, loop.local)
    t2 = time.perf_counter()
    lr = loop.opt.param_groups[0]["lr"]
    losses = _steps(job, loop, loader, epoch)
    loop.sched.step()
    t3 = time.perf_counter()
    rec = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "lr": lr, "steps": len(losses),
           "tuples": len(losses) * cfg.batch_size, "mean_raw_weight": float(np.mean(tup.weight)),
           "embed_s": round(t1 - t0, 3),
           "sample_s": round(t2 - t1, 3), "train_s": round(t3 - t2, 3),
           "tuples_per_s": len(losses) * cfg.batch_size / max(t3 - t1, 1e-9)}
    if loop.held is not None:
        rec["heldout_loss"] = _guard_after(job, loop, epoch)
    if eval_fn is not None and job.info.is_main:
        rec.update(_isolated(eval_fn, loop.model, epoch + 1))
    return rec


def _tuple_loader(job: _Job, tup, local: np.ndarray) -> torch.utils.data.DataLoader:
    """The batches of this rank's tuples (ids ``local``) among the epoch's ``tup``, in
    order, with the training transform; the weights rescaled over all ranks' tuples."""
    cfg = job.cfg
    ids = np.concatenate([tup.anchor[:, None], tup.positive[:, None], tup.negative], axis=1)
    weight = rescale_weights(tup.weight, cfg.weights)  # (T,) over all ranks' tuples
    return torch.utils.data.DataLoader(
        TupleImages(job.dataset, ids[local], weight[local], job.train_tf),
        batch_size=cfg.batch_size // job.info.world_size, shuffle=False, drop_last=True,
        num_workers=cfg.num_workers, pin_memory=job.device.type == "cuda")


def _end_epoch(job: _Job, loop: _Loop, epoch: int) -> None:
    """After epoch ``epoch``: rank 0 writes the checkpoint (every rank's RNG states, for an
    exact resume) and train.json; every rank waits for it."""
    states = ddp.gather_objects(_rng_state(), job.info)  # every rank's, for an exact resume
    if job.writes:
        _save_checkpoint(job.ckpt_path, {
            "model": loop.model.state_dict(), "optimizer": loop.opt.state_dict(),
            "scheduler": loop.sched.state_dict(), "rng": states,
            "sampler_rng": loop.sampler_rng.bit_generator.state,
            "epoch": epoch + 1, "history": loop.history, "config": _resumable_config(job.cfg),
            "guard": loop.guard}, epoch + 1)
        _write_log(job, loop, done=False)
    ddp.barrier(job.info)


def _finish(job: _Job, loop: _Loop) -> TrainResult:
    """The end of the run: the kept epoch's weights in the model (``train.guard``), then
    rank 0 writes model.pt and the finished train.json; every rank waits for it."""
    guard = _guard_finish(loop.guard, loop.model)
    if job.writes:
        model = loop.model
        meta = getattr(getattr(model, "backbone", None), "meta", None)
        with atomic_write(job.out / WEIGHTS, "wb") as fh:
            torch.save({"state_dict": model.state_dict(), "meta": meta,
                        "train_config": config_to_dict(job.cfg),
                        "embed_config": config_to_dict(job.embed_cfg)}, fh)
        _write_log(job, loop, done=True, guard=guard)
    ddp.barrier(job.info)
    return TrainResult(loop.model, loop.history, guard, loop.first)


# ----------------------------------------------------------------------------- guard
def _guard_split(pools, cfg: TrainConfig, saved: dict | None):
    """(training pools, held-out pools or None, guard record or None) for ``cfg.guard``."""
    from .guard import split_anchors

    if cfg.guard == "none":
        return pools, None, None
    split = split_anchors(len(pools), cfg.guard_fraction, cfg.seed)
    if split is None:
        return pools, None, {"active": False, "fraction": cfg.guard_fraction,
                             "reason": f"{len(pools)} anchor(s): none to hold out"}
    keep, out = split
    guard = saved or {"active": True, "fraction": cfg.guard_fraction,
                      "heldout_anchors": int(out.size), "train_anchors": int(keep.size),
                      "losses": [], "best_state": None}
    return pools.take(keep), pools.take(out), guard


def _guard_check(guard: dict, model, emb: np.ndarray, held, cfg: TrainConfig) -> float:
    """Record the held-out loss of ``model`` (embedding ``emb``); keep its weights when best."""
    from .guard import choose_epoch, heldout_loss

    loss = heldout_loss(emb, held, cfg.margin, cfg.hard_negatives)
    guard["losses"].append(loss)
    # the weights _guard_finish will return, by the same rule (ties: the earlier epoch)
    if np.isfinite(loss) and choose_epoch(guard["losses"]) == len(guard["losses"]) - 1:
        guard["best_state"] = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return loss


def _guard_finish(guard: dict | None, model) -> dict | None:
    """Load the kept epoch's weights into ``model``; the record without the weights."""
    from .guard import choose_epoch

    if guard is None or not guard.get("active"):
        return guard
    rec = {k: v for k, v in guard.items() if k != "best_state"}
    last = len(guard["losses"]) - 1
    if not np.isfinite(guard["losses"]).any():  # no held-out tuple to judge by
        rec.update(kept_epoch=last, fell_back=False, reason="no finite held-out loss")
        return rec
    kept = choose_epoch(guard["losses"])
    if kept < last:
        model.load_state_dict(guard["best_state"])
    rec.update(kept_epoch=kept, fell_back=kept == 0)
    return rec


def _guard_after(job: _Job, loop: _Loop, epoch: int) -> float:
    """The held-out loss after the steps of epoch ``epoch``, recorded by :func:`_guard_check`.
    Its embedding is RNG-neutral, so a resumed run draws what a straight one does."""
    after = _isolated(lambda m, e: {"emb": _embed_all(m, job, e, after=True)}, loop.model,
                      epoch + 1)["emb"]
    loop.after = after
    return _guard_check(loop.guard, loop.model, after, loop.held, job.cfg)


# the next epoch starts from the guard's after-epoch embedding instead of embedding the
# training set again (tests/test_train.py checks the two give the same training bit for bit)
REUSE_AFTER_EMBEDDING = True


def _skip_loader_draw() -> None:
    """Advance torch's global generator as one embedding pass does: its DataLoader draws
    one int64 base seed when it starts. A reused embedding then leaves every later random
    draw (the augmentation of the steps) where a fresh pass would."""
    torch.empty((), dtype=torch.int64).random_()


def _isolated(eval_fn, model, epoch: int) -> dict:
    """``eval_fn(model, epoch)`` with every RNG state restored afterwards.

    Evaluation must not change training: a DataLoader draws its base seed from
    torch's generator, so without this, scoring after each epoch would change the
    augmentation of the next one, and ``epochs=e`` would no longer equal the first
    ``e`` epochs of a longer run (the study reads several epoch counts from one run).
    """
    state = _rng_state()
    try:
        return dict(eval_fn(model, epoch))
    finally:
        _set_rng_state(state)
        model.eval()


def _restore(ckpt_path: Path | None, model, opt, sched, sampler_rng, cfg: TrainConfig,
             info: ddp.DistInfo) -> tuple[list[dict], int, dict | None]:
    """Load ``ckpt_path`` if it exists -> (history, epochs done, guard record); else seed
    every RNG -> ([], 0, None)."""
    if ckpt_path is None or not ckpt_path.is_file():
        # per-rank seeds: augmentation differs across ranks, the tuples (sampler_rng) do not
        random.seed(cfg.seed + info.rank)
        np.random.seed(cfg.seed + info.rank)
        torch.manual_seed(cfg.seed + info.rank)
        return [], 0, None
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)  # our own file; RNG states stay on CPU
    now = _resumable_config(cfg)
    if ck["config"] != now:
        diff = sorted(k for k in set(ck["config"]) | set(now) if ck["config"].get(k) != now.get(k))
        raise ValueError(f"resume: {str(ckpt_path)!r} was written with different settings {diff}")
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])  # moves the momentum buffers to the parameters' device
    sched.load_state_dict(ck["scheduler"])
    sampler_rng.bit_generator.state = ck["sampler_rng"]
    _set_rng_state(ck["rng"][info.rank if len(ck["rng"]) == info.world_size else 0])
    return list(ck["history"]), int(ck["epoch"]), ck.get("guard")


def _embed_all(model, job: _Job, epoch: int = 0, after: bool = False) -> np.ndarray:
    """The current embedding of the whole training set (test transform), (N, D) on every
    rank (rank r embeds r::W); ``after``: the guard's, after the steps of epoch ``epoch``."""
    from .extract import extract

    cfg, dataset, info = job.cfg, job.dataset, job.info
    part = torch.utils.data.Subset(dataset, range(info.rank, len(dataset), info.world_size))
    emb = extract(model, part if info.active else dataset, job.test_tf, device=job.device,
                  batch_size=job.embed_cfg.batch_size, num_workers=cfg.num_workers,
                  progress=job.progress and info.is_main,
                  desc=f"{cfg.pools} epoch {epoch + 1}/{cfg.epochs} embed" if not after
                  else f"{cfg.pools} epoch {epoch}/{cfg.epochs} guard embed")
    if not info.active:
        return emb
    return ddp.gather_rows(torch.from_numpy(emb).to(job.device), len(dataset), info).cpu().numpy()


def _steps(job: _Job, loop: _Loop, loader, epoch: int) -> list[float]:
    """One pass of SGD over ``loader``; returns each step's loss (mean over ranks)."""
    cfg, device, info, ckpt_path = job.cfg, job.device, job.info, job.ckpt_path
    net, model, opt, scaler = loop.net, loop.model, loop.opt, loop.scaler
    model.train()
    if cfg.freeze_bn:
        freeze_batchnorm(model)
    losses = []
    bar = tqdm(loader, desc=f"{cfg.pools} epoch {epoch + 1}/{cfg.epochs} train",
               disable=not job.progress or not info.is_main,
               leave=False)
    for step, (x, w) in enumerate(bar):
        x, w = x.to(device, non_blocking=True), w.to(device, non_blocking=True)  # (b, 2+K, 3, H, W)
        if cfg.micro_batch is not None and cfg.micro_batch < len(w):
            loss = _accumulate(job, loop, x, w)  # the batch's gradient, micro-batch by micro-batch
        else:
            # (b * (2+K), 3, H, W): one forward pass for all images
            x = x.flatten(0, 1).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, enabled=scaler.is_enabled()):
                z = net(x).view(len(w), 2 + cfg.n_negatives, -1)  # (b, 2+K, D)
                loss = tuple_loss(z.float(), w, cfg)
        mean_loss = float(ddp.all_mean(loss.detach(), info))
        if not math.isfinite(mean_loss):  # before the step: the weights stay finite
            kept = ckpt_path is not None and ckpt_path.is_file()
            where = f" (last good checkpoint kept: {str(ckpt_path)!r})" if kept else ""
            raise FloatingPointError(f"train: non-finite loss {mean_loss} at epoch {epoch + 1}, "
                                     f"step {step + 1}/{len(loader)}{where}; try a lower lr")
        if loss.requires_grad:  # whole batch: its backward; micro-batches ran theirs already
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(mean_loss)
        bar.set_postfix(loss=f"{mean_loss:.4f}")
    model.eval()
    return losses


def _accumulate(job: _Job, loop: _Loop, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Forward and backward of one batch of tuples ``x`` (b, 2+K, 3, H, W) in micro-batches
    of ``cfg.micro_batch`` tuples, each loss scaled by its share of the batch, so the
    gradients left in the parameters are the whole batch's (both losses are means over
    tuples; BN is frozen). Under DDP only the last micro-batch synchronises. Returns the
    batch's loss, detached."""
    cfg, device, net, scaler = job.cfg, job.device, loop.net, loop.scaler
    loop.opt.zero_grad(set_to_none=True)
    b, total = len(w), torch.zeros((), device=device)
    starts = range(0, b, cfg.micro_batch)
    for i, s in enumerate(starts):
        xs = x[s:s + cfg.micro_batch].flatten(0, 1).contiguous(memory_format=torch.channels_last)
        ws = w[s:s + cfg.micro_batch]
        last = i == len(starts) - 1
        sync = contextlib.nullcontext() if last or net is loop.model else net.no_sync()
        with sync:
            with torch.autocast(device.type, enabled=scaler.is_enabled()):
                z = net(xs).view(len(ws), 2 + cfg.n_negatives, -1)  # (m, 2+K, D)
                part = tuple_loss(z.float(), ws, cfg) * (len(ws) / b)
            scaler.scale(part).backward()
        total += part.detach()
    return total


def _write_log(job: _Job, loop: _Loop, done: bool, guard: dict | None = None) -> None:
    """train.json: configs, the training pools, the history so far; ``done``: finished,
    with the guard's final record."""
    cfg, pools = job.cfg, loop.pools
    save_json(job.out / LOG, {
        "train_config": config_to_dict(cfg), "embed_config": config_to_dict(job.embed_cfg),
        "pools": {"method": getattr(pools, "method", cfg.pools), "n_anchors": len(pools)},
        "world_size": job.info.world_size, "history": loop.history, "finished": done,
        "weights": WEIGHTS if done else None, "env": loop.env, "guard": guard})
