"""A folder of images: one subfolder per class, or images directly (unlabeled).

Class names are the sorted subfolder names and labels their positions; files
are searched recursively inside each class folder and sorted, so the order
(and the fingerprint) is the same on every machine. A folder holding images
and no subfolders gives an unlabeled dataset (labels -1).
"""
from __future__ import annotations

import os
from pathlib import Path

from .base import FileDataset

__all__ = ["ImageFolder", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                    ".ppm", ".pgm", ".pbm")


def _images(folder: Path, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not p.name.startswith("."))


class ImageFolder(FileDataset):
    """Images under ``root``; ``class_names[label]`` names each class folder."""

    def __init__(self, root: str | os.PathLike, name: str | None = None):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} does not exist")
        class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        loose = _images(root, recursive=False)
        if class_dirs and loose:
            raise ValueError(f"{root} mixes class subfolders with {len(loose)} loose images "
                             f"(e.g. {loose[0].name}); move them into a class folder")
        paths, labels = [], []
        if class_dirs:
            empty = []
            for label, d in enumerate(class_dirs):
                files = _images(d, recursive=True)
                if not files:
                    empty.append(d.name)
                paths += files
                labels += [label] * len(files)
            if empty:
                raise ValueError(f"{root}: class folder(s) without images "
                                 f"({', '.join(IMAGE_EXTENSIONS)}): {', '.join(empty)}")
            self.class_names = [d.name for d in class_dirs]
        else:
            if not loose:
                raise ValueError(f"{root} holds no images ({', '.join(IMAGE_EXTENSIONS)}) "
                                 f"and no class subfolders")
            paths, labels, self.class_names = loose, [-1] * len(loose), []
        super().__init__(paths, labels, name=name or f"folder-{root.name}", root=root)
