"""Revisited Oxford5k / Paris6k (and the classic ground truth): database and cropped queries.

Layout (as the revisitop download script leaves it)::

    <root>/<name>/jpg/*.jpg
    <root>/<name>/gnd_<name>.pkl   {'imlist', 'qimlist', 'gnd'}

``gnd[q]`` holds ``'bbx'`` ``[x1, y1, x2, y2]`` and either the revisited
``'easy'``/``'hard'``/``'junk'`` or the classic ``'good'``/``'ok'``/``'junk'``
lists of database indices. Labels are unknown (-1): evaluation uses ``gnd``.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import numpy as np

from ..errors import NeedsSetting
from .base import FileDataset
from .download import download_url, extract_archive

__all__ = ["RevisitedOxfordParis", "GND_URL", "IMAGE_URLS", "read_layout", "download_oxford_paris"]

# where revisitop's download script takes the files from
GND_URL = "http://cmp.felk.cvut.cz/revisitop/data/datasets/{name}/gnd_{name}.pkl"
IMAGE_URLS = {
    "roxford5k": ["https://www.robots.ox.ac.uk/~vgg/data/oxbuildings/oxbuild_images-v1.tgz"],
    "rparis6k": ["https://www.robots.ox.ac.uk/~vgg/data/parisbuildings/paris_1-v1.tgz",
                 "https://www.robots.ox.ac.uk/~vgg/data/parisbuildings/paris_2-v1.tgz"],
}
IMAGE_URLS["oxford5k"], IMAGE_URLS["paris6k"] = IMAGE_URLS["roxford5k"], IMAGE_URLS["rparis6k"]
GND_KEYS = {"revisited": ("easy", "hard", "junk"), "classic": ("good", "ok", "junk")}


def _missing(name: str, what: str) -> NeedsSetting:
    """The error for a missing part of ``name``: how to get it, by hand or by download."""
    urls = ", ".join(IMAGE_URLS[name])
    return NeedsSetting(f"{what}. Get gnd_{name}.pkl from {GND_URL.format(name=name)} and the "
                        f"images from {urls} (all .jpg files flat in jpg/)",
                        argument="download", value=True, field="data.download")


def _base(root: Path, name: str) -> Path:
    return root if root.name == name or (root / f"gnd_{name}.pkl").exists() else root / name


def download_oxford_paris(root: str | os.PathLike, name: str, progress: bool = True) -> Path:
    """Fetch ``gnd_<name>.pkl`` and the image archives; flatten the .jpg files into jpg/."""
    base = _base(Path(root), name)
    (base / "jpg").mkdir(parents=True, exist_ok=True)
    download_url(GND_URL.format(name=name), base / f"gnd_{name}.pkl", progress=progress)
    for url in IMAGE_URLS[name]:
        archive = download_url(url, base / url.rsplit("/", 1)[-1], progress=progress)
        with tempfile.TemporaryDirectory(dir=base) as tmp:
            extract_archive(archive, tmp)
            for jpg in sorted(Path(tmp).rglob("*.jpg")):  # paris nests by landmark
                os.replace(jpg, base / "jpg" / jpg.name)
        archive.unlink()
    return base


def _check_gnd(data, pkl: Path, n_db: int) -> tuple[str, list[dict]]:
    if len(data["gnd"]) != len(data["qimlist"]):
        raise ValueError(f"{pkl}: {len(data['qimlist'])} queries but {len(data['gnd'])} gnd entries")
    first = data["gnd"][0] if len(data["gnd"]) else {}
    protocol = "classic" if "good" in first or "ok" in first else "revisited"
    gnd = []
    for q, entry in enumerate(data["gnd"]):
        missing = [k for k in ("bbx",) + GND_KEYS[protocol] if k not in entry]
        if missing:
            raise ValueError(f"{pkl}: gnd[{q}] lacks {missing} ({protocol} protocol)")
        clean = {"bbx": np.asarray(entry["bbx"], dtype=np.float64).reshape(4)}
        for k in GND_KEYS[protocol]:
            ids = np.asarray(entry[k], dtype=np.int64).reshape(-1)
            if ids.size and (ids.min() < 0 or ids.max() >= n_db):
                raise ValueError(f"{pkl}: gnd[{q}]['{k}'] has an index outside 0..{n_db - 1}")
            clean[k] = ids
        gnd.append(clean)
    return protocol, gnd


def read_layout(base: Path, name: str) -> tuple[list[Path], list[Path], str, list[dict]]:
    """(database paths, query paths, protocol, checked gnd) of the folder ``base``.

    Raises ``FileNotFoundError`` naming the missing pickle or first missing image.
    """
    pkl = base / f"gnd_{name}.pkl"
    if not pkl.is_file():
        raise _missing(name, f"{name}: missing {pkl}")
    with open(pkl, "rb") as f:
        try:
            data = pickle.load(f)  # the official format is a pickle: load trusted files only
        except Exception as err:  # any unpickling failure means a bad file
            raise ValueError(f"cannot read {pkl}: {err}") from err
    if not isinstance(data, dict) or not {"imlist", "qimlist", "gnd"} <= set(data):
        raise ValueError(f"{pkl}: expected a dict with 'imlist', 'qimlist', 'gnd'")
    protocol, gnd = _check_gnd(data, pkl, len(data["imlist"]))
    db_paths = [base / "jpg" / f"{im}.jpg" for im in data["imlist"]]
    q_paths = [base / "jpg" / f"{im}.jpg" for im in data["qimlist"]]
    missing = [p for p in db_paths + q_paths if not p.is_file()]
    if missing:
        raise _missing(name, f"{name}: {len(missing)} image(s) missing, first {missing[0]}")
    return db_paths, q_paths, protocol, gnd


class RevisitedOxfordParis:
    """``name`` in roxford5k | rparis6k (or classic oxford5k | paris6k).

    ``root`` holds ``<name>/`` or is that folder. Attributes: ``database`` and
    ``queries`` (datasets; queries cropped to their ``bbx``), ``gnd`` (list of
    dicts of int64 index arrays and ``bbx``), ``protocol`` ("revisited" | "classic").
    """

    def __init__(self, root: str | os.PathLike, name: str = "roxford5k", download: bool = False,
                 progress: bool = True):
        if name not in IMAGE_URLS:
            raise ValueError(f"unknown dataset {name!r}: use one of {sorted(IMAGE_URLS)}")
        try:
            base = _base(Path(root), name)
            db_paths, q_paths, self.protocol, self.gnd = read_layout(base, name)
        except FileNotFoundError:
            if not download:
                raise
            base = download_oxford_paris(root, name, progress=progress)
            db_paths, q_paths, self.protocol, self.gnd = read_layout(base, name)
        self.name, self.root = name, str(base)
        self.database = FileDataset(db_paths, np.full(len(db_paths), -1), f"{name}-database", base)
        boxes = np.stack([g["bbx"] for g in self.gnd]) if self.gnd else np.zeros((0, 4))
        self.queries = FileDataset(q_paths, np.full(len(q_paths), -1), f"{name}-queries", base,
                                   boxes=boxes)

    def __repr__(self) -> str:
        return (f"RevisitedOxfordParis(name={self.name!r}, database={len(self.database)}, "
                f"queries={len(self.queries)}, protocol={self.protocol!r})")
