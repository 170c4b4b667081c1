"""Omniglot handwritten characters with the CUB protocol: the first half of the classes
train, the second half test.

The bundled set is Omniglot's background "small 1" archive (Lake, Salakhutdinov,
Tenenbaum, *Human-level concept learning through probabilistic program induction*,
Science 2015; MIT licence in ``mom/data/LICENSE-omniglot.txt``), shipped unchanged as
``mom/data/omniglot_background_small1.zip``: 136 characters of 5 alphabets (Balinese,
Early Aramaic, Greek, Korean, Latin), each drawn once by 20 people, 105x105 binary PNGs.

A class is one character (``Alphabet/characterNN``). Classes are sorted by alphabet,
then character; the images of a class by file name (``<id>_<drawer>.png``). The
first ``ceil(C / 2)`` classes form the train split (68 of the bundled 136: Balinese,
Early Aramaic and Greek characters 1-22), the rest the test split (Greek 23-24,
Korean, Latin). Labels are the class's position in that order (test labels start at
68), as CUB keeps ``class_id - 1``.

``root`` reads any other Omniglot archive or folder in the same layout
(``[top/]<Alphabet>/<character>/<file>.png``, e.g. the full ``images_background.zip``
or ``images_evaluation.zip`` of the authors' repository), so the same protocol runs
on alphabets the bundled set does not hold.
"""
from __future__ import annotations

import functools
import io
import os
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from ..io import file_digests
from .base import ArrayDataset, select_per_class

__all__ = ["Omniglot", "BUNDLED_PATH", "BUNDLED_SHA256", "read_omniglot", "omniglot_split_classes"]

BUNDLED_PATH = Path(__file__).resolve().parent.parent / "data" / "omniglot_background_small1.zip"
BUNDLED_SHA256 = "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4"
SPLITS = ("train", "test")


def _members(source: Path) -> dict[tuple[str, str], list[tuple[str, bytes | str]]]:
    """{(alphabet, character): [(file name, PNG bytes or a path)]} of an archive or folder."""
    classes: dict[tuple[str, str], list] = {}
    if source.is_dir():
        for p in sorted(source.rglob("*.png")):
            rel = p.relative_to(source).parts
            if len(rel) >= 3:
                classes.setdefault((rel[-3], rel[-2]), []).append((rel[-1], str(p)))
        return classes
    try:
        with zipfile.ZipFile(source) as zf:
            for info in zf.infolist():
                parts = PurePosixPath(info.filename).parts
                if info.is_dir() or len(parts) < 3 or not parts[-1].lower().endswith(".png"):
                    continue
                classes.setdefault((parts[-3], parts[-2]), []).append(
                    (parts[-1], zf.read(info)))
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ValueError(f"Omniglot archive {str(source)!r} cannot be read ({exc})") from None
    return classes


def _decode(where: str, data: bytes | str) -> np.ndarray:
    """One drawing as (H, W) uint8, 0 = ink, 255 = paper."""
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
            img.load()
            return np.asarray(img.convert("L"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"Omniglot image {where} cannot be decoded ({exc})") from None


@functools.lru_cache(maxsize=4)
def _read(source: str, size: int, mtime_ns: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    path = Path(source)
    classes = _members(path)
    if not classes:
        raise ValueError(f"{source!r} holds no Omniglot drawings (expected "
                         "[top/]<Alphabet>/<character>/<file>.png)")
    images, labels, names = [], [], []
    for label, key in enumerate(sorted(classes)):
        names.append("/".join(key))
        for fname, data in sorted(classes[key], key=lambda m: m[0]):
            images.append(_decode(f"{source}:{'/'.join(key)}/{fname}", data))
            labels.append(label)
    shapes = {a.shape for a in images}
    if len(shapes) > 1:
        raise ValueError(f"{source!r}: drawings of several sizes {sorted(shapes)}; Omniglot's are "
                         "all 105x105")
    stack = np.stack(images)
    stack.flags.writeable = False  # shared by every split built from this cache entry
    return stack, np.asarray(labels, dtype=np.int64), tuple(names)


def read_omniglot(root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                    tuple[str, ...]]:
    """(images (N, 105, 105) uint8, labels (N,) int64, class names) of every class.

    ``root`` None: the bundled archive, checked against its SHA-256 first (a missing
    or changed file raises one ValueError naming it). Otherwise an Omniglot ``.zip`` or
    folder. Decoded once per file and process.
    """
    if root is None:
        path = BUNDLED_PATH
        if not path.is_file():
            raise ValueError(f"the bundled Omniglot archive {str(path)!r} is missing; "
                             "reinstall the package (pip install -e .)")
        digest = file_digests(path)["sha256"]
        if digest != BUNDLED_SHA256:
            raise ValueError(f"the bundled Omniglot archive {str(path)!r} is corrupt (sha256 "
                             f"{digest}, expected {BUNDLED_SHA256}); reinstall the package")
    else:
        path = Path(root)
        if not path.exists():
            raise ValueError(f"Omniglot data.root {str(path)!r} does not exist")
    st = path.stat()
    return _read(str(path.resolve()), st.st_size, st.st_mtime_ns)


def omniglot_split_classes(n_classes: int, split: str) -> np.ndarray:
    """The class labels of ``split``: the first ``ceil(C / 2)`` train, the rest test."""
    if split not in SPLITS:
        raise ValueError(f"unknown Omniglot split {split!r}: use 'train' or 'test'")
    n_train = (n_classes + 1) // 2
    return np.arange(n_train) if split == "train" else np.arange(n_train, n_classes)


class Omniglot(ArrayDataset):
    """Omniglot split ``"train"`` (first half of the characters) or ``"test"`` (the rest).

    ``per_class``: the first that many drawings of each character (at most the
    fewest a character has: 20 in Omniglot). Example: ``Omniglot("test")`` -> 1 360
    drawings of 68 characters, labels 68-135.
    """

    def __init__(self, split: str = "train", root: str | os.PathLike | None = None,
                 per_class: int | None = None):
        if split not in SPLITS:
            raise ValueError(f"unknown Omniglot split {split!r}: use 'train' or 'test'")
        images, labels, names = read_omniglot(root)
        fewest = int(np.bincount(labels).min())
        if per_class is not None and per_class > fewest:
            raise ValueError(f"data.per_class={per_class}: Omniglot has {fewest} drawings of "
                             f"each character{'' if root is None else f' in {str(root)!r}'} "
                             f"(one per drawer); use at most {fewest}")
        wanted = omniglot_split_classes(len(names), split)
        keep = select_per_class(labels, wanted, per_class)
        source = "bundled" if root is None else Path(root).stem
        suffix = "" if per_class is None else f"-{per_class}pc"
        super().__init__(images[keep], labels[keep], name=f"omniglot-{source}-{split}{suffix}")
        self.split = split
        self.class_names = names  # every class of the source; labels index into it
