"""Retrieval evaluation (Oxford5k / Paris6k and their revisited versions).

For the retrieval datasets the pipeline mines and trains on the unlabeled
database images and scores a model by mAP: the cropped queries ranked against
the database (docs/method.md §11). Which datasets are benchmarks, and loading one, is
the data layer's (:func:`mom.datasets.factory.is_retrieval`, ``load_benchmark``). Mining on the very collection that is searched is
transductive, as an unsupervised method may be; the paper trains on a separate
collection, which ``data.train_root`` (an image folder, labels unused) selects.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["retrieval_metrics", "evaluate_retrieval"]


def retrieval_metrics(query_emb: np.ndarray, db_emb: np.ndarray, gnd, protocol: str) -> dict:
    """mAP in percent of queries ``(Q, d)`` against a database ``(N, d)``.

    Revisited protocol: ``map_easy``, ``map_medium``, ``map_hard`` and ``map``
    (= medium, the setting most often quoted). Classic: ``map`` alone.
    """
    from .metrics import mean_average_precision, rank_database, revisited_map
    ranks = rank_database(query_emb, db_emb)  # (Q, N)
    if protocol == "revisited":
        m = revisited_map(ranks, gnd)
        return {"map_easy": m["easy"], "map_medium": m["medium"], "map_hard": m["hard"],
                "map": m["medium"]}
    if protocol == "classic":
        return {"map": mean_average_precision(ranks, gnd)}
    raise ValueError(f"unknown ground-truth protocol {protocol!r}")


def evaluate_retrieval(embed_fn: Callable, benchmark) -> tuple[dict, np.ndarray]:
    """(metrics, database embeddings) with ``embed_fn(dataset) -> (n, d)``."""
    queries = embed_fn(benchmark.queries)  # (Q, d)
    database = embed_fn(benchmark.database)  # (N, d)
    return retrieval_metrics(queries, database, benchmark.gnd, benchmark.protocol), database
