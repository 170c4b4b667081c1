"""``build_dataset``: the dataset named by a ``DataConfig``, for one split.

Splits per dataset:
- ``fashion_mnist``, ``omniglot``, ``cub200``: "train" (first half of the classes) |
  "test" (second half).
  ``per_class`` takes the first images of each class: exactly that many for
  Fashion-MNIST and Omniglot (error if fewer), at most that many for CUB and folders.
- ``roxford5k``, ``rparis6k``: "database" | "queries" (cropped); "train" is the
  database (unlabeled mining collection). Retrieval evaluation needs the
  queries and ``gnd``: use ``RevisitedOxfordParis`` directly.
- ``folder``: ``root/train`` and ``root/test`` when both exist; otherwise the
  sorted classes of ``root`` split like CUB (first ceil(C/2) classes train,
  the rest test); "all" is the whole folder.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import DataConfig
from .base import ImageDataset, Subset, select_per_class
from .cub import CUB200
from .fashion_mnist import FashionMNIST
from .folder import ImageFolder
from .omniglot import Omniglot
from .oxford import RevisitedOxfordParis

__all__ = ["build_dataset", "DATASETS", "RETRIEVAL_DATASETS", "is_retrieval", "load_benchmark"]

DATASETS = ("fashion_mnist", "omniglot", "cub200", "roxford5k", "rparis6k", "folder")
# scored by mAP of cropped queries against a database (mom/retrieval.py), not by Recall@K / NMI
RETRIEVAL_DATASETS = ("roxford5k", "rparis6k")


def is_retrieval(data_cfg: DataConfig) -> bool:
    """True when the dataset is scored by mAP on queries rather than Recall@K / NMI."""
    return data_cfg.dataset in RETRIEVAL_DATASETS


def load_benchmark(data_cfg: DataConfig) -> RevisitedOxfordParis:
    """The benchmark (queries, database, ground truth) named by ``data_cfg``."""
    if not is_retrieval(data_cfg):
        raise ValueError(f"{data_cfg.dataset!r} is not a retrieval dataset "
                         f"({', '.join(RETRIEVAL_DATASETS)})")
    if data_cfg.root is None:
        raise ValueError(f"dataset {data_cfg.dataset!r} needs data.root (the folder holding it)")
    return RevisitedOxfordParis(data_cfg.root, data_cfg.dataset, download=data_cfg.download)


def _folder(root: Path, split: str) -> ImageDataset:
    if (root / "train").is_dir() and (root / "test").is_dir():
        if split not in ("train", "test"):
            raise ValueError(f"{root} holds train/ and test/: split must be 'train' or 'test', "
                             f"got {split!r}")
        return ImageFolder(root / split, name=f"folder-{root.name}-{split}")
    ds = ImageFolder(root)
    if split == "all":
        return ds
    if split not in ("train", "test"):
        raise ValueError(f"unknown folder split {split!r}: use 'train', 'test' or 'all'")
    if not ds.class_names:
        if split == "train":
            return ds
        raise ValueError(f"{root} has no class subfolders, so there is no labeled test split")
    if len(ds.class_names) < 2 and split == "test":
        raise ValueError(f"folder dataset {str(root)!r} has only 1 class folder "
                         f"({ds.class_names[0]}): train gets the first half of the classes and "
                         "test the rest, so train and test need at least 2 class folders in all "
                         "(or train/ and test/ subfolders)")
    n_train = (len(ds.class_names) + 1) // 2
    in_split = ds.labels < n_train if split == "train" else ds.labels >= n_train
    return Subset(ds, np.flatnonzero(in_split), name=f"{ds.name}-{split}")


def _cap(ds: ImageDataset, per_class: int | None) -> ImageDataset:
    """At most the first ``per_class`` items of each label (file order kept)."""
    if per_class is None:
        return ds
    keep = select_per_class(ds.labels, np.unique(ds.labels), per_class, strict=False)
    if len(keep) == len(ds):
        return ds
    return Subset(ds, keep, name=f"{ds.name}-{per_class}pc")


def build_dataset(data_cfg: DataConfig, split: str) -> ImageDataset:
    """The ``split`` of the dataset ``data_cfg.dataset`` (see the module docstring)."""
    name = data_cfg.dataset
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}")
    if name == "fashion_mnist":
        return FashionMNIST(split, source=data_cfg.source, root=data_cfg.root,
                            per_class=data_cfg.per_class, classes=data_cfg.classes)
    if name == "omniglot":
        return Omniglot(split, root=data_cfg.root, per_class=data_cfg.per_class)
    if data_cfg.root is None:
        raise ValueError(f"dataset {name!r} needs data.root (the folder holding it)")
    if name == "cub200":
        return _cap(CUB200(data_cfg.root, split, download=data_cfg.download), data_cfg.per_class)
    if name == "folder":
        return _cap(_folder(Path(data_cfg.root), split), data_cfg.per_class)
    if data_cfg.per_class is not None:
        raise ValueError(f"data.per_class needs classes; {name!r} has none (set it to null)")
    if split not in ("database", "queries", "train"):
        raise ValueError(f"{name}: split must be 'database', 'queries' or 'train' (= database), "
                         f"got {split!r}; retrieval evaluation uses RevisitedOxfordParis "
                         f"(queries + gnd)")
    data = RevisitedOxfordParis(data_cfg.root, name, download=data_cfg.download)
    return data.queries if split == "queries" else data.database
