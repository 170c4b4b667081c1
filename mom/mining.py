"""Anchors and the hard positive / negative pools (docs/method.md §5-§6).

For anchor r, with NN^e_k(r) the top k by Euclidean (inner-product)
similarity and NN^m_k(r) the top k by manifold similarity f(r):

    P+(r) = NN^m_{k+}(r) \\ NN^e_{k+}(r)   sorted by f(r) descending, weight f(r)_j
    P-(r) = NN^e_{k-}(r) \\ NN^m_{k-}(r)   sorted by Euclidean similarity descending

with k- capped at ceil(N/2) and both pools cut at ``pool_size``. Anchors with
an empty pool are skipped and counted. The Euclidean baseline for the same
kept anchors uses positives NN^e_{k+}(r) minus r (weight 1) and, as negatives,
the ``pool_size`` nearest points outside NN^e_{k-}(r), i.e. Euclidean ranks
k-+1 ... k-+pool_size (rank 1 is r itself): the paper's baseline draws
negatives from X \\ NN^e_{k-}(r) (docs/method.md §6); the nearest of them are
the hardest such negatives and make a deterministic pool the same size as P-.

Two choices beyond the release (docs/method.md §6, §14), both only visible on
degenerate graphs: r itself is removed from both pools explicitly (the set
formulas rely on r being in both top-k lists), and entries with f(r)_j <= 0
(not reached by the diffusion) do not count as manifold neighbours.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .anchors import select_anchors
from .config import MiningConfig
from .depths import Depths, adapted_k_graph, resolve_depths
from .diffusion import manifold_topk
from .graph import affinity, normalize
from .io import load_npz, save_npz
from .knn import build_index, check_features, knn, search

__all__ = ["Pools", "Ragged", "mine", "pools_from_neighbours", "baseline_from_neighbours",
           "capped_k_neg", "pool_diagnostics", "diagnostic_keys"]


class Ragged:
    """Read-only list of 1-D arrays stored CSR-style: ``flat[offsets[i]:offsets[i+1]]``."""

    def __init__(self, offsets: np.ndarray, flat: np.ndarray):
        self.offsets, self.flat = offsets, flat

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(f"pool index {i} out of range for {len(self)} anchors")
        i %= len(self)
        return self.flat[self.offsets[i]:self.offsets[i + 1]]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def sizes(self) -> np.ndarray:
        """(A,) number of members per anchor."""
        return np.diff(self.offsets)


def _ragged(lists, dtype) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(lists) + 1, np.int64)
    offsets[1:] = np.cumsum([len(x) for x in lists])
    flat = np.concatenate(lists).astype(dtype) if lists else np.zeros(0, dtype)
    return offsets, flat


@dataclass(eq=False)
class Pools:
    """Mined pools for ``anchors`` (A,) int64, stored CSR-style.

    ``positives[i]``, ``positive_weights[i]``, ``negatives[i]`` belong to
    ``anchors[i]``. ``baseline`` holds the Euclidean pools of the same anchors
    (``method="euclidean"``); ``stationary`` is the (N,) stationary vector when
    anchors="stationary" computed it.
    """

    anchors: np.ndarray
    pos_offsets: np.ndarray
    pos_ids: np.ndarray
    pos_weights: np.ndarray
    neg_offsets: np.ndarray
    neg_ids: np.ndarray
    n_skipped: int = 0
    method: str = "mom"
    config: MiningConfig = field(default_factory=MiningConfig)
    baseline: "Pools | None" = None
    stationary: np.ndarray | None = None
    timings: dict | None = None  # seconds per stage of mine() (not saved)
    depths: Depths | None = None  # the k+/k- used and, for "auto", the statistic behind them

    @property
    def positives(self) -> Ragged:
        return Ragged(self.pos_offsets, self.pos_ids)

    @property
    def positive_weights(self) -> Ragged:
        return Ragged(self.pos_offsets, self.pos_weights)

    @property
    def negatives(self) -> Ragged:
        return Ragged(self.neg_offsets, self.neg_ids)

    def __len__(self) -> int:
        return int(self.anchors.size)

    def select(self, kind: str) -> "Pools":
        """``"mom"`` -> these pools, ``"euclidean"`` -> the Euclidean baseline."""
        if kind == self.method:
            return self
        if kind == "euclidean" and self.baseline is not None:
            return self.baseline
        raise ValueError(f"pools of kind {kind!r} not available (have {self.method!r}"
                         f"{' and baseline' if self.baseline is not None else ''})")

    def take(self, rows) -> "Pools":
        """The pools of anchors ``rows`` (indices into ``self.anchors``), baseline alike."""
        rows = np.asarray(rows, np.int64)

        def part(ragged: Ragged, flat_dtype) -> tuple[np.ndarray, np.ndarray]:
            return _ragged([ragged[i] for i in rows], flat_dtype)

        po, pi_ = part(self.positives, np.int64)
        _, pw = part(self.positive_weights, np.float32)
        no, ni = part(self.negatives, np.int64)
        base = self.baseline.take(rows) if self.baseline is not None else None
        return Pools(self.anchors[rows], po, pi_, pw, no, ni, self.n_skipped, self.method,
                     self.config, base, self.stationary, self.timings, self.depths)

    def _arrays(self, prefix: str = "") -> dict:
        return {prefix + k: getattr(self, k) for k in
                ("anchors", "pos_offsets", "pos_ids", "pos_weights", "neg_offsets", "neg_ids")}

    def save(self, path) -> None:
        """Write to ``path`` (.npz, atomic), with the config as JSON and the baseline."""
        arrays = self._arrays()
        meta = {"n_skipped": int(self.n_skipped), "method": self.method,
                "config": asdict(self.config), "has_baseline": self.baseline is not None,
                "depths": self.depths.to_dict() if self.depths is not None else None}
        if self.baseline is not None:
            arrays.update(self.baseline._arrays("baseline_"))
            meta["baseline_n_skipped"] = int(self.baseline.n_skipped)
        if self.stationary is not None:
            arrays["stationary"] = self.stationary
        save_npz(path, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)

    @classmethod
    def load(cls, path) -> "Pools":
        """Read pools written by :meth:`save`."""
        d = load_npz(path)
        try:
            meta = json.loads(str(d["meta"]))
            cfg = MiningConfig(**meta["config"])
            keys = ("anchors", "pos_offsets", "pos_ids", "pos_weights", "neg_offsets", "neg_ids")
            depths = Depths(**meta["depths"]) if meta.get("depths") else None
            base = None
            if meta["has_baseline"]:
                base = cls(**{k: d["baseline_" + k] for k in keys}, method="euclidean",
                           n_skipped=meta["baseline_n_skipped"], config=cfg, depths=depths)
            return cls(**{k: d[k] for k in keys}, n_skipped=meta["n_skipped"], method=meta["method"],
                       config=cfg, baseline=base, stationary=d.get("stationary"), depths=depths)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a pools file written by Pools.save ({exc})") from exc



def capped_k_neg(k_neg: int, n: int) -> int:
    """k- capped at ceil(N/2) (docs/method.md §6)."""
    return int(min(k_neg, math.ceil(n / 2)))


ISIN_ELEMENTS = 1 << 21  # _row_isin works on blocks of rows holding about this many ids


def _row_isin(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """(A, ka) bool: a[i, j] in set(b[i]), for ids in [-1, n); one sort a block of rows
    (``ISIN_ELEMENTS`` ids: at depth 10 000, 200 anchors), no loop over the members."""
    step = max(1, ISIN_ELEMENTS // max(1, a.shape[1], b.shape[1]))
    if a.shape[0] > step:
        return np.concatenate([_row_isin(a[s:s + step], b[s:s + step], n)
                               for s in range(0, a.shape[0], step)])
    rows = np.arange(a.shape[0], dtype=np.int64)[:, None] * (n + 1)
    keys = np.sort((rows + b).ravel())  # globally unique keys row * (n + 1) + id
    q = (rows + a).ravel()
    pos = np.minimum(np.searchsorted(keys, q), keys.size - 1)
    return (keys[pos] == q).reshape(a.shape) if keys.size else np.zeros(a.shape, bool)


def _to_lists(a, keep, pool_size):
    """Per row of ``a``: its entries where ``keep``, the first ``pool_size`` of them."""
    return [row[k][:pool_size] for row, k in zip(a, keep)]


def pools_from_neighbours(anchors, euclid_ids, manifold_ids, manifold_vals, k_pos: int,
                          k_neg: int, pool_size: int):
    """P+ and P- per anchor from sorted neighbour lists (pure set formulas of docs/method.md §6).

    Args: ``anchors`` (A,); ``euclid_ids`` (A, >= max(k_pos, k_neg)) by Euclidean
    similarity descending; ``manifold_ids``/``manifold_vals`` (A, >= max(k_pos, k_neg))
    by manifold similarity descending; ``k_neg`` already capped. Ids equal to -1
    and manifold entries with value <= 0 are not neighbours.
    Returns (positives, positive_weights, negatives): lists of A arrays.
    """
    anchors = np.asarray(anchors, np.int64)
    e, m, mv = (np.asarray(a) for a in (euclid_ids, manifold_ids, manifold_vals))
    n = int(max(e.max(initial=0), m.max(initial=0), anchors.max(initial=0))) + 1
    m_valid = (mv > 0) & (m >= 0)
    m_neigh = np.where(m_valid, m, -1)  # manifold neighbours, -1 where not one
    not_self_m = m != anchors[:, None]
    not_self_e = e != anchors[:, None]
    # P+: first k_pos by manifold, valid, not among the first k_pos Euclidean
    mk, ek = m[:, :k_pos], e[:, :k_pos]
    in_e = _row_isin(mk, ek, n)
    keep_p = m_valid[:, :k_pos] & ~in_e & not_self_m[:, :k_pos]
    pos, posw = _to_lists(mk, keep_p, pool_size), _to_lists(mv[:, :k_pos], keep_p, pool_size)
    # P-: first k_neg Euclidean, not among the first k_neg manifold neighbours
    ekn, mkn = e[:, :k_neg], m_neigh[:, :k_neg]
    in_m = _row_isin(ekn, mkn, n)
    keep_n = (ekn >= 0) & ~in_m & not_self_e[:, :k_neg]
    neg = _to_lists(ekn, keep_n, pool_size)
    return pos, posw, neg


def baseline_from_neighbours(anchors, euclid_ids, k_pos: int, k_neg: int, pool_size: int):
    """Euclidean baseline pools: positives NN^e_{k+} minus r (cut at pool_size, weight 1),
    negatives Euclidean ranks k-+1 ... k-+pool_size. Returns (positives, weights, negatives)."""
    anchors = np.asarray(anchors, np.int64)
    e = np.asarray(euclid_ids)
    ok = (e >= 0) & (e != anchors[:, None])
    keep_p = ok.copy()
    keep_p[:, k_pos:] = False
    pos = _to_lists(e, keep_p, pool_size)
    posw = [np.ones(len(p), np.float32) for p in pos]
    keep_n = ok.copy()
    keep_n[:, :k_neg] = False
    neg = _to_lists(e, keep_n, pool_size)
    return pos, posw, neg


def _check_config(cfg: MiningConfig, n: int) -> None:
    if n <= cfg.k_graph:
        raise ValueError(f"mine: N={n} points but k_graph={cfg.k_graph}; need N > k_graph")
    for name in ("k_graph", "k_pos", "k_neg", "pool_size", "cg_iterations", "block_size", "n_anchors"):
        v = getattr(cfg, name)
        if v != "auto" and v < 1:
            raise ValueError(f"MiningConfig.{name} must be >= 1, got {v}")
    if cfg.k_pos != "auto" and cfg.k_pos > n:
        raise ValueError(f"MiningConfig.k_pos={cfg.k_pos} exceeds N={n}")


def mine(features, cfg: MiningConfig | None = None, progress: bool = False,
         device: str = "auto") -> Pools:
    """Mine P+/P- (and the Euclidean baseline) from features (N, D), L2-normalised.

    Steps: kNN (cfg.knn_index) -> mutual affinity -> anchors (cfg.anchors) -> truncated
    CG (or exact) manifold top-k -> pools. ``pools.baseline`` holds the Euclidean pools of
    the same kept anchors: positives NN^e_{k+} minus r (weight 1), negatives the pool_size
    nearest points outside NN^e_{k-}, i.e. Euclidean ranks k-+1 ... k-+pool_size.
    float64 input is converted to float32; bad input raises ValueError.
    ``device`` "auto" runs faiss (where it has a GPU) and the torch block CG on CUDA
    when available; ``cfg.cg_backend`` picks torch or numpy kernels for the CG.
    Example: ``pools = mine(x, MiningConfig(k_pos=50, k_neg=100)); pools.positives[0]``.
    """
    cfg = cfg or MiningConfig()
    x = check_features(features)  # (N, D) float32
    n = x.shape[0]
    _check_config(cfg, n)
    auto = "auto" in (cfg.k_pos, cfg.k_neg)
    clock = _Clock()
    idx = build_index(x, cfg.knn_index, device, nlist=cfg.knn_nlist, nprobe=cfg.knn_nprobe,
                      seed=cfg.seed)

    def euclid_depth(c: MiningConfig) -> int:  # Euclidean depth the pools need
        return min(n, max(c.k_pos, capped_k_neg(c.k_neg, n) + c.pool_size))

    # every point an anchor: one search serves both the graph and the pools (when the
    # depths are known before the graph is)
    k_all = (max(cfg.k_graph, euclid_depth(cfg)) if cfg.anchors == "all" and not auto
             else cfg.k_graph)
    sims, ids = search(idx, x, k_all, progress=progress, desc="kNN graph")  # (N, k_all)
    clock("knn")
    A = affinity(sims[:, :cfg.k_graph], ids[:, :cfg.k_graph], cfg.gamma)
    k_graph, k_graph_value, known = None, None, {}
    if cfg.adapt_k_graph:  # second pass: the graph's k from the first one's communities
        k_graph, k_graph_value, labels = adapted_k_graph(A, cfg.k_graph, seed=cfg.seed)
        if k_graph < cfg.k_graph:
            A = affinity(sims[:, :k_graph], ids[:, :k_graph], cfg.gamma)
        else:  # the same graph: its communities are already known
            known = {"labels": labels}
    if cfg.anchors != "all":  # the anchors get their own search below: free the (N, k) lists,
        sims = ids = None  # and an approximate index (faiss's HNSW holds a copy of x)
        idx = idx if cfg.knn_index == "flat" else None
    clock("graph")
    depths = resolve_depths(cfg, A, **known)
    if cfg.adapt_k_graph:
        depths = replace(depths, k_graph=k_graph, k_graph_value=k_graph_value)
    cfg = replace(cfg, k_pos=depths.k_pos, k_neg=depths.k_neg)  # numbers from here on
    _check_config(cfg, n)
    k_neg, k_e = capped_k_neg(cfg.k_neg, n), euclid_depth(cfg)
    if auto or cfg.adapt_k_graph:
        clock("depths")
    anchors, pi = select_anchors(A, cfg, progress=progress)
    clock("anchors")
    k_m = max(cfg.k_pos, k_neg)
    S, A = normalize(A), None  # the diffusion needs S only
    mvals, mids = manifold_topk(S, anchors, cfg.alpha, k_m, cfg.cg_iterations,
                                cfg.cg_tol, cfg.solver, cfg.block_size, progress,
                                dtype=np.dtype(cfg.cg_dtype), backend=cfg.cg_backend,
                                device=device)
    S = None
    clock("diffusion")
    if cfg.anchors == "all" and ids.shape[1] >= k_e:
        eids = ids[:, :k_e]  # (A, k_e), anchors = 0..N-1
    else:
        # chosen anchors: their Euclidean lists are exact whatever the graph's index (an
        # approximate one holds too few candidates at depth k- + pool_size, e.g. 10 050);
        # every point an anchor: the graph's index, as one search of all rows would be
        exact = idx if idx is not None else build_index(x, "flat", device)
        _, eids = search(exact, x, k_e, rows=anchors, progress=progress,
                         desc="Euclidean pools")  # (A, k_e), in batches of rows
        clock("euclidean")
    pos, posw, neg = pools_from_neighbours(anchors, eids, mids, mvals, cfg.k_pos, k_neg, cfg.pool_size)
    kept = np.array([len(p) > 0 and len(q) > 0 for p, q in zip(pos, neg)], dtype=bool)
    sel = np.flatnonzero(kept)
    bpos, bposw, bneg = baseline_from_neighbours(anchors[sel], eids[sel], cfg.k_pos, k_neg, cfg.pool_size)
    n_skipped = int(anchors.size - sel.size)
    if auto and sel.size == 0:
        raise ValueError(f"mine: with k_pos/k_neg=auto ({depths.statistic}={depths.value}: "
                         f"k+ {cfg.k_pos}, k- {k_neg}) every one of the {anchors.size} anchors "
                         "has an empty P+ or P-; give the depths as numbers")
    base = _make_pools(anchors[sel], bpos, bposw, bneg, n_skipped, "euclidean", cfg)
    pools = _make_pools(anchors[sel], [pos[i] for i in sel], [posw[i] for i in sel],
                        [neg[i] for i in sel], n_skipped, "mom", cfg)
    clock("pools")
    pools.baseline, pools.stationary, pools.timings = base, pi, clock.laps
    pools.depths = base.depths = depths
    return pools


class _Clock:
    """Wall seconds between successive calls, by stage name."""

    def __init__(self):
        self.laps, self.t = {}, time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self.t
        self.t = now


def _make_pools(anchors, pos, posw, neg, n_skipped, method, cfg) -> Pools:
    po, pi_ = _ragged(pos, np.int64)
    _, pw = _ragged(posw, np.float32)
    no, ni = _ragged(neg, np.int64)
    return Pools(np.asarray(anchors, np.int64), po, pi_, pw, no, ni, n_skipped, method, cfg)


def diagnostic_keys(pools: str = "mom") -> dict[str, str]:
    """``{"P+ precision": key, "P- purity": key}``: the keys of :func:`pool_diagnostics`'
    output that describe the ``pools`` ("mom", or "euclidean": the baseline, whose keys
    carry ``baseline_``). Per-anchor values are under ``key + "_per_anchor"``."""
    prefix = "baseline_" if pools == "euclidean" else ""
    return {"P+ precision": prefix + "pos_precision", "P- purity": prefix + "neg_purity"}


def pool_diagnostics(pools: Pools, features, labels) -> dict:
    """Label-based quality of the pools (evaluation only; Figure 3 in numbers).

    Returns means and per-anchor arrays (``*_per_anchor``, aligned with pools.anchors):
    ``pos_precision`` fraction of P+ sharing the anchor's label;
    ``pos_precision_euclid`` the same for the Euclidean neighbours at the same depth
    (ranks k+ + 1 ... k+ + |P+(r)|, just beyond the neighbours P+ excludes);
    ``baseline_pos_precision`` for the baseline positives (NN^e_{k+} minus r);
    ``neg_purity`` fraction of P- with a different label; ``baseline_neg_purity`` the
    same for the baseline negatives. Label -1 means unknown: such members are ignored,
    and anchors with unknown labels get NaN and are left out of the means.
    """
    x = check_features(features)
    labels = np.asarray(labels).ravel()
    if labels.shape[0] != x.shape[0]:
        raise ValueError(f"pool_diagnostics: {labels.shape[0]} labels for {x.shape[0]} features")
    mom = pools  # the pools diagnosed: MoM, or Euclidean ones on their own
    base = pools.baseline if pools.method == "mom" else None
    k_pos = pools.config.k_pos
    depth = int(mom.positives.sizes().max(initial=0))
    k_e = min(x.shape[0], k_pos + max(depth, 1))
    _, eids = knn(x, k_e, rows=mom.anchors)  # (A, k_e) NN^e, each anchor first
    same_depth = [eids[i, k_pos:k_pos + len(p)] for i, p in enumerate(mom.positives)]
    out = {"n_anchors": len(mom), "n_skipped": int(mom.n_skipped),
           "anchors": mom.anchors.copy()}
    parts = {"pos_precision": (mom.positives, True),
             "pos_precision_euclid": (same_depth, True),
             "neg_purity": (mom.negatives, False)}
    if base is not None:
        parts.update({"baseline_pos_precision": (base.positives, True),
                      "baseline_neg_purity": (base.negatives, False)})
    for name, (lists, same) in parts.items():
        per = _label_fraction(mom.anchors, lists, labels, same)
        out[name + "_per_anchor"] = per
        out[name] = float(np.nanmean(per)) if np.isfinite(per).any() else float("nan")
    out["pos_size_per_anchor"] = mom.positives.sizes()
    out["neg_size_per_anchor"] = mom.negatives.sizes()
    return out


def _label_fraction(anchors, lists, labels, same: bool) -> np.ndarray:
    per = np.full(len(anchors), np.nan)
    for i, (a, members) in enumerate(zip(anchors, lists)):
        la, lm = labels[a], labels[np.asarray(members, np.int64)]
        lm = lm[lm >= 0]
        if la < 0 or lm.size == 0:
            continue
        per[i] = np.mean(lm == la) if same else np.mean(lm != la)
    return per
