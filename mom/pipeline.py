"""The whole method in one call: embed -> mine -> train -> evaluate.

``run`` evaluates three rows on the test split: the *initial* model (the
training architecture before any update), the *euclidean* baseline (trained on
Euclidean pools) and *mom* (trained on manifold pools), all from the same
features, anchors and seed. Each stage is one call into its module; this file
only orders them and records what they return.

Label-free rule: training-split labels reach nothing but
:func:`mom.mining.pool_diagnostics` (reported, never used to choose). Test
labels reach nothing but the evaluator.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from .config import RunConfig, config_to_dict
from .io import env_info, save_json, save_npy, save_npz

__all__ = ["run", "check_config", "embed_split", "embed_with_model", "evaluate_model",
           "format_results", "load_model", "METHODS"]

log = logging.getLogger(__name__)

METHODS = ("euclidean", "mom")  # trained rows, in the order they run
_NEEDS_ROOT = ("cub200", "roxford5k", "rparis6k", "folder")


def check_config(cfg: RunConfig) -> None:
    """Raise ValueError for a configuration that cannot run, before any work."""
    if cfg.data.dataset in _NEEDS_ROOT and not cfg.data.root:
        raise ValueError(f"data.root is required for dataset {cfg.data.dataset!r} "
                         f"(params {cfg.name!r}): pass --data-root DIR or --set data.root=DIR")
    if cfg.data.root and not Path(cfg.data.root).exists():
        raise ValueError(f"data.root {cfg.data.root!r} does not exist")
    if cfg.train.pools not in METHODS:
        raise ValueError(f"train.pools must be one of {METHODS}, got {cfg.train.pools!r}")


def _check_sizes(cfg: RunConfig, n: int, name: str) -> None:
    """The parameters that depend on the number of training images, before embedding them."""
    m, t = cfg.mining, cfg.train
    if n <= m.k_graph:
        raise ValueError(f"the training split ({name}) has {n} images, too few for "
                         f"mining.k_graph={m.k_graph} (the kNN graph needs more images than k)")
    if m.k_pos > n:
        raise ValueError(f"mining.k_pos={m.k_pos} exceeds the {n} images of the training split ({name})")
    n_tuples = t.tuples_per_epoch or n
    if n_tuples < t.batch_size:
        source = "train.tuples_per_epoch" if t.tuples_per_epoch else "one per training image"
        raise ValueError(f"{n_tuples} tuples per epoch ({source}) give no full batch of "
                         f"train.batch_size={t.batch_size}")


def embed_split(cfg: RunConfig, dataset, cache_dir=None, progress=True, desc="embed"
                ) -> tuple[np.ndarray, np.ndarray]:
    """(mining descriptors (N, D), raw pooled descriptors (N, C)) of ``dataset``.

    The mining descriptors are the raw ones PCA-whitened when ``embed.whitening``
    (learned on these images, docs/method.md §2); the raw ones initialise the PCA head.
    """
    from .extract import embed
    from .whitening import apply_whitening, learn_whitening
    raw = np.asarray(embed(dataset, cfg=dataclasses.replace(cfg.embed, whitening=False),
                           cache_dir=cache_dir, progress=progress, desc=desc), dtype=np.float32)
    if not cfg.embed.whitening:
        return raw, raw
    mean, P = learn_whitening(raw, cfg.embed.whiten_dim)
    return np.asarray(apply_whitening(raw, mean, P), dtype=np.float32), raw


def head_features(cfg: RunConfig, dataset, raw: np.ndarray, cache_dir=None,
                  progress=True, desc="embed (head init)") -> np.ndarray:
    """(N, C) descriptors that initialise the PCA head: the network's own pooling.

    They are the raw mining descriptors unless ``train.pooling`` differs
    (docs/method.md §9: mining by multi-scale R-MAC, training GoogLeNet with average pooling).
    """
    from .extract import embed
    from .model import network_embed_config
    net = network_embed_config(cfg.embed, cfg.train)
    if net == dataclasses.replace(cfg.embed, whitening=False):
        return raw
    return np.asarray(embed(dataset, cfg=net, cache_dir=cache_dir, progress=progress, desc=desc),
                      dtype=np.float32)


def embed_with_model(model, dataset, cfg: RunConfig, progress=True, desc="embed") -> np.ndarray:
    """Embeddings of ``dataset`` by a training-architecture model, test transform. (N, d)"""
    from .extract import extract, make_transform
    transform = make_transform(model.backbone.meta, cfg.train.image_size, train=False)
    return extract(model, dataset, transform, device=cfg.train.device,
                   batch_size=cfg.embed.batch_size, num_workers=cfg.embed.num_workers,
                   progress=progress, desc=desc)


def evaluate_model(model, dataset, cfg: RunConfig, progress=True,
                   desc="embed test") -> tuple[dict, np.ndarray]:
    """(metrics, embeddings) of ``model`` on a labelled ``dataset``.

    A retrieval benchmark (:func:`mom.retrieval.load_benchmark`) is scored by
    mAP of its queries against its database; the database embeddings are returned.
    """
    from .evaluate import evaluate_embeddings
    if hasattr(dataset, "gnd"):
        from .retrieval import evaluate_retrieval
        return evaluate_retrieval(
            lambda ds: embed_with_model(model, ds, cfg, progress=progress, desc=desc + (
                " queries" if ds is dataset.queries else " database")), dataset)
    emb = embed_with_model(model, dataset, cfg, progress=progress, desc=desc)  # (N, d)
    return evaluate_embeddings(emb, np.asarray(dataset.labels), cfg.eval), emb


def train_split(cfg: RunConfig, bench=None):
    """The images a run of ``cfg`` mines and trains on (no labels are read from them).

    Labelled datasets: the train split. Retrieval datasets: the image folder
    ``data.train_root`` when set, else the benchmark's unlabeled database (``bench``,
    when the caller has loaded it already). The pipeline, the CLI, the notebooks and
    the pool inspector all take a run's training images from here.
    """
    from .datasets import build_dataset
    from .retrieval import is_retrieval, load_benchmark
    if not is_retrieval(cfg.data):
        return build_dataset(cfg.data, "train")
    if cfg.data.train_root:
        folder = dataclasses.replace(cfg.data, dataset="folder", root=cfg.data.train_root)
        return build_dataset(folder, "all")
    return (bench or load_benchmark(cfg.data)).database


def build_splits(cfg: RunConfig):
    """(training images, what the test rows are scored on) for ``cfg.data``.

    Labelled datasets: :func:`train_split` and the test split. Retrieval datasets:
    :func:`train_split` and the benchmark itself (queries + ground truth).
    """
    from .datasets import build_dataset
    from .retrieval import is_retrieval, load_benchmark
    if not is_retrieval(cfg.data):
        return train_split(cfg), build_dataset(cfg.data, "test")
    bench = load_benchmark(cfg.data)
    return train_split(cfg, bench), bench


def load_model(path: str | Path, device: str = "cpu"):
    """A trained model from the ``model.pt`` that :func:`mom.train.train` writes."""
    import torch

    from .config import EmbedConfig, TrainConfig, config_from_dict
    from .extract import resolve_device
    from .train import WEIGHTS, build_model
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    ck = torch.load(path, map_location="cpu", weights_only=False)  # our own file
    if not isinstance(ck, dict) or "state_dict" not in ck or "train_config" not in ck:
        raise ValueError(f"{str(path)!r} is not a model.pt written by mom.train")
    sections = config_from_dict({"embed": ck["embed_config"], "train": ck["train_config"]},
                                where=str(path))
    embed_cfg: EmbedConfig = sections.embed
    train_cfg: TrainConfig = dataclasses.replace(sections.train, head_init="random")
    model = build_model(embed_cfg, train_cfg)  # weights replaced just below
    model.load_state_dict(ck["state_dict"])
    return model.to(resolve_device(device)).eval()


def _check_finite(name: str, metrics: dict) -> None:
    bad = {k: v for k, v in metrics.items()
           if isinstance(v, (int, float)) and not math.isfinite(v)}
    if bad:
        raise ValueError(f"{name}: non-finite metrics {bad}")


def run(cfg: RunConfig, out_dir, progress: bool = True, cache_dir=None) -> dict[str, Any]:
    """Run every stage and write ``out_dir/results.json``; return its content.

    Files: ``config.json``; ``features/`` (train descriptors, test embeddings of
    each row, test labels); ``pools.npz``; ``euclidean/`` and ``mom/`` (each
    training's checkpoint and ``train.json``); ``results.json``.
    ``cache_dir`` (optional) caches the mining descriptors across runs, keyed
    by the embed config and the dataset fingerprint.
    """
    check_config(cfg)  # before the heavy imports: bad input fails fast
    from .mining import mine, pool_diagnostics
    from .train import build_model, train

    out = Path(out_dir)
    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    def lap(stage: str, t0: float) -> None:
        timings[stage] = round(time.perf_counter() - t0, 2)
        log.info("%s done in %.1f s", stage, timings[stage])

    t0 = time.perf_counter()
    train_ds, test_ds = build_splits(cfg)
    retrieval = hasattr(test_ds, "gnd")
    if not retrieval:
        classes = np.unique(np.asarray(test_ds.labels))
        # before any heavy work: Recall@K and NMI need labelled test images of 2+ classes
        unknown = classes.min(initial=0) < 0
        if len(classes) < 2 or unknown:
            what = "unknown labels" if unknown else f"{len(classes)} class(es)"
            raise ValueError(f"test split of {cfg.data.dataset!r} ({test_ds.name}) has {what}: "
                             "Recall@K and NMI need at least 2 labelled classes")
    _check_sizes(cfg, len(train_ds), train_ds.name)
    # the first file once the data are known to be usable: bad input leaves no folder behind
    (out / "features").mkdir(parents=True, exist_ok=True)
    save_json(out / "config.json", config_to_dict(cfg))
    lap("data", t0)
    log.info("data: %d train images, %d test %s (%s)", len(train_ds),
             len(test_ds.queries) if retrieval else len(test_ds),
             "queries" if retrieval else "images", cfg.data.dataset)

    t0 = time.perf_counter()
    features, raw = embed_split(cfg, train_ds, cache_dir=cache_dir, progress=progress,
                                desc="embed train")  # (N, D)
    save_npy(out / "features" / "train.npy", features)
    init = head_features(cfg, train_ds, raw, cache_dir=cache_dir, progress=progress,
                         desc="embed train (head init)")  # (N, C)
    lap("embed", t0)

    t0 = time.perf_counter()
    pools = mine(features, cfg.mining, progress=progress)
    pools.save(out / "pools.npz")
    # the only use of training labels: reported diagnostics, never a choice
    diagnostics = {}
    if np.any(np.asarray(train_ds.labels) >= 0):  # unlabeled collections have none
        diagnostics = pool_diagnostics(pools, features, np.asarray(train_ds.labels))
        per_anchor = {k: np.asarray(v) for k, v in diagnostics.items() if np.ndim(v) > 0}
        save_npz(out / "pool_diagnostics.npz", **per_anchor)  # for the figures
        diagnostics = {k: v for k, v in diagnostics.items() if np.ndim(v) == 0}
    lap("mine", t0)
    log.info("mining: %d anchors, %d skipped", len(pools), pools.n_skipped)

    results: dict[str, Any] = {}
    t0 = time.perf_counter()
    initial = build_model(cfg.embed, cfg.train, init_features=init)  # both rows start from it
    results["initial"], emb = evaluate_model(initial, test_ds, cfg, progress=progress,
                                             desc="embed test (initial)")
    save_npy(out / "features" / "test_initial.npy", emb)
    if not retrieval:
        save_npy(out / "features" / "test_labels.npy", np.asarray(test_ds.labels))
    lap("evaluate_initial", t0)

    histories: dict[str, list] = {}
    for method in METHODS:
        t0 = time.perf_counter()
        tcfg = dataclasses.replace(cfg.train, pools=method)
        (out / method).mkdir(exist_ok=True)
        model = copy.deepcopy(initial)  # train() seeds every RNG itself
        result = train(model, train_ds, pools, tcfg, cfg.embed, out_dir=out / method,
                       progress=progress)
        histories[method] = result.history
        lap(f"train_{method}", t0)
        t0 = time.perf_counter()
        results[method], emb = evaluate_model(result.model, test_ds, cfg, progress=progress,
                                              desc=f"embed test ({method})")
        save_npy(out / "features" / f"test_{method}.npy", emb)
        lap(f"evaluate_{method}", t0)
        del model, result

    for name in ("initial", *METHODS):
        _check_finite(name, results[name])
        log.info("%-9s %s", name, _format_row(results[name]))
    timings["total"] = round(time.perf_counter() - t_start, 2)
    results.update({
        "config": config_to_dict(cfg),
        "pools": {"n_anchors": len(pools), "n_skipped": int(pools.n_skipped), **diagnostics,
                  "mean_pos_size": float(np.mean(pools.positives.sizes())),
                  "mean_neg_size": float(np.mean(pools.negatives.sizes()))},
        "history": histories,
        "data": {"train": len(train_ds),
                 "test": len(test_ds.queries) if retrieval else len(test_ds),
                 "train_fingerprint": train_ds.fingerprint(),
                 "test_fingerprint": (test_ds.database if retrieval else test_ds).fingerprint()},
        "timings_s": timings,
        "env": env_info(),
    })
    save_json(out / "results.json", results)
    return results


def _format_row(metrics: dict) -> str:
    return "  ".join(f"{k} {v:.2f}" for k, v in metrics.items() if isinstance(v, (int, float)))


def format_results(results: dict) -> str:
    """A small text table of the three rows (for the CLI)."""
    rows = [r for r in ("initial", *METHODS) if r in results]
    keys = [k for k in results[rows[0]] if isinstance(results[rows[0]][k], (int, float))]
    lines = ["row        " + "  ".join(f"{k:>9}" for k in keys)]
    for r in rows:
        lines.append(f"{r:<10} " + "  ".join(f"{results[r][k]:9.2f}" for k in keys))
    return "\n".join(lines)
