"""The pool inspector: browse anchors and their P+ / P- (or Euclidean) pools.

``PoolInspector`` keeps its whole view in ``.state`` (a plain dict) and
rebuilds the widgets from it, so every callback (``set_anchor``,
``toggle_baseline``, ``set_order``, ``switch``) can be tested without a
browser. Labels, when given, only colour frames and rank anchors for
browsing; they never reach mining.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .gallery import thumbnail

__all__ = ["PoolInspector", "euclidean_ranks", "ORDERS"]

ORDERS = ("index", "worst first", "best first")


def euclidean_ranks(features: np.ndarray, anchor: int, ids: np.ndarray) -> np.ndarray:
    """1-based rank of each of ``ids`` among the anchor's Euclidean neighbours
    (the anchor itself excluded; ties share the better rank). (len(ids),) int64"""
    from ..knn import knn
    n = len(features)
    # every point, the anchor first, then the others by similarity (exact, numpy)
    s, order = knn(features, n, index="dense", rows=[anchor], norm_tol=None)
    sims = np.empty(n, np.float32)
    sims[order[0]] = s[0]  # (N,) similarity to the anchor, by index
    sorted_sims = s[0, 1:]  # (N-1,) the others, descending
    # rank = 1 + number of other points strictly more similar
    return 1 + np.searchsorted(-sorted_sims, -sims[np.asarray(ids, dtype=np.int64)], side="left")


class PoolInspector:
    """Browse mined pools: ``PoolInspector(dataset, pools, features, labels=None)``.

    ``pools`` is a ``mom.mining.Pools`` (with ``.baseline`` for the Euclidean
    toggle); ``features`` (N, D) the L2-normalised mining descriptors. Extra
    collections (another dataset or a cached run) can be added with
    ``add_source(name, ...)`` and chosen with ``switch(name)``.
    Display it by leaving it as the last expression of a cell.
    """

    def __init__(self, dataset: Any, pools: Any, features: np.ndarray,
                 labels: np.ndarray | None = None, *, name: str = "run",
                 n_show: int = 8, thumb_size: int = 64):
        self.n_show, self.thumb_size = int(n_show), int(thumb_size)
        self._sources: dict[str, dict[str, Any]] = {}
        self._widgets: dict[str, Any] | None = None
        self._syncing = False  # True while _render sets the controls
        self.add_source(name, dataset, pools, features, labels)
        self.state: dict[str, Any] = {"source": name, "baseline": False, "order": "index",
                                      "step": 0}
        self._update()

    # --- sources -------------------------------------------------------------
    def add_source(self, name: str, dataset: Any, pools: Any, features: np.ndarray,
                   labels: np.ndarray | None = None) -> None:
        """Register another collection to switch to."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or len(features) != len(dataset):
            raise ValueError(f"source {name!r}: features {features.shape} do not match "
                             f"a dataset of {len(dataset)} images")
        if len(pools) == 0:
            raise ValueError(f"source {name!r}: the pools have no anchors")
        src = {"dataset": dataset, "pools": pools, "features": features, "labels": labels}
        if labels is not None:  # per-anchor P+ precision / P- purity, for ordering and display
            from ..mining import pool_diagnostics
            src["diagnostics"] = pool_diagnostics(pools, features, np.asarray(labels))
        self._sources[name] = src
        if self._widgets is not None:
            self._widgets["source"].options = list(self._sources)

    def add_run(self, run_dir, name: str | None = None) -> str:
        """Register a finished ``mom.pipeline.run`` folder (its training split, pools and
        descriptors; labels for display); returns the source name (default: params name,
        dataset, anchor choice and folder)."""
        default, *data = _run_source(run_dir)
        self.add_source(name or default, *data)
        return name or default

    @classmethod
    def from_runs(cls, run_dirs: Sequence, **kwargs) -> "PoolInspector":
        """An inspector over finished run folders; the first one is shown."""
        if not run_dirs:
            raise ValueError("PoolInspector.from_runs: no run folders given")
        first, *rest = run_dirs
        name, *data = _run_source(first)
        inspector = cls(*data, name=name, **kwargs)
        for d in rest:
            inspector.add_run(d)
        return inspector

    @property
    def sources(self) -> list[str]:
        return list(self._sources)

    def source_data(self) -> tuple[Any, Any, np.ndarray, np.ndarray | None]:
        """(dataset, pools, features, labels) of the source shown now."""
        src = self._src
        return src["dataset"], src["pools"], src["features"], src["labels"]

    def switch(self, name: str) -> dict[str, Any]:
        """Show another registered source from its first anchor; the order and the
        baseline toggle stay unless the new source cannot provide them."""
        if name not in self._sources:
            raise ValueError(f"unknown source {name!r}; known: {self.sources}")
        src = self._sources[name]
        self.state.update(source=name, step=0)
        if src["labels"] is None:
            self.state["order"] = "index"
        if src["pools"].baseline is None:
            self.state["baseline"] = False
        return self._update()

    # --- callbacks -----------------------------------------------------------
    def set_anchor(self, step: int) -> dict[str, Any]:
        """Show the anchor at ``step`` of the current order (0 = first)."""
        n = len(self._src["pools"])
        if not 0 <= int(step) < n:
            raise ValueError(f"anchor step {step} out of range 0..{n - 1}")
        self.state["step"] = int(step)
        return self._update()

    def toggle_baseline(self, on: bool | None = None) -> dict[str, Any]:
        """Switch between MoM pools (P+, P-) and the Euclidean baseline pools."""
        new = (not self.state["baseline"]) if on is None else bool(on)
        if new and self._src["pools"].baseline is None:
            raise ValueError("these pools carry no Euclidean baseline")
        self.state["baseline"] = new
        return self._update()

    def set_order(self, order: str) -> dict[str, Any]:
        """Browse anchors by index, or by MoM P+ precision (worst/best first; needs labels)."""
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        if order != "index" and self._src["labels"] is None:
            raise ValueError("ordering by pool precision needs labels")
        self.state.update(order=order, step=0)
        return self._update()

    def summary(self, n: int = 5) -> dict[str, Any]:
        """The state in brief: anchor, pools, precision / purity, and the first ``n``
        members of each pool as (id, weight, Euclidean rank) / (id, Euclidean rank)."""
        s = self.state
        out = {k: s[k] for k in ("source", "anchor", "pools", "precision", "purity") if k in s}
        out["positives"] = [(i, round(w, 4), r) for i, w, r in
                            zip(s["positives"][:n], s["positive_weights"], s["positive_ranks"])]
        out["negatives"] = list(zip(s["negatives"][:n], s["negative_ranks"]))
        return out

    # --- state ---------------------------------------------------------------
    @property
    def _src(self) -> dict[str, Any]:
        return self._sources[self.state["source"]]

    def _positions(self) -> np.ndarray:
        src, order = self._src, self.state["order"]
        if order == "index":
            return np.arange(len(src["pools"]))
        key = np.nan_to_num(src["diagnostics"]["pos_precision_per_anchor"], nan=-1.0)
        ranked = np.argsort(key, kind="stable")
        return ranked if order == "worst first" else np.argsort(-key, kind="stable")

    def _update(self) -> dict[str, Any]:
        src = self._src
        position = int(self._positions()[self.state["step"]])
        pools = src["pools"].baseline if self.state["baseline"] else src["pools"]
        anchor = int(pools.anchors[position])
        pos = np.asarray(pools.positives[position], dtype=np.int64)
        neg = np.asarray(pools.negatives[position], dtype=np.int64)
        ranks = euclidean_ranks(src["features"], anchor, np.concatenate([pos, neg]))  # one sort
        self.state.update(
            position=position, anchor=anchor,
            pools="euclidean" if self.state["baseline"] else "mom",
            positives=pos.tolist(),
            positive_weights=np.asarray(pools.positive_weights[position], dtype=float).tolist(),
            positive_ranks=ranks[:pos.size].tolist(),
            negatives=neg.tolist(),
            negative_ranks=ranks[pos.size:].tolist(),
        )
        self.state.pop("precision", None), self.state.pop("purity", None)
        if "diagnostics" in src:
            from ..mining import diagnostic_keys
            keys = diagnostic_keys(self.state["pools"])
            for key, label in (("precision", "P+ precision"), ("purity", "P- purity")):
                value = float(src["diagnostics"][keys[label] + "_per_anchor"][position])
                self.state[key] = value if np.isfinite(value) else None
        if self._widgets is not None:
            self._render()
        return self.state

    # --- widgets -------------------------------------------------------------
    @property
    def widget(self):
        """The ipywidgets box (built on first use)."""
        if self._widgets is None:
            self._build()
        return self._widgets["box"]

    @property
    def controls(self) -> dict[str, Any]:
        """The control widgets by name: source, order, step (anchor slider), baseline."""
        self.widget  # noqa: B018 - builds them on first use
        return {k: self._widgets[k] for k in ("source", "order", "step", "baseline")}

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)

    def _build(self) -> None:
        import ipywidgets as w
        n = len(self._src["pools"])
        controls = {
            "source": w.Dropdown(options=self.sources, value=self.state["source"], description="run"),
            "order": w.Dropdown(options=list(ORDERS), value=self.state["order"], description="order",
                                disabled=self._src["labels"] is None),
            "step": w.IntSlider(value=self.state["step"], min=0, max=n - 1, description="anchor"),
            "baseline": w.ToggleButton(value=self.state["baseline"], description="Euclidean baseline",
                                       disabled=self._src["pools"].baseline is None),
        }
        self._widgets = {**controls, "view": w.VBox(), "info": w.HTML()}
        controls["source"].observe(lambda c: self._from_ui(self.switch, c["new"]), "value")
        controls["order"].observe(lambda c: self._from_ui(self.set_order, c["new"]), "value")
        controls["step"].observe(lambda c: self._from_ui(self.set_anchor, c["new"]), "value")
        controls["baseline"].observe(lambda c: self._from_ui(self.toggle_baseline, c["new"]), "value")
        self._widgets["box"] = w.VBox([w.HBox(list(controls.values())), self._widgets["info"],
                                       self._widgets["view"]])
        self._render()

    def _from_ui(self, callback, value) -> None:
        if self._syncing:
            return
        callback(value)

    def _render(self) -> None:
        import ipywidgets as w
        s, wd, src = self.state, self._widgets, self._src
        self._syncing = True  # keep the controls in step without re-firing callbacks
        try:
            wd["source"].value = s["source"]
            wd["order"].value = s["order"]
            wd["order"].disabled = src["labels"] is None
            wd["baseline"].disabled = src["pools"].baseline is None
            wd["step"].max = len(src["pools"]) - 1
            wd["step"].value = s["step"]
            wd["baseline"].value = s["baseline"]
        finally:
            self._syncing = False
        names = ("NN^e positives", "Euclidean negatives") if s["baseline"] else ("P+", "P-")
        info = f"<b>anchor #{s['anchor']}</b> (position {s['position']}), pools: {s['pools']}"
        if "precision" in s:
            info += f"; P+ precision {_fmt(s['precision'])}, P- purity {_fmt(s['purity'])}"
        wd["info"].value = info
        pos_captions = [f"w {w_:.3g} | e#{r}" for w_, r in zip(s["positive_weights"], s["positive_ranks"])]
        rows = [self._row("anchor", [s["anchor"]], ["anchor"]),
                self._row(names[0], s["positives"][:self.n_show], pos_captions),
                self._row(names[1], s["negatives"][:self.n_show],
                          [f"e#{r}" for r in s["negative_ranks"]])]
        wd["view"].children = rows

    def _row(self, title: str, ids: Sequence[int], captions: Sequence[str]):
        import ipywidgets as w
        src, anchor = self._src, self.state["anchor"]
        cells = []
        for i, caption in zip(ids, captions):
            frame = "#1f77b4" if i == anchor and title == "anchor" else "#999"
            if src["labels"] is not None and title != "anchor":
                same = np.asarray(src["labels"])[i] == np.asarray(src["labels"])[anchor]
                frame = "green" if same else "red"  # as gallery.SAME / gallery.OTHER
            image = w.Image(value=_png(thumbnail(src["dataset"], i, self.thumb_size)), format="png",
                            layout=w.Layout(border=f"3px solid {frame}"))
            cells.append(w.VBox([image, w.HTML(f"<small>#{i}<br>{caption}</small>")]))
        return w.VBox([w.HTML(f"<b>{title}</b>"), w.HBox(cells)])


def _run_source(run_dir) -> tuple[str, Any, Any, np.ndarray, np.ndarray]:
    """(name, training dataset, pools, descriptors, labels) of a finished run folder."""
    from ..datasets.splits import train_split
    from .runs import load_run
    art = load_run(run_dir)
    dataset = train_split(art.config)
    cfg = art.config
    name = f"{cfg.name}: {cfg.data.dataset}, anchors {cfg.mining.anchors} ({Path(run_dir).name})"
    return name, dataset, art.pools, art.features, np.asarray(dataset.labels)


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"
