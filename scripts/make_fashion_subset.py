"""Build mom/data/fashion_mnist_subset.npz, the bundled offline Fashion-MNIST.

Takes the first PER_CLASS images of each of the 10 classes from the official
*training* file (file order kept) and stores them compressed with their labels
and their index in that file. Source: the Debian package dataset-fashion-mnist
(/usr/share/datasets/fashion-mnist) or any folder with the official IDX files.

    python scripts/make_fashion_subset.py [--root DIR] [--per-class 1000] [--out PATH]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mom.datasets.base import select_per_class
from mom.datasets.fashion_mnist import BUNDLED_PATH, DEFAULT_ROOT, read_fashion_idx
from mom.io import atomic_write


def build_subset(root: str, per_class: int) -> dict[str, np.ndarray]:
    images, labels = read_fashion_idx(root, "train")
    keep = select_per_class(labels, range(10), per_class)  # (10 * per_class,) sorted
    return {"images": images[keep], "labels": labels[keep].astype(np.uint8),
            "source_index": keep.astype(np.int32)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=DEFAULT_ROOT)
    ap.add_argument("--per-class", type=int, default=1000)
    ap.add_argument("--out", default=str(BUNDLED_PATH))
    args = ap.parse_args()
    arrays = build_subset(args.root, args.per_class)
    out = Path(args.out)
    with atomic_write(out) as f:
        np.savez_compressed(f, **arrays)
    print(f"wrote {out}: {len(arrays['labels'])} images, {out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
