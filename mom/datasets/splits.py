"""The train/test split policy of a run: the images it mines and trains on, and what its
test rows are scored on.

``train_split`` is the one place that decides a run's training images (the pipeline, the
CLI, the studies, the notebooks and the pool inspector all take them from here);
``build_splits`` pairs them with the test side. Labelled datasets split by class
(:func:`mom.datasets.factory.build_dataset`); retrieval datasets train on an unlabeled
collection and are scored on the benchmark itself (:mod:`mom.retrieval` scores it).
"""
from __future__ import annotations

import dataclasses

from ..config import RunConfig
from . import factory

__all__ = ["train_split", "build_splits"]


def train_split(cfg: RunConfig, bench=None):
    """The images a run of ``cfg`` mines and trains on (no labels are read from them).

    Labelled datasets: the train split. Retrieval datasets: the image folder
    ``data.train_root`` when set, else the benchmark's unlabeled database (``bench``,
    when the caller has loaded it already). The pipeline, the CLI, the notebooks and
    the pool inspector all take a run's training images from here.
    """
    # build_dataset is looked up on its module when called, so that a replaced
    # mom.datasets.factory.build_dataset (tests/test_pipeline.py) is the one every split uses
    if not factory.is_retrieval(cfg.data):
        return factory.build_dataset(cfg.data, "train")
    if cfg.data.train_root:
        folder = dataclasses.replace(cfg.data, dataset="folder", root=cfg.data.train_root)
        return factory.build_dataset(folder, "all")
    return (bench or factory.load_benchmark(cfg.data)).database


def build_splits(cfg: RunConfig):
    """(training images, what the test rows are scored on) for ``cfg.data``.

    Labelled datasets: :func:`train_split` and the test split. Retrieval datasets:
    :func:`train_split` and the benchmark itself (queries + ground truth).
    """
    if not factory.is_retrieval(cfg.data):
        return train_split(cfg), factory.build_dataset(cfg.data, "test")
    bench = factory.load_benchmark(cfg.data)
    return train_split(cfg, bench), bench
