"""Benchmark training: ``mom.train``'s epoch loop against the bare forward +
backward + SGD step of the same network on the same batches held in memory.

Same run, same network (efficientnet_lite0 + GAP + PCA head, ``trainable`` as
given, BN frozen), same tuples, batch size, image size and device. The
``train`` figure covers sampling the epoch's tuples, loading and augmenting
their images, and the optimisation steps (the per-epoch re-embedding of the
training set is timed separately); the reference skips sampling, decoding and
augmentation. Target: train >= 80% of the bare loop's triplets/s.

Data: the bundled Fashion-MNIST training split (``--per-class`` images per
class), mined with pool depths scaled to the class size.

Usage: python benchmarks/bench_train.py [--per-class 100] [--steps 10] [--image-size 64]
       [--trainable last:2] [--batch-size 42] [--device auto] [--threads N] [--repeats 2]
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

import mom
from mom.config import EmbedConfig, MiningConfig, TrainConfig
from mom.datasets import FashionMNIST
from mom.device import resolve_device
from mom.extract import extract, make_transform
from mom.mining import mine
from mom.sampler import sample_epoch
from mom.train import TupleImages, build_model, freeze_batchnorm, make_optimizer, train, tuple_loss


def epoch_batches(model, ds, pools, cfg: TrainConfig, device) -> tuple[list, float]:
    """The batches of train's first epoch, decoded and augmented once, as tensors,
    and the seconds that loading + augmenting them took."""
    meta = model.backbone.meta
    emb = extract(model, ds, make_transform(meta, cfg.image_size), device=device, progress=False)
    tup = sample_epoch(pools.select(cfg.pools), emb, cfg.tuples_per_epoch, cfg.hard_negatives,
                       cfg.n_negatives, np.random.default_rng(cfg.seed))
    ids = np.concatenate([tup.anchor[:, None], tup.positive[:, None], tup.negative], axis=1)
    items = TupleImages(ds, ids, tup.weight, make_transform(meta, cfg.image_size, train=cfg.augment))
    loader = torch.utils.data.DataLoader(items, batch_size=cfg.batch_size, drop_last=True)
    t0 = time.perf_counter()
    batches = [(x.to(device), w.to(device)) for x, w in loader]
    return batches, time.perf_counter() - t0


def bare_steps(model, batches, cfg: TrainConfig) -> float:
    """Seconds for forward + loss + backward + SGD step over in-memory batches."""
    opt, _ = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
    model.train()
    freeze_batchnorm(model)
    t0 = time.perf_counter()
    for x, w in batches:
        z = model(x.flatten(0, 1)).view(x.shape[0], x.shape[1], -1)  # (B, 2+K, D)
        loss = tuple_loss(z, w, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        float(loss.detach())  # the host sync train makes to check the loss
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--steps", type=int, default=10, help="optimisation steps timed")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=42)
    ap.add_argument("--trainable", default="last:2", help="as params/default.yaml")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--repeats", type=int, default=2, help="alternating timings, best of each")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    ds = FashionMNIST("train", per_class=args.per_class)
    embed_cfg = EmbedConfig(image_size=args.image_size, device=str(device))
    cfg = TrainConfig(epochs=1, batch_size=args.batch_size, tuples_per_epoch=args.steps * args.batch_size,
                      image_size=args.image_size, trainable=args.trainable, device=str(device))

    feats = mom.embed(ds, embed_cfg, progress=False)  # (N, C) mining descriptors
    k_pos = max(5, args.per_class // 5)  # docs/method.md §15: depths scale with the class size
    pools = mine(feats, MiningConfig(k_pos=k_pos, k_neg=len(ds) // 2, pool_size=50))
    initial = build_model(embed_cfg, cfg, init_features=feats)

    batches, t_load = epoch_batches(copy.deepcopy(initial), ds, pools, cfg, device)
    bare_steps(copy.deepcopy(initial), batches[:1], cfg)  # warm-up (allocator, kernels)
    t_bare, t_train = [], []
    for _ in range(args.repeats):  # alternate, so both see the same machine load
        t_bare.append(bare_steps(copy.deepcopy(initial), batches, cfg))
        hist = train(copy.deepcopy(initial), ds, pools, cfg, embed_cfg, progress=False).history[0]
        t_train.append(hist["sample_s"] + hist["train_s"])
    t_bare, t_train = min(t_bare), min(t_train)

    n = hist["tuples"]
    res = {"device": str(device), "images": len(ds), "anchors": len(pools), "steps": hist["steps"],
           "batch_size": cfg.batch_size, "image_size": cfg.image_size, "trainable": cfg.trainable,
           "threads": torch.get_num_threads(), "train_triplets_s": n / t_train,
           "bare_triplets_s": len(batches) * cfg.batch_size / t_bare,
           "sample_s": hist["sample_s"], "load_augment_s": t_load, "reembed_s": hist["embed_s"]}
    res["ratio"] = res["train_triplets_s"] / res["bare_triplets_s"]
    print(f"efficientnet_lite0+gap, trainable {cfg.trainable}, on {device}: {len(ds)} images, "
          f"{len(pools)} anchors, {hist['steps']} steps of {cfg.batch_size} triplets at "
          f"{cfg.image_size}px, torch threads {res['threads']}")
    print(f"  bare fwd+bwd+step (batches in memory): {res['bare_triplets_s']:7.1f} triplets/s")
    print(f"  mom.train (sample+load+augment+step):  {res['train_triplets_s']:7.1f} triplets/s")
    print(f"  ratio train / bare: {100 * res['ratio']:.1f}%  (target >= 80%; best of {args.repeats})")
    print(f"  loading + augmenting its {n * (2 + cfg.n_negatives)} images, timed alone: {t_load:.2f} s; "
          f"sampling: {res['sample_s']:.3f} s")
    print(f"  per-epoch re-embedding of the {len(ds)} training images: {res['reembed_s']:.1f} s "
          "(not in either figure)")
    return res


if __name__ == "__main__":
    main()
