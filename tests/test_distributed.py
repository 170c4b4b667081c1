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


_GROUP_FREED = """
import os, sys, weakref
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[1], RANK="0", WORLD_SIZE="1")
import torch
import torch.distributed as dist
from mom import distributed as ddp
assert "torch._dynamo" not in sys.modules, "this check needs a process without torch._dynamo"
info = ddp.setup(True, torch.device("cpu"))
group = weakref.ref(dist.group.WORLD)
import torch._dynamo  # as torchvision, timm or the optimiser do it, inside the group
ddp.teardown(info)
print("freed" if group() is None else "alive")
"""


def test_teardown_frees_the_group_when_torch_dynamo_is_imported_inside_it():
    # A group that outlives destroy_process_group leaves gloo's threads running at exit:
    # the rank then dies with "terminate called without an active exception" (exit -6).
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-c", _GROUP_FREED, str(_free_port())], env=_fresh_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["freed"]


def _fresh_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh single process that imports this checkout's mom: no
    torchrun variables inherited."""
    from pathlib import Path

    import mom
    env = dict(os.environ, PYTHONPATH=str(Path(mom.__file__).parent.parent), **extra)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _to_tensor(img) -> torch.Tensor:
    """PIL -> (3, H, W) in [-1, 1], without torchvision (its import is slow in a fresh process)."""
    return torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1


def _worker(rank: int, world: int, port: int, out: str, micro_batch: int | None = None) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    embed_cfg, cfg = tiny_configs(epochs=2, augment=False, micro_batch=micro_batch)
    res = train(tiny_model(embed_cfg, cfg), TinyImages(n=25), tiny_pools(n=25), cfg, embed_cfg,
                out_dir=os.path.join(out, "run"), progress=False, distributed=None,  # as torchrun
                transforms=(_to_tensor, _to_tensor))
    torch.save({"state": state_of(res.model), "history": res.history},
               os.path.join(out, f"rank{rank}.pt"))


@pytest.mark.slow
@pytest.mark.parametrize("micro_batch", [None, 2])  # 2: each rank's 3 tuples as 2 + 1, no_sync
def test_two_gloo_ranks_match_the_single_process_run(tmp_path, micro_batch):
    torch.set_num_threads(1)
    embed_cfg, cfg = tiny_configs(epochs=2, augment=False)
    single = train(tiny_model(embed_cfg, cfg), TinyImages(n=25), tiny_pools(n=25), cfg, embed_cfg,
                   progress=False, distributed=False, transforms=(_to_tensor, _to_tensor))
    # fork after the single run: the children inherit every module it imported (torch's
    # optimiser pulls in torch._dynamo lazily, seconds in a fresh process)
    ctx = mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path), micro_batch), nprocs=2,
                             join=False, start_method="fork")
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


# ----------------------------------------------------------------------------- sharded embedding
def _spawn(worker, args: tuple, nprocs: int = 2, timeout: float = 180) -> None:
    """Run ``worker(rank, *args)`` in ``nprocs`` forked processes; a hung collective fails."""
    ctx = mp.start_processes(worker, args=args, nprocs=nprocs, join=False, start_method="fork")
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"{nprocs} ranks did not finish within {timeout} s")


def _embed_setup():
    from mom.config import EmbedConfig
    from mom.datasets import ArrayDataset
    imgs = np.random.default_rng(0).integers(0, 256, size=(11, 20, 20), dtype=np.uint8)
    # 11 images in batches of 4: 3 batches, rank 0 gets [0, 4), rank 1 [4, 11)
    return ArrayDataset(imgs, np.arange(11), name="tiny"), EmbedConfig(image_size=32, batch_size=4,
                                                                       device="cpu")


def _as_rank(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)


def _count_extract(out: str, rank: int):
    """Wrap mom.extract._extract so that each call appends a line to out/calls-rank<r>."""
    import mom.extract as ex
    real = ex._extract

    def counted(*args, **kw):
        with open(os.path.join(out, f"calls-rank{rank}"), "a") as fh:
            fh.write(f"{kw.get('rows')}\n")
        return real(*args, **kw)
    ex._extract = counted


def _embed_worker(rank: int, world: int, port: int, out: str) -> None:
    import mom.extract as ex
    from mom.backbones import build_backbone
    from mom.model import EmbeddingNet
    from mom.pooling import Pooling
    _as_rank(rank, world, port)
    ds, cfg = _embed_setup()
    # distributed=None (the default) with the torchrun environment set
    res = {"cache": ex.embed(ds, cfg, cache_dir=os.path.join(out, "cache"), progress=False),
           "memory": ex.embed(ds, cfg, progress=False, distributed=True),
           "file": ex.embed_to_file(ds, os.path.join(out, "f.npy"), cfg, progress=False)}
    bb = build_backbone(cfg.backbone)
    res["model"] = ex.extract_to_file(EmbeddingNet(bb, Pooling("gem")), ds,
                                      ex.make_transform(bb.meta, 32), os.path.join(out, "m.npy"),
                                      key="gem", device="cpu", batch_size=4, progress=False)
    for name, arr in res.items():
        np.save(os.path.join(out, f"{name}-rank{rank}.npy"), np.asarray(arr))


@pytest.mark.slow
def test_two_gloo_ranks_embed_the_single_process_bits(tmp_path, monkeypatch):
    import mom.extract as ex
    from mom.backbones import build_backbone
    from mom.model import EmbeddingNet
    from mom.pooling import Pooling
    torch.set_num_threads(1)
    ds, cfg = _embed_setup()
    ref = np.asarray(ex.embed(ds, cfg, progress=False, distributed=False))
    bb = build_backbone(cfg.backbone)
    ref_model = ex.extract(EmbeddingNet(bb, Pooling("gem")), ds, ex.make_transform(bb.meta, 32),
                           device="cpu", batch_size=4, progress=False)
    _spawn(_embed_worker, (2, _free_port(), str(tmp_path)))
    for rank in range(2):
        for name in ("cache", "memory", "file", "model"):
            got = np.load(tmp_path / f"{name}-rank{rank}.npy")
            want = ref_model if name == "model" else ref
            assert got.dtype == np.float32 and got.shape == want.shape, name
            assert np.array_equal(got, want), f"{name} on rank {rank} differs from one process"
    assert not list(tmp_path.rglob("*.shards")) and not list(tmp_path.rglob("*.tmp"))
    np.testing.assert_array_equal(np.load(tmp_path / "f.npy"), ref)
    monkeypatch.setattr(ex, "_extract", lambda *a, **k: pytest.fail("the cache entry was not used"))
    hit = ex.embed(ds, cfg, cache_dir=tmp_path / "cache", progress=False, distributed=False)
    assert isinstance(hit, np.memmap) and np.array_equal(hit, ref)  # a valid entry, sidecar included


def _killed_worker(rank: int, world: int, port: int, out: str, kill: bool) -> None:
    import signal

    import mom.extract as ex
    import mom.io
    _as_rank(rank, world, port)
    _count_extract(out, rank)
    ds, cfg = _embed_setup()
    if kill and rank == 1:  # killed while writing its shard, after rank 0 finished its own
        def dies(path, array):
            folder = os.path.dirname(path)
            while not os.path.exists(os.path.join(folder, "rank0-of-2.json")):
                time.sleep(0.05)
            with open(os.path.join(folder, ".rank1-of-2.npy.x1y2z3.tmp"), "wb") as fh:
                fh.write(b"\x93NUMPY half of a shard")  # what atomic_write leaves when killed
            with open(path, "wb") as fh:
                fh.write(b"\x93NUMPY")  # and a truncated shard file, as a non-atomic copy would
            os.kill(os.getpid(), signal.SIGKILL)
        mom.io.save_npy = dies
    feats = ex.embed(ds, cfg, cache_dir=os.path.join(out, "cache"), progress=False)
    np.save(os.path.join(out, f"feats-rank{rank}.npy"), np.asarray(feats))


@pytest.mark.slow
def test_a_killed_ranks_shard_alone_is_redone(tmp_path):
    import mom.extract as ex
    torch.set_num_threads(1)
    ds, cfg = _embed_setup()
    ref = np.asarray(ex.embed(ds, cfg, progress=False, distributed=False))
    with pytest.raises(mp.ProcessExitedException):
        ctx = mp.start_processes(_killed_worker, args=(2, _free_port(), str(tmp_path), True), nprocs=2,
                                 join=False, start_method="fork")
        deadline = time.monotonic() + 180
        while not ctx.join(timeout=1, grace_period=1):  # rank 1 dies; rank 0 is then terminated
            assert time.monotonic() < deadline, "the killed run did not end"
    shards = next((tmp_path / "cache").glob("*.shards"))
    assert sorted(p.name for p in shards.iterdir()) == [
        ".rank1-of-2.npy.x1y2z3.tmp", "rank0-of-2.json", "rank0-of-2.npy", "rank1-of-2.npy"]
    assert not list((tmp_path / "cache").glob("embed-*.npy"))  # nothing merged
    for f in tmp_path.glob("calls-rank*"):
        f.unlink()

    _spawn(_killed_worker, (2, _free_port(), str(tmp_path), False))
    assert not (tmp_path / "calls-rank0").exists()  # rank 0's complete shard was reused
    assert (tmp_path / "calls-rank1").read_text().split() == ["range(4,", "11)"]  # rank 1's redone
    for rank in range(2):
        assert np.array_equal(np.load(tmp_path / f"feats-rank{rank}.npy"), ref)
    assert [p.name for p in (tmp_path / "cache").iterdir()] != [] and not shards.exists()
    assert not list((tmp_path / "cache").glob(".*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("whitening", [False, True])
def test_mom_embed_under_torchrun_writes_the_single_process_file(tmp_path, whitening):
    import subprocess
    import sys
    # smoke: 60 training images; batches of 16 give each of the 2 ranks 2 batches
    args = ["-q", "embed", "--params", "smoke", "--set", "embed.batch_size=16",
            "--set", f"embed.whitening={str(whitening).lower()}"]
    # the reference in a process of its own with the same threads: the whitening's
    # eigendecomposition (numpy's BLAS) rounds differently with another thread count
    env = _fresh_env(OMP_NUM_THREADS="1")
    runs = {"one": [sys.executable, "-m", "mom"],
            "two": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    "-m", "mom"]}
    for name, launch in runs.items():
        proc = subprocess.run(launch + args + ["--out", str(tmp_path / f"{name}.npy"),
                                               "--labels-out", str(tmp_path / f"{name}-labels.npy")],
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.count("wrote ") == 1, proc.stdout  # under torchrun: rank 0 alone
    one, two = np.load(tmp_path / "one.npy"), np.load(tmp_path / "two.npy")
    assert two.dtype == np.float32 and two.shape == one.shape == (60, 59 if whitening else 1280)
    assert np.array_equal(one, two)
    np.testing.assert_array_equal(np.load(tmp_path / "one-labels.npy"), np.load(tmp_path / "two-labels.npy"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one-labels.npy", "one.npy", "two-labels.npy",
                                                          "two.npy"]  # no shard or raw file left
