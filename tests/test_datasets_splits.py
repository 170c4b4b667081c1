"""The split policy (mom/datasets/splits.py); retrieval data: tests/test_pipeline.py
(test_train_split_is_the_runs_training_images)."""
import numpy as np

from mom.config import load_params
from mom.datasets.splits import build_splits, train_split


def test_the_public_build_splits_is_this_one():
    import mom
    import mom.datasets
    import mom.pipeline
    assert mom.build_splits is build_splits
    assert mom.datasets.build_splits is build_splits and mom.datasets.train_split is train_split
    assert mom.pipeline.build_splits is build_splits  # what run uses


def test_labelled_data_train_on_one_half_of_the_classes_and_test_on_the_other():
    cfg = load_params("smoke")
    train, test = build_splits(cfg)
    assert train.fingerprint() == train_split(cfg).fingerprint()
    seen, unseen = set(np.asarray(train.labels).tolist()), set(np.asarray(test.labels).tolist())
    assert seen and unseen and not seen & unseen
