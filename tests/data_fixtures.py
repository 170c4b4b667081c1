"""Tiny on-disk datasets in the exact official layouts, for tests.

Import from test modules (``from data_fixtures import make_cub``); none of
these touch the network. Images are small solid-colour JPEGs whose colour
encodes (class, index), so a test can check which file was read.
"""
from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import io
import pickle
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
from PIL import Image

CUB_CLASSES = {1: 2, 2: 3, 101: 2, 102: 3}  # class id -> images; paper split: 1-100 | 101-200


def colour(class_id: int, j: int) -> tuple[int, int, int]:
    return ((37 * class_id) % 256, (60 * j + 20) % 256, 128)


def write_jpeg(path: Path, rgb=(200, 50, 50), size=(12, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path, "JPEG", quality=95)
    return path


def make_cub(root: Path, classes: dict[int, int] = CUB_CLASSES) -> Path:
    """Write ``root/CUB_200_2011`` with all the official txt files; return that folder."""
    base = Path(root) / "CUB_200_2011"
    lines = {k: [] for k in ("images", "labels", "classes", "split", "boxes")}
    image_id = 0
    for cid in sorted(classes):
        folder = f"{cid:03d}.Bird_{cid}"
        lines["classes"].append(f"{cid} {folder}")
        for j in range(classes[cid]):
            image_id += 1
            rel = f"{folder}/Bird_{cid}_{j:04d}.jpg"
            write_jpeg(base / "images" / rel, colour(cid, j))
            lines["images"].append(f"{image_id} {rel}")
            lines["labels"].append(f"{image_id} {cid}")
            lines["split"].append(f"{image_id} {j % 2}")  # must be ignored by the loader
            lines["boxes"].append(f"{image_id} 1.0 2.0 5.0 4.0")
    files = {"images": "images.txt", "labels": "image_class_labels.txt",
             "classes": "classes.txt", "split": "train_test_split.txt",
             "boxes": "bounding_boxes.txt"}
    for key, name in files.items():
        (base / name).write_text("\n".join(lines[key]) + "\n")
    return base


def make_tgz(folder: Path, archive: Path) -> Path:
    """Pack ``folder`` into ``archive`` (.tgz) with the folder's name as top entry."""
    Path(archive).parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=Path(folder).name)
    return archive


def make_evil_tgz(archive: Path, member: str = "../evil.txt") -> Path:
    """An archive whose member would land outside the extraction folder."""
    data = b"gotcha"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return archive


def make_oxford(root: Path, name: str = "roxford5k", classic: bool = False,
                n_db: int = 5, n_q: int = 2) -> Path:
    """Write ``root/<name>/jpg/*.jpg`` and ``gnd_<name>.pkl``; return ``root/<name>``."""
    base = Path(root) / name
    imlist = [f"db_{i}" for i in range(n_db)]
    qimlist = [f"q_{i}" for i in range(n_q)]
    for i, im in enumerate(imlist):
        write_jpeg(base / "jpg" / f"{im}.jpg", colour(1, i), size=(20, 16))
    gnd = []
    for i, q in enumerate(qimlist):
        write_jpeg(base / "jpg" / f"{q}.jpg", colour(2, i), size=(20, 16))
        entry = {"bbx": [2.0, 3.0, 12.0, 11.0]}  # -> 10 x 8 crop
        if classic:
            entry.update(good=[i], ok=[i + 1], junk=[4])
        else:
            entry.update(easy=[i], hard=[i + 1], junk=[4])
        gnd.append(entry)
    with open(base / f"gnd_{name}.pkl", "wb") as f:
        pickle.dump({"imlist": imlist, "qimlist": qimlist, "gnd": gnd}, f)
    return base


def make_folder(root: Path, classes=("cat", "dog"), per_class: int = 2) -> Path:
    for c, cname in enumerate(classes):
        for j in range(per_class):
            write_jpeg(Path(root) / cname / f"img_{j}.jpg", colour(c, j))
    return Path(root)


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX, written independently of the reader."""
    array = np.asarray(array, dtype=np.uint8)
    head = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.tobytes()


def make_fashion_idx(root: Path, n_train: int = 30, n_test: int = 20, gz: bool = True) -> Path:
    """Fake Fashion-MNIST IDX files: image k of a part is filled with value k, label k % 10."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("t10k", n_test)):
        offset = 0 if part == "train" else 100
        images = np.stack([np.full((28, 28), (offset + k) % 256, np.uint8) for k in range(n)])
        labels = np.arange(n, dtype=np.uint8) % 10
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            raw = idx_bytes(arr)
            name = f"{part}-{kind}-ubyte"
            if gz:
                (root / (name + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (root / name).write_bytes(raw)
    return root


@contextlib.contextmanager
def serve_folder(folder: Path):
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port) in a thread; yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass
