"""CUB-200-2011 with the metric-learning split: classes 1-100 train, 101-200 test.

Reads the official layout::

    CUB_200_2011/images.txt              "<image_id> <relative path>"
    CUB_200_2011/image_class_labels.txt  "<image_id> <class_id>"
    CUB_200_2011/classes.txt             "<class_id> <NNN.Name>"
    CUB_200_2011/bounding_boxes.txt      "<image_id> <x> <y> <w> <h>" (optional)
    CUB_200_2011/images/NNN.Name/*.jpg

The dataset's own ``train_test_split.txt`` is not used (docs/method.md §11).
Labels are ``class_id - 1``, so test labels are 100-199.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import NeedsSetting
from .base import FileDataset
from .download import download_url, extract_archive

__all__ = ["CUB200", "CUB_URL", "CUB_MD5", "find_cub_root", "read_cub_split", "download_cub200"]

CUB_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
CUB_MD5 = "97eceeb196236b17998738112f37df78"
CUB_DIR = "CUB_200_2011"
REQUIRED = ("images.txt", "image_class_labels.txt", "classes.txt")
SPLIT_CLASSES = {"train": range(1, 101), "test": range(101, 201)}  # class ids, 1-based


def _missing(what: str) -> NeedsSetting:
    """The error for a missing part of CUB-200-2011: how to get it, by hand or by download."""
    return NeedsSetting(f"{what}. Get CUB-200-2011 from {CUB_URL} (md5 {CUB_MD5}) and "
                        f"extract it there", argument="download", value=True, field="data.download")


def find_cub_root(root: str | os.PathLike) -> Path:
    """The ``CUB_200_2011`` folder: ``root`` itself or ``root/CUB_200_2011``.

    Raises ``FileNotFoundError`` saying which file is missing and how to get it.
    """
    root = Path(root)
    base = root if (root / "images.txt").exists() or root.name == CUB_DIR else root / CUB_DIR
    missing = [name for name in REQUIRED if not (base / name).is_file()]
    if not (base / "images").is_dir():
        missing.append("images/")
    if missing:
        raise _missing(f"CUB-200-2011 incomplete: missing {', '.join(missing)} in {base}")
    return base


def download_cub200(root: str | os.PathLike, progress: bool = True) -> Path:
    """Fetch the official archive into ``root``, verify its md5, extract it."""
    root = Path(root)
    if root.name == CUB_DIR:  # the archive's top folder is CUB_200_2011 itself
        root = root.parent
    archive = download_url(CUB_URL, root / "CUB_200_2011.tgz", md5=CUB_MD5, progress=progress)
    extract_archive(archive, root)
    return find_cub_root(root)


def _read_table(path: Path, ncols: int) -> dict[int, list[str]]:
    """``{first column as int: remaining columns}`` of a whitespace table."""
    table = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=ncols - 1)
        if len(parts) != ncols:
            raise ValueError(f"{path}:{lineno}: expected {ncols} columns, got {line!r}")
        try:
            table[int(parts[0])] = parts[1:]
        except ValueError:
            raise ValueError(f"{path}:{lineno}: bad id in {line!r}") from None
    return table


def read_cub_split(base: Path, split: str) -> tuple[list[int], list[Path], list[int], list[str]]:
    """(image ids, paths, labels, 200 class names) of ``split``, in images.txt order.

    Raises ``FileNotFoundError`` naming the first listed image that is missing.
    """
    images = _read_table(base / "images.txt", 2)
    classes_of = _read_table(base / "image_class_labels.txt", 2)
    classes = _read_table(base / "classes.txt", 2)
    class_names = [classes[c][0] if c in classes else str(c) for c in range(1, 201)]
    wanted = set(SPLIT_CLASSES[split])
    ids, paths, labels = [], [], []
    for image_id, (rel,) in images.items():
        if image_id not in classes_of:
            raise ValueError(f"{base / 'image_class_labels.txt'}: no class for image {image_id}")
        class_id = int(classes_of[image_id][0])
        if class_id in wanted:
            ids.append(image_id)
            paths.append(base / "images" / rel)
            labels.append(class_id - 1)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise _missing(f"CUB-200-2011 incomplete: {len(missing)} image(s) of images.txt "
                       f"missing, first {missing[0]}")
    if not paths:
        raise ValueError(f"{base}: no image of classes {min(wanted)}-{max(wanted)} in images.txt")
    return ids, paths, labels, class_names


class CUB200(FileDataset):
    """CUB-200-2011, ``split="train"`` (classes 1-100) or ``"test"`` (101-200).

    ``root`` holds ``CUB_200_2011/`` or is that folder. Attributes beyond the
    protocol: ``class_names`` (200 names, indexed by label), ``image_ids``
    (official 1-based ids), ``bboxes`` (N, 4) ``[x, y, w, h]`` or None.
    ``download=True`` fetches and extracts the archive when anything is missing.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", download: bool = False,
                 progress: bool = True):
        if split not in SPLIT_CLASSES:
            raise ValueError(f"unknown CUB200 split {split!r}: use 'train' or 'test'")
        try:
            base = find_cub_root(root)
            ids, paths, labels, self.class_names = read_cub_split(base, split)
        except FileNotFoundError:
            if not download:
                raise
            base = download_cub200(root, progress=progress)
            ids, paths, labels, self.class_names = read_cub_split(base, split)
        super().__init__(paths, labels, name=f"cub200-{split}", root=base)
        self.split = split
        self.image_ids = np.asarray(ids, dtype=np.int64)
        self.bboxes = None
        if (base / "bounding_boxes.txt").is_file():
            boxes = _read_table(base / "bounding_boxes.txt", 5)
            lost = [i for i in ids if i not in boxes]
            if lost:
                raise ValueError(f"{base / 'bounding_boxes.txt'}: no box for image {lost[0]}")
            self.bboxes = np.array([[float(v) for v in boxes[i]] for i in ids])  # (N, 4)
