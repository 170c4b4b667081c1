"""Benchmark the study's shared work: a multi-seed study of one setting against the
same trainings run one by one, measured in the same run.

Reference (timed here, same config): one embed + mine + initial evaluation (the
work a study shares), and one seed of the two trainings (euclidean, mom), each
followed by its evaluation on the test split. Study: ``mom.study`` with
``--seeds`` seeds and ``select="none"`` in a fresh folder.

Target: study <= 1.2 x (seeds x the two trainings + their evaluations) + one
embed/mine. The printed ratio is study / (seeds x pair + prep); the target is
met when the study is at most the printed bound.

Usage: python benchmarks/bench_study.py [--params smoke] [--per-class 40] [--seeds 5]
       [--threads N]
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import torch

from mom.config import apply_overrides, load_params
from mom.datasets.splits import build_splits
from mom.model import build_model
from mom.pipeline import embed_split, evaluate_model, head_features
from mom.mining import mine
from mom.studies import StudyConfig, study
from mom.train import train


def reference(cfg) -> tuple[float, float]:
    """(seconds of embed + mine + initial evaluation, seconds of one seed's two
    trainings with their evaluations)."""
    t0 = time.perf_counter()
    train_ds, test_ds = build_splits(cfg)
    features, raw = embed_split(cfg, train_ds, progress=False)
    head = head_features(cfg, train_ds, raw, progress=False)
    pools = mine(features, cfg.mining, progress=False)
    evaluate_model(build_model(cfg.embed, cfg.train, init_features=head), test_ds, cfg,
                   progress=False)
    t1 = time.perf_counter()
    for row in ("euclidean", "mom"):
        tcfg = dataclasses.replace(cfg.train, pools=row)
        model = build_model(cfg.embed, tcfg, init_features=head)
        result = train(model, train_ds, pools, tcfg, cfg.embed, progress=False)
        evaluate_model(result.model, test_ds, cfg, progress=False)
    return t1 - t0, time.perf_counter() - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="smoke")
    ap.add_argument("--per-class", type=int, default=40, help="images per class (data.per_class)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = apply_overrides(load_params(args.params), {"data.per_class": args.per_class,
                                                     "train.tuples_per_epoch": None})
    prep, pair = reference(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        study(cfg, tmp, StudyConfig(seeds=args.seeds, select="none"), progress=False)
        t_study = time.perf_counter() - t0
    bound = 1.2 * args.seeds * pair + prep
    print(f"params {args.params}, {args.per_class} images a class, {args.seeds} seeds, "
          f"{torch.get_num_threads()} threads")
    print(f"reference: embed+mine+initial {prep:.1f} s, one seed's two trainings + evaluations "
          f"{pair:.1f} s")
    print(f"study: {t_study:.1f} s; ratio study / ({args.seeds} x pair + prep) = "
          f"{t_study / (args.seeds * pair + prep):.3f}; bound 1.2 x {args.seeds} x pair + prep = "
          f"{bound:.1f} s -> {'met' if t_study <= bound else 'NOT met'}")


if __name__ == "__main__":
    main()
