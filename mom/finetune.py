"""Fine-tuning in the public shape: ``mom.fit(model_or_cfg, dataset, pools, cfg)``.

A thin front to :func:`mom.train.train` (the loop, its checkpoints and resumption live
there). Given a RunConfig instead of a model, ``fit`` first builds the initial model as
``mom run`` does (docs/method.md §9): the raw descriptors of ``dataset``
(:func:`mom.pipeline.embed_split`), the network's own pooling of them
(:func:`mom.pipeline.head_features`) and :func:`mom.model.build_model` with its PCA head.
The module is ``finetune`` so that ``mom.fit`` stays this function.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from .config import EmbedConfig, RunConfig, TrainConfig

__all__ = ["fit"]


def fit(model_or_cfg: Any, dataset, pools, cfg: TrainConfig | None = None, *,
        embed_cfg: EmbedConfig | None = None, device: str | None = None, progress: bool = True,
        out_dir: str | Path | None = None, resume: bool = False, cache_dir=None,
        eval_fn: Callable | None = None, distributed: bool | None = None):
    """Fine-tune on tuples from ``pools`` (labels of ``dataset`` unused).

    Args:
        model_or_cfg: a built model (e.g. :func:`mom.model.build_model`), or a RunConfig:
            the model is then built from its ``embed`` and ``train`` sections, the head
            initialised by the PCA of ``dataset``'s descriptors (cached in ``cache_dir``).
        cfg: the TrainConfig; None = the RunConfig's ``train`` (required with a model).
        embed_cfg: the EmbedConfig the model was built with (recorded with its weights;
            its batch size re-embeds the images each epoch); None = the RunConfig's
            ``embed`` (required with a model).
        device: overrides ``cfg.device`` (and the embedding's device) when given.
        out_dir, resume, eval_fn, distributed: as :func:`mom.train.train`.
    Returns ``mom.train.TrainResult(model, history)``.
    Example: ``result = mom.fit(cfg, train_ds, pools)`` with ``cfg = mom.load_params("smoke")``.
    """
    from .train import train
    run_cfg = model_or_cfg if isinstance(model_or_cfg, RunConfig) else None
    if run_cfg is not None:
        cfg = run_cfg.train if cfg is None else cfg
        embed_cfg = run_cfg.embed if embed_cfg is None else embed_cfg
    if cfg is None or embed_cfg is None:
        raise ValueError("fit: with a built model, pass its TrainConfig (cfg) and the EmbedConfig "
                         "it was built with (embed_cfg), or pass a RunConfig instead of the model")
    if device is not None:
        cfg = dataclasses.replace(cfg, device=device)
        embed_cfg = dataclasses.replace(embed_cfg, device=device)
    if run_cfg is None:
        model = model_or_cfg
    else:
        model = _initial_model(dataclasses.replace(run_cfg, embed=embed_cfg), dataset, cache_dir,
                               progress)
    return train(model, dataset, pools, cfg, embed_cfg, out_dir=out_dir, resume=resume,
                 progress=progress, eval_fn=eval_fn, distributed=distributed)


def _initial_model(cfg: RunConfig, dataset, cache_dir, progress: bool):
    """The untrained model of ``cfg`` on ``dataset``: the pipeline's initial stage."""
    from .model import build_model
    from .pipeline import embed_split, head_features
    raw = embed_split(cfg, dataset, cache_dir=cache_dir, progress=progress, desc="embed train")[1]
    init = head_features(cfg, dataset, raw, cache_dir=cache_dir, progress=progress,
                         desc="embed train (head init)")  # (N, C)
    return build_model(cfg.embed, cfg.train, init_features=init)
