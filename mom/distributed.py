"""Data-parallel helpers for training (torch.distributed; NCCL on CUDA, gloo on CPU).

Batch semantics: ``TrainConfig.batch_size`` is the *global* batch B of one
optimisation step. With W ranks, each rank takes a disjoint contiguous chunk
of b = B / W tuples of that step (B must be divisible by W). Each rank's loss
is the mean over its b tuples and DDP averages the gradients over ranks, so
the step's gradient is the mean over all B tuples: the single-process
gradient for the same global batch, as long as the forward pass of one image
does not depend on the others in its batch (BatchNorm frozen, docs/method.md §9).
Every rank draws the same tuple list from the shared seed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["DistInfo", "launched_by_torchrun", "setup", "teardown", "local_batches",
           "gather_rows", "all_mean", "gather_objects", "barrier"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands; ``world_size == 1`` means no process group is used."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when setup() created the group (teardown destroys it)

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when RANK and WORLD_SIZE are set in the environment (torchrun, mp.spawn with env)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup(distributed: bool | None, device: torch.device) -> DistInfo:
    """Join (or create) the process group. ``distributed=None``: only under torchrun."""
    if distributed is None:
        distributed = launched_by_torchrun()
    if not distributed:
        return DistInfo()
    owns = not dist.is_initialized()  # a group the caller made is joined, not torn down
    if owns:
        missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise ValueError(f"distributed training needs the environment variables {missing} "
                             "(launch with torchrun, or set them before calling train)")
        # When torch._dynamo (which torchvision, timm and the optimisers import lazily) is
        # first imported while a group exists, that group outlives destroy_process_group
        # (tests/test_distributed.py checks it), and a rank whose gloo group is still alive at
        # interpreter exit can die with "terminate called without an active exception"
        # (exit -6). Imported before the group is made, it keeps nothing alive.
        import torch._dynamo  # noqa: F401
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(),
                    int(os.environ.get("LOCAL_RANK", dist.get_rank())), owns_group=owns)


def teardown(info: DistInfo) -> None:
    """Destroy the group setup() created (a group the caller made is left alone)."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def local_batches(n_tuples: int, batch_size: int, info: DistInfo) -> np.ndarray:
    """Tuple indices this rank trains on, (steps * b,), in step order (drop last)."""
    if batch_size % info.world_size:
        raise ValueError(f"train.batch_size={batch_size} is the global batch and must be "
                         f"divisible by the world size {info.world_size}")
    steps = n_tuples // batch_size
    b = batch_size // info.world_size
    return np.arange(steps * batch_size).reshape(steps, info.world_size, b)[:, info.rank].reshape(-1)


def gather_rows(local: torch.Tensor, n: int, info: DistInfo) -> torch.Tensor:
    """Reassemble rows computed by rank r for indices r, r+W, ... into (n, ...) on every rank."""
    if not info.active:
        return local
    W = info.world_size
    size = -(-n // W)
    padded = local.new_zeros((size,) + tuple(local.shape[1:]))
    padded[: len(local)] = local
    parts = [torch.empty_like(padded) for _ in range(W)]
    dist.all_gather(parts, padded)
    out = local.new_empty((n,) + tuple(local.shape[1:]))
    for r, part in enumerate(parts):
        out[r::W] = part[: len(range(r, n, W))]
    return out


def all_mean(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a tensor over ranks (identity for one process)."""
    if not info.active:
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / info.world_size


def gather_objects(obj, info: DistInfo) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not info.active:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()
