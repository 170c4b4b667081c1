"""Data-parallel training: 2 CPU processes (gloo) against the single-process run."""
from __future__ import annotations

import json
import os
import socket
import time

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from mom import distributed as ddp
from mom.train import train
from train_fixtures import TinyImages, state_of, tiny_configs, tiny_model, tiny_pools


def test_local_batches_split_each_global_batch():
    parts = [ddp.local_batches(26, 6, ddp.DistInfo(rank=r, world_size=3)) for r in range(3)]
    assert [p.tolist() for p in parts] == [[0, 1, 6, 7, 12, 13, 18, 19], [2, 3, 8, 9, 14, 15, 20, 21],
                                           [4, 5, 10, 11, 16, 17, 22, 23]]  # drop last: 24, 25
    assert ddp.local_batches(26, 6, ddp.DistInfo()).tolist() == list(range(24))
    with pytest.raises(ValueError, match="divisible by the world size 4"):
        ddp.local_batches(26, 6, ddp.DistInfo(rank=0, world_size=4))


def test_single_process_helpers_are_identities(monkeypatch):
    for k in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    info = ddp.setup(None, torch.device("cpu"))
    assert not info.active and info.is_main
    x = torch.arange(6.0).view(3, 2)
    assert ddp.gather_rows(x, 3, info) is x and ddp.all_mean(x, info) is x
    assert ddp.gather_objects({"a": 1}, info) == [{"a": 1}]
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        ddp.setup(True, torch.device("cpu"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _to_tensor(img) -> torch.Tensor:
    """PIL -> (3, H, W) in [-1, 1], without torchvision (its import is slow in a fresh process)."""
    return torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    embed_cfg, cfg = tiny_configs(epochs=2, augment=False)
    res = train(tiny_model(embed_cfg, cfg), TinyImages(n=25), tiny_pools(n=25), cfg, embed_cfg,
                out_dir=os.path.join(out, "run"), progress=False, distributed=None,  # as torchrun
                transforms=(_to_tensor, _to_tensor))
    torch.save({"state": state_of(res.model), "history": res.history},
               os.path.join(out, f"rank{rank}.pt"))


@pytest.mark.slow
def test_two_gloo_ranks_match_the_single_process_run(tmp_path):
    torch.set_num_threads(1)
    embed_cfg, cfg = tiny_configs(epochs=2, augment=False)
    single = train(tiny_model(embed_cfg, cfg), TinyImages(n=25), tiny_pools(n=25), cfg, embed_cfg,
                   progress=False, distributed=False, transforms=(_to_tensor, _to_tensor))
    # fork after the single run: the children inherit every module it imported (torch's
    # optimiser pulls in torch._dynamo lazily, seconds in a fresh process)
    ctx = mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=False,
                             start_method="fork")
    deadline = time.monotonic() + 180  # a hung collective fails the test instead of the suite
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("2-rank training did not finish within 180 s")
    ref = state_of(single.model)
    start = state_of(tiny_model(embed_cfg, cfg))
    assert not torch.allclose(ref["head.weight"], start["head.weight"])  # it did train
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        for k, v in got["state"].items():
            torch.testing.assert_close(v, ref[k], rtol=1e-5, atol=1e-6)
        # the logged loss is the mean over ranks = the single-process batch mean
        np.testing.assert_allclose([h["loss"] for h in got["history"]],
                                   [h["loss"] for h in single.history], rtol=1e-5)
    log = json.loads((tmp_path / "run" / "train.json").read_text())
    assert log["world_size"] == 2 and log["finished"] and len(log["history"]) == 2
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert ck["epoch"] == 2 and len(ck["rng"]) == 2  # every rank's RNG state
