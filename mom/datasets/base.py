"""The dataset protocol shared by every collection, and image decoding.

Every dataset is indexable: ``ds[i] -> (PIL.Image in RGB, int label)``, with
``len(ds)``, ``ds.labels`` (N,) int64 (-1 where unknown), ``ds.name``,
``ds.fingerprint()`` and ``ds.thumbnail(i, size)``. File-backed datasets also
expose ``ds.paths``. ``fingerprint()`` keys caches (docs/design.md §5): it
hashes what changes the pixels (file list relative to the root + sizes, or the
array bytes) and the labels, never an absolute path, so copying a dataset
elsewhere keeps its fingerprint.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

__all__ = ["ImageDataset", "FileDataset", "ArrayDataset", "Subset",
           "to_rgb", "open_image", "find_corrupt", "select_per_class"]

WHITE = (255, 255, 255)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparency is composited on white.

    16-bit and 32-bit integer modes (``I;16``, ``I``) are scaled from 0..65535
    to 0..255 instead of clipped; float mode ``F`` is clipped to 0..255.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if (mode == "P" and "transparency" in img.info) or mode in ("PA", "LA", "RGBa", "La"):
        img, mode = img.convert("RGBA"), "RGBA"
    if mode == "RGBA":
        background = Image.new("RGB", img.size, WHITE)
        background.paste(img, mask=img.getchannel("A"))
        return background
    if mode.startswith("I") or mode == "F":
        a = np.asarray(img).astype(np.float64)  # (H, W)
        if mode != "F":
            a = a / 257.0  # 65535 -> 255
        gray = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    # L, 1, P (opaque), CMYK, YCbCr, LAB, HSV: Pillow's own conversion is exact enough
    return img.convert("RGB")


def open_image(path: str | os.PathLike, box: Sequence[float] | None = None) -> Image.Image:
    """Decode the image at ``path`` fully, convert it to RGB, optionally crop.

    ``box`` is ``[x1, y1, x2, y2]`` in pixels (rounded, clipped to the image).
    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming
    the file for an unreadable, corrupt or truncated one.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()  # decode now so a truncated file fails here, not later
            rgb = to_rgb(img)  # pixels are in memory: usable after the file closes
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err
    if box is not None:
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        w, h = rgb.size
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"empty crop box {list(box)} for image {path} of size {w}x{h}")
        rgb = rgb.crop((x1, y1, x2, y2))
    return rgb


class ImageDataset:
    """Base class: subclasses set ``name`` and ``labels`` and define ``load(i)``."""

    name: str = "dataset"
    labels: np.ndarray  # (N,) int64, -1 where unknown

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, i: int) -> Image.Image:
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        i = self._check_index(i)
        return self.load(i), int(self.labels[i])

    def fingerprint(self) -> str:
        raise NotImplementedError

    def thumbnail(self, i: int, size: int = 64) -> Image.Image:
        """The image scaled so that its longer side is ``size`` pixels."""
        img = self.load(self._check_index(i))
        w, h = img.size
        scale = size / max(w, h)
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        return img.resize(new, Image.Resampling.BICUBIC)

    def _check_index(self, i: int) -> int:
        n = len(self)
        i = int(i)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {self.name} of length {n}")
        return i % n

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n={len(self)})"


class FileDataset(ImageDataset):
    """Images stored as files.

    ``root`` is the folder the fingerprint's relative paths are taken from;
    ``boxes`` (N, 4) optional ``[x1, y1, x2, y2]`` crops (e.g. retrieval queries).
    """

    def __init__(self, paths: Sequence[str | os.PathLike], labels, name: str,
                 root: str | os.PathLike, boxes=None):
        self.paths = [str(p) for p in paths]
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)  # (N,)
        if len(self.labels) != len(self.paths):
            raise ValueError(f"{name}: {len(self.paths)} paths but {len(self.labels)} labels")
        self.boxes = None if boxes is None else np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if self.boxes is not None and len(self.boxes) != len(self.paths):
            raise ValueError(f"{name}: {len(self.paths)} paths but {len(self.boxes)} boxes")
        self.name = name
        self.root = str(root)

    def load(self, i: int) -> Image.Image:
        box = None if self.boxes is None else self.boxes[i]
        return open_image(self.paths[i], box)

    def fingerprint(self) -> str:
        """sha256 over (relative path, size) of each file in order, labels and boxes."""
        h = hashlib.sha256()
        for p in self.paths:
            try:
                size = os.path.getsize(p)
            except FileNotFoundError:
                raise FileNotFoundError(f"image file not found: {p}") from None
            rel = os.path.relpath(p, self.root).replace(os.sep, "/")
            h.update(f"{rel}\t{size}\n".encode())
        h.update(self.labels.tobytes())
        if self.boxes is not None:
            h.update(self.boxes.tobytes())
        return h.hexdigest()


class ArrayDataset(ImageDataset):
    """Images held in memory: ``images`` (N, H, W) gray or (N, H, W, 3) RGB uint8."""

    def __init__(self, images: np.ndarray, labels, name: str):
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim not in (3, 4) or (
                images.ndim == 4 and images.shape[-1] != 3):
            raise ValueError(f"{name}: images must be uint8 (N,H,W) or (N,H,W,3), "
                             f"got {images.dtype} {images.shape}")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)  # (N,)
        if len(self.labels) != len(images):
            raise ValueError(f"{name}: {len(images)} images but {len(self.labels)} labels")
        self.name = name

    def load(self, i: int) -> Image.Image:
        a = self.images[i]
        if a.ndim == 2:  # grayscale replicated into three channels
            a = np.repeat(a[:, :, None], 3, axis=2)
        return Image.fromarray(np.ascontiguousarray(a), mode="RGB")

    def fingerprint(self) -> str:
        """sha256 over the shape, the image bytes and the labels."""
        h = hashlib.sha256(str(self.images.shape).encode())
        h.update(np.ascontiguousarray(self.images).tobytes())
        h.update(self.labels.tobytes())
        return h.hexdigest()


class Subset(ImageDataset):
    """The items ``indices`` of ``dataset``, in that order."""

    def __init__(self, dataset: ImageDataset, indices, name: str | None = None):
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)  # (M,)
        n = len(dataset)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"subset indices out of range for {dataset.name} of length {n}")
        self.dataset, self.indices = dataset, idx
        self.labels = dataset.labels[idx]
        self.name = name or f"{dataset.name}-subset{len(idx)}"
        if hasattr(dataset, "paths"):
            self.paths = [dataset.paths[j] for j in idx]

    def load(self, i: int) -> Image.Image:
        return self.dataset.load(int(self.indices[i]))

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.dataset.fingerprint().encode())
        h.update(self.indices.tobytes())
        return h.hexdigest()


def find_corrupt(dataset: ImageDataset, progress: bool = False) -> list[str]:
    """Items that cannot be decoded: their paths (or ``"#i"`` without paths).

    The embedding stage can call this first, skip the items and report them.
    """
    bad = []
    paths = getattr(dataset, "paths", None)
    for i in tqdm(range(len(dataset)), desc=f"checking {dataset.name}", disable=not progress):
        try:
            dataset.load(i)
        except (ValueError, OSError):
            bad.append(paths[i] if paths is not None else f"#{i}")
    return bad


def select_per_class(labels: np.ndarray, classes, per_class: int | None = None,
                     strict: bool = True) -> np.ndarray:
    """Indices (sorted) of the items of ``classes``; at most the first ``per_class`` each.

    ``strict``: a class with fewer than ``per_class`` items raises ValueError (else it
    keeps what it has)."""
    if per_class is not None and per_class < 1:
        raise ValueError(f"per_class must be positive, got {per_class}")
    keep = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        if per_class is not None:
            if strict and per_class > len(idx):
                raise ValueError(f"per_class={per_class} but class {c} has only "
                                 f"{len(idx)} images in this source")
            idx = idx[:per_class]
        keep.append(idx)
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
