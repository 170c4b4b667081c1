"""Benchmark the peak memory of a training step: ``mom.train`` at the paper's CUB
setting against the bare forward + backward of the same batch, with and without
micro-batches (``TrainConfig.micro_batch``).

Each measurement runs in a fresh process (so its peak resident memory, Linux VmHWM,
is its own): the network (``--backbone``, all layers trainable, GAP, a 64-d head, BN
frozen) is built, then

- ``bare``: one forward + loss + backward of one batch of ``--batch-size`` triplets
  (3 images each at ``--image-size``) held in memory: the activations of one training
  batch, the reference;
- ``train``: ``mom.train.train`` for one epoch of exactly one batch on random images:
  the training set embedded by the current model, the tuples drawn, loaded, augmented,
  one step (and the guard off);
- ``train, micro_batch M``: the same with the batch's gradient accumulated over
  micro-batches of M triplets (the same step within rounding).

Printed: each peak in MiB, after the model is built ("start"), and the ratios
train / bare (target <= 1.10: training keeps nothing alive beyond one batch's
activations) and micro / whole. No dataset is needed (random images).

Usage: python benchmarks/bench_train_memory.py [--backbone efficientnet_lite0]
       [--weights none] [--image-size 227] [--batch-size 42] [--micro 14 6] [--images 126] [--threads N]
       [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

TARGET = 1.10  # train's peak / the bare step's


def _peak_mb() -> float:
    from mom.memory import peak_mb
    return peak_mb()


class RandomImages:
    """``n`` random RGB images of ``size`` pixels in 3 classes; the dataset protocol."""

    name = "random"

    def __init__(self, n: int, size: int, seed: int = 0):
        import numpy as np
        self.n, self.size, self.seed = n, size, seed
        self.labels = np.arange(n, dtype=np.int64) % 3

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        import numpy as np
        from PIL import Image
        rng = np.random.default_rng(self.seed + i)
        return Image.fromarray(rng.integers(0, 256, (self.size, self.size, 3), np.uint8)), \
            int(self.labels[i])


def _pools(n: int, seed: int = 0):
    """Every image an anchor, P+ 3 and P- 12 random others (weights 1)."""
    import numpy as np
    from mom.mining import Pools
    rng = np.random.default_rng(seed)
    pos, neg = [], []
    for a in range(n):
        others = rng.permutation(np.setdiff1d(np.arange(n), [a]))
        pos.append(others[:3])
        neg.append(others[3:15])
    off = lambda lists: np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64)
    pools = Pools(np.arange(n, dtype=np.int64), off(pos), np.concatenate(pos).astype(np.int64),
                  np.ones(3 * n, np.float32), off(neg), np.concatenate(neg).astype(np.int64))
    pools.baseline = pools
    return pools


def child(mode: str, args) -> dict:
    """One measurement in this (fresh) process."""
    import torch

    from mom.config import EmbedConfig, TrainConfig
    from mom.train import build_model, freeze_batchnorm, train, tuple_loss

    if args.threads:
        torch.set_num_threads(args.threads)
    micro = int(mode.split(":")[1]) if mode.startswith("micro:") else None
    embed_cfg = EmbedConfig(backbone=args.backbone, weights=args.weights, pooling="gap",
                            image_size=args.image_size, batch_size=32, device="cpu")
    cfg = TrainConfig(embedding_dim=64, head_init="random", trainable="all", freeze_bn=True,
                      epochs=1, batch_size=args.batch_size, tuples_per_epoch=args.batch_size,
                      image_size=args.image_size, augment=True, device="cpu", guard="none",
                      hard_negatives=10, micro_batch=micro)
    torch.manual_seed(0)
    model = build_model(embed_cfg, cfg)
    start = _peak_mb()
    if mode == "bare":
        model.train()
        freeze_batchnorm(model)
        x = torch.randn(args.batch_size * 3, 3, args.image_size, args.image_size)
        w = torch.ones(args.batch_size)
        z = model(x).view(args.batch_size, 3, -1)
        tuple_loss(z, w, cfg).backward()
    else:
        train(model, RandomImages(args.images, args.image_size + 29), _pools(args.images),
              cfg, embed_cfg, progress=False)
    return {"mode": mode, "start_mb": start, "peak_mb": _peak_mb()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--weights", default=None,
                   help="EmbedConfig.weights: a file, or none (random init: memory does not "
                        "depend on the values, e.g. for googlenet_caffe)")
    p.add_argument("--image-size", type=int, default=227)
    p.add_argument("--batch-size", type=int, default=42, help="triplets a step")
    p.add_argument("--micro", type=int, nargs="*", default=[14, 6], help="micro-batch sizes")
    p.add_argument("--images", type=int, default=126, help="training images (random)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args)))
        return 0
    if args.images < args.batch_size + 15:
        p.error(f"--images {args.images}: needs at least --batch-size + 15 (the pools' size)")
    rows = []
    passthrough = [f"--backbone={args.backbone}", f"--image-size={args.image_size}",
                   *([f"--weights={args.weights}"] if args.weights else []),
                   f"--batch-size={args.batch_size}", f"--images={args.images}",
                   f"--threads={args.threads}"]
    for mode in ["bare", "train", *[f"micro:{m}" for m in args.micro]]:
        out = subprocess.run([sys.executable, __file__, "--child", mode, *passthrough],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{mode:>10}: start {r['start_mb']:8.0f} MiB   peak {r['peak_mb']:8.0f} MiB",
              flush=True)
    bare, whole = rows[0]["peak_mb"], rows[1]["peak_mb"]
    ratio = whole / bare
    print(f"train / bare step: {ratio:.2f} (target <= {TARGET:.2f}: "
          f"{'met' if ratio <= TARGET else 'NOT met'})")
    for r in rows[2:]:
        print(f"train {r['mode'].replace(':', ' ')} / train whole batch: {r['peak_mb'] / whole:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "train_over_bare": ratio,
                                               "args": vars(args)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
