"""Fashion-MNIST with the CUB protocol: classes 0-4 train, classes 5-9 test.

Two sources:
- ``"bundled"`` (offline default): the first 1 000 images of each class of the
  official training file, shipped as ``mom/data/fashion_mnist_subset.npz``
  (built by ``scripts/make_fashion_subset.py``; MIT licence in
  ``mom/data/LICENSE-fashion-mnist.txt``).
- ``"full"``: the official IDX files, training file then t10k file
  concatenated (70 000 images), then the split's classes selected, so each
  split has 35 000 images. Labels keep the original class ids (5-9 on test),
  as CUB keeps class_id - 1.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import ArrayDataset, select_per_class
from .idx import read_idx

__all__ = ["FashionMNIST", "FASHION_CLASSES", "BUNDLED_PATH", "DEFAULT_ROOT",
           "load_fashion_arrays", "select_per_class"]

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
SPLIT_CLASSES = {"train": (0, 1, 2, 3, 4), "test": (5, 6, 7, 8, 9)}
DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"  # Debian: dataset-fashion-mnist
BUNDLED_PATH = Path(__file__).resolve().parent.parent / "data" / "fashion_mnist_subset.npz"
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        for base in (folder, folder / "FashionMNIST" / "raw"):  # torchvision's layout too
            if (base / name).is_file():
                return base / name
    return None


def read_fashion_idx(root: str | os.PathLike, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 28, 28) uint8 and labels (n,) int64 of ``part`` ("train" | "t10k")."""
    root = Path(root)
    found = [_find(root, stem) for stem in IDX_FILES[part]]
    missing = [stem for stem, f in zip(IDX_FILES[part], found) if f is None]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST file(s) {', '.join(m + '[.gz]' for m in missing)} not found in {root}. "
            f"Install them with `apt-get install dataset-fashion-mnist` (files go to "
            f"{DEFAULT_ROOT}), or fetch them elsewhere with "
            f"torchvision.datasets.FashionMNIST(root, download=True) and pass that root.")
    images, labels = read_idx(found[0]), read_idx(found[1])
    if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{found[0]}: expected uint8 images (n, 28, 28) and labels (n,), "
                         f"got {images.dtype} {images.shape} and {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{found[0]} has {len(images)} images but {found[1]} "
                         f"has {len(labels)} labels")
    return images, labels.astype(np.int64)


def load_fashion_arrays(source: str = "bundled", root=None) -> tuple[np.ndarray, np.ndarray]:
    """All images (n, 28, 28) uint8 and labels (n,) int64 of a source, all classes."""
    if source == "bundled":
        if root is not None:
            raise ValueError("root is only used with source='full' (bundled data ships "
                             "with the package)")
        with np.load(BUNDLED_PATH) as z:
            return z["images"], z["labels"].astype(np.int64)
    if source == "full":
        root = DEFAULT_ROOT if root is None else root
        parts = [read_fashion_idx(root, part) for part in ("train", "t10k")]
        return (np.concatenate([p[0] for p in parts]),
                np.concatenate([p[1] for p in parts]))
    raise ValueError(f"unknown Fashion-MNIST source {source!r}: use 'bundled' or 'full'")


class FashionMNIST(ArrayDataset):
    """Fashion-MNIST split ``"train"`` (classes 0-4) or ``"test"`` (classes 5-9).

    ``classes`` (train split only): which of classes 0-4 form it (default all five).
    Example: ``FashionMNIST("train", per_class=100)`` -> 500 images, labels 0-4.
    """

    class_names = FASHION_CLASSES

    def __init__(self, split: str = "train", source: str = "bundled", root=None,
                 per_class: int | None = None, classes=None):
        if split not in SPLIT_CLASSES:
            raise ValueError(f"unknown Fashion-MNIST split {split!r}: use 'train' or 'test'")
        wanted = SPLIT_CLASSES[split]
        if classes is not None and split == "train":
            classes = tuple(int(c) for c in classes)
            bad = [c for c in classes if c not in wanted]
            if bad or len(set(classes)) != len(classes) or not classes:
                raise ValueError(f"Fashion-MNIST training classes {list(classes)}: expected distinct "
                                 f"ids among {list(wanted)} (the test split keeps classes 5-9)")
            wanted = tuple(sorted(classes))
        images, labels = load_fashion_arrays(source, root)
        keep = select_per_class(labels, wanted, per_class)
        suffix = "" if per_class is None else f"-{per_class}pc"
        if wanted != SPLIT_CLASSES[split]:
            suffix += "-c" + "".join(map(str, wanted))
        super().__init__(images[keep], labels[keep], name=f"fashion_mnist-{source}-{split}{suffix}")
        self.split, self.source = split, source
