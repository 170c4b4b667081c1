"""Figure 3 galleries: thumbnails in rows, framed by the anchor's class.

For an anchor, the rows are P+, its Euclidean NN^e_3, P- and random points
outside NN^e_3. Frames are green (same class as the anchor) or red (another
class); the labels only colour the frames.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = ["SAME", "OTHER", "label_colours", "gallery_ids", "plot_gallery", "gallery_figure",
           "row_rates", "row_notes",
           "thumbnail"]

SAME, OTHER = "tab:green", "tab:red"  # frame colours: same / other class as the anchor


def label_colours(labels: np.ndarray | None, anchor: int, ids: np.ndarray) -> np.ndarray:
    """Per id, ``SAME`` or ``OTHER`` by the anchor's label ("k" for all without labels)."""
    if labels is None:
        return np.array(["k"] * len(ids), dtype=object)
    labels = np.asarray(labels)
    return np.where(labels[np.asarray(ids, dtype=np.int64)] == labels[anchor], SAME, OTHER).astype(object)


def gallery_ids(pools: Any, features: np.ndarray, position: int, n: int = 5,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Rows of Figure 3 for the anchor at ``position`` in ``pools``: the first ``n``
    of P+, its Euclidean NN^e_3 (anchor excluded), the first ``n`` of P-, and ``n``
    random points of X minus NN^e_3 (seeded)."""
    from ..knn import knn
    anchor = int(pools.anchors[position])
    n_all = len(features)
    # exact, ties lower index first, the anchor removed by index
    _, near = knn(features, min(3, n_all - 1), index="dense", rows=[anchor], exclude_self=True,
                  norm_tol=None)
    nn3 = near[0]  # (min(3, N - 1),)
    rest = np.setdiff1d(np.arange(n_all), np.append(nn3, anchor))
    rng = np.random.default_rng(seed)
    return {
        "P+": np.asarray(pools.positives[position][:n], dtype=np.int64),
        "NN^e_3": nn3.astype(np.int64),
        "P-": np.asarray(pools.negatives[position][:n], dtype=np.int64),
        "X \\ NN^e_3": rng.choice(rest, size=min(n, len(rest)), replace=False).astype(np.int64),
    }


# row names as the paper typesets them (matplotlib mathtext)
ROW_LABELS = {"P+": "$P^+$", "NN^e_3": "$NN^e_3$", "P-": "$P^-$", "X \\ NN^e_3": "$X \\setminus NN^e_3$"}


def plot_gallery(blocks: Sequence[tuple[Any, Mapping[str, Sequence[tuple[Any, str | None, str]]]]],
                 *, thumb_inches: float = 1.1, footer_inches: float = 0.0,
                 notes: Mapping[str, str] | None = None) -> Figure:
    """Image grid: each block is ``(anchor_image, {row_name: [(image, frame, caption)]})``.

    The anchor sits in column 0 of the block's first row, the row names in column 1,
    the images from column 2 on; ``frame`` is a colour
    (e.g. ``SAME``/``OTHER``) or None for no frame. ``footer_inches`` leaves that much
    room under the grid (for a key), whatever the number of rows. ``notes[row_name]``
    is printed under the row's name (e.g. its precision over all anchors).
    """
    n_rows = sum(len(rows) for _, rows in blocks)
    # column 0: the anchor (first row of its block); column 1: the row's name; then images
    n_cols = 2 + max((len(items) for _, rows in blocks for items in rows.values()), default=0)
    if n_rows == 0:
        raise ValueError("plot_gallery: nothing to show")
    grid_height = thumb_inches * 1.15 * n_rows
    height = grid_height + footer_inches + 0.1
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(thumb_inches * n_cols, height), squeeze=False)
    r = 0
    for anchor_image, rows in blocks:
        for j, (name, items) in enumerate(rows.items()):
            for c in range(n_cols):
                _blank(axes[r, c])
            if j == 0:
                _show(axes[r, 0], anchor_image, "tab:blue", "anchor")
            note = (notes or {}).get(name)
            axes[r, 1].text(0.95, 0.62 if note else 0.5, ROW_LABELS.get(name, name), ha="right",
                            va="center", fontsize=11, transform=axes[r, 1].transAxes)
            if note:
                axes[r, 1].text(0.95, 0.22, note, ha="right", va="center", fontsize=6.5,
                                transform=axes[r, 1].transAxes, linespacing=1.1)
            for c, (image, frame, caption) in enumerate(items, start=2):
                _show(axes[r, c], image, frame, caption)
            r += 1
    # margins in inches: 0.05 above, the footer (and 0.05) below, so a key never overlaps
    fig.subplots_adjust(wspace=0.08, hspace=0.35, left=0.01, right=0.99, top=1 - 0.05 / height,
                        bottom=(footer_inches + 0.05) / height)
    return fig


def row_rates(pools: Any, features: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Each Figure 3 row's share of correct members over *every* anchor (training labels,
    display only): the anchor's class for the positive rows (P+, NN^e_3), another class
    for the negative rows (P-, X minus NN^e_3), pooled over all members shown."""
    labels = np.asarray(labels)
    hits = {name: [0, 0] for name in ROW_LABELS}
    for p in range(len(pools)):
        anchor = int(pools.anchors[p])
        for name, ids in gallery_ids(pools, features, p, n=10 ** 9, seed=seed + p).items():
            same = labels[ids] == labels[anchor]
            good = same if name in ("P+", "NN^e_3") else ~same
            hits[name][0] += int(good.sum())
            hits[name][1] += len(ids)
    return {name: h / max(t, 1) for name, (h, t) in hits.items()}


def row_notes(rates: Mapping[str, float], k_pos: int | None = None,
              k_neg: int | None = None) -> dict[str, str]:
    """Notes under the row names: each row's rate over all anchors, and which rows the
    Euclidean baseline actually trains on (its pools are NN^e_{k+} and the points beyond
    NN^e_{k-}; NN^e_3 and X minus NN^e_3 only show their nearest part)."""
    kp, kn = k_pos if k_pos is not None else "k^+", k_neg if k_neg is not None else "k^-"
    outside = "X \\ NN^e_3"
    return {"P+": f"precision {rates['P+']:.2f}\nMoM trains on it",
            "NN^e_3": f"precision {rates['NN^e_3']:.2f}\nbaseline trains on $NN^e_{{{kp}}}$",
            "P-": f"purity {rates['P-']:.2f}\nMoM trains on it",
            outside: f"purity {rates[outside]:.2f}\nbaseline: beyond $NN^e_{{{kn}}}$"}


def gallery_figure(dataset: Any, pools: Any, features: np.ndarray, positions: Sequence[int],
                   *, n: int = 5, labels: np.ndarray | None = None, size: int = 96,
                   seed: int = 0, notes: Mapping[str, str] | None = None) -> Figure:
    """Figure 3: for each anchor position, rows P+, NN^e_3, P-, X minus NN^e_3, framed
    green (anchor's class) or red (another class) when ``labels`` are given; ``notes``
    under the row names (:func:`row_notes`)."""
    blocks = []
    for p in positions:
        anchor = int(pools.anchors[p])
        rows = {}
        for name, ids in gallery_ids(pools, features, p, n=n, seed=seed + int(p)).items():
            frames = label_colours(labels, anchor, ids) if labels is not None else [None] * len(ids)
            rows[name] = [(thumbnail(dataset, j, size), f, f"#{j}") for j, f in zip(ids, frames)]
        blocks.append((thumbnail(dataset, anchor, size), rows))
    key = 0.45 if labels is not None else 0.0  # inches under the grid for the key
    fig = plot_gallery(blocks, footer_inches=key, notes=notes)
    if labels is not None:  # the key to the frame colours (labels are display only)
        from matplotlib.patches import Patch
        handles = [Patch(facecolor="white", edgecolor=c, linewidth=3, label=t) for c, t in (
            ("tab:blue", "the anchor"), (SAME, "same class as the anchor"),
            (OTHER, "another class"))]
        height = fig.get_size_inches()[1]
        fig.legend(handles=handles, loc="center", ncol=3, fontsize=9, frameon=False,
                   bbox_to_anchor=(0.5, (key / 2) / height))  # centred in the footer
    return fig


def thumbnail(dataset: Any, i: int, size: int = 96):
    """``dataset.thumbnail(i, size)`` where the dataset has one, else a resized ``dataset[i][0]``."""
    if hasattr(dataset, "thumbnail"):
        return dataset.thumbnail(int(i), size)
    image = dataset[int(i)][0].copy()
    image.thumbnail((size, size))
    return image


def _show(ax, image, frame: str | None, caption: str | None) -> None:
    ax.imshow(np.asarray(image), cmap="gray" if np.asarray(image).ndim == 2 else None)
    _blank(ax, frame)
    if caption:
        ax.set_title(caption, fontsize=7, pad=2)


def _blank(ax, frame: str | None = None) -> None:
    ax.set_xticks([]), ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(frame is not None)
        if frame is not None:
            spine.set_edgecolor(frame)
            spine.set_linewidth(3)
