"""k-nearest neighbours by inner product, and input checks for features.

The one home of Euclidean neighbours in the package: mining's graph and pools,
Recall@K and MAP@R, the pool diagnostics, the Figure 3 galleries and the pool
inspector all call :func:`knn` (or :func:`search` on an index they reuse).
Similarity is the inner product, which is the cosine on the L2-normalised
descriptors mining works on; larger is closer everywhere in the package.

The query itself, by default, is placed first (rank 1), so duplicated rows or an
approximate index can never push a point out of its own neighbour list
(docs/method.md §3). ``exclude_self=True`` instead returns the k nearest *other*
rows, the query removed by index, not by rank (docs/method.md §11).

On the CPU the ``flat`` and ``ivf`` indexes hold the features by reference, not a copy
(at a million 512-d rows a copy is 2 GB): ``flat`` is :class:`FlatIndex` (faiss's exact
search, ``faiss.knn``), ``ivf`` is :class:`IVFIndex` (faiss-trained centroids and lists of
row ids, searched list by list with one matrix product per list). ``hnsw`` and every GPU
index are faiss indexes with their own copy.
"""
from __future__ import annotations

import math
import os

import faiss
import numpy as np

__all__ = ["check_features", "build_index", "search", "knn", "faiss_device", "FlatIndex",
           "IVFIndex", "default_nlist"]

INDEXES = ("flat", "ivf", "hnsw")  # faiss indexes (MiningConfig.knn_index)
DENSE = "dense"  # numpy: a few rows at a time, exact, ties lower index first
CHECK_ROWS = 16384  # rows per chunk of check_features (no (N, D) temporary)
RESULT_BYTES = 64 << 20  # search: one batch's results (Q, k + 1) stay below this


def check_features(features, name: str = "features", norm_tol: float | None = 1e-3) -> np.ndarray:
    """Validate an (N, D) array of L2-normalised descriptors; return it as C-contiguous float32.

    float64/float16 are converted to float32; C-contiguous float32 input (a memory-mapped
    ``.npy`` too, ``np.load(path, mmap_mode="r")``) is returned as it is, not copied, and
    checked ``CHECK_ROWS`` rows at a time. Integer, boolean, complex or object
    arrays, wrong shapes, empty arrays, non-finite values, zero rows and rows whose
    norm differs from 1 by more than ``norm_tol`` raise ValueError naming the problem.
    ``norm_tol=None`` accepts any finite rows (no zero-row or norm check).
    """
    x = np.asarray(features)
    if x.dtype.kind != "f":
        raise ValueError(f"{name}: expected a floating-point array, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (N, D), got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name}: empty array of shape {x.shape}")
    if x.dtype != np.float32 or not x.flags.c_contiguous:
        x = np.ascontiguousarray(x, dtype=np.float32)  # (N, D)
    n = x.shape[0]
    finite = np.empty(n, bool)
    norms = np.empty(n, np.float32)
    for s in range(0, n, CHECK_ROWS):  # chunks: no (N, D) temporary beside x
        c = x[s:s + CHECK_ROWS]
        finite[s:s + CHECK_ROWS] = np.isfinite(c).all(axis=1)
        if norm_tol is not None:
            norms[s:s + CHECK_ROWS] = np.linalg.norm(c, axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(f"{name}: {bad.size} row(s) contain NaN or inf (first: row {bad[0]})")
    if norm_tol is None:
        return x
    if (norms == 0).any():
        bad = np.flatnonzero(norms == 0)
        raise ValueError(f"{name}: {bad.size} all-zero row(s) (first: row {bad[0]}); "
                         "a zero vector has no direction to compare")
    off = np.abs(norms - 1.0) > norm_tol
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(f"{name}: {int(off.sum())} row(s) are not L2-normalised "
                         f"(row {i} has norm {norms[i]:.6g}); normalise the rows first")
    return x


def faiss_device(device: str = "cpu") -> str:
    """Resolve ``"auto"``/``"cpu"``/``"cuda"`` to where faiss will actually run.

    This asks faiss (a faiss-gpu build and a GPU it sees), not torch, so it is not
    :func:`mom.device.resolve_device`: torch may see a GPU that faiss-cpu cannot use."""
    if device not in ("auto", "cpu", "cuda", "gpu") and not str(device).startswith("cuda"):
        return "cpu"  # e.g. "mps": faiss has no such backend
    if device == "cpu":
        return "cpu"
    has_gpu = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    if not has_gpu and device != "auto":
        raise ValueError(f"device={device!r}: faiss has no GPU here (faiss-cpu or no CUDA device)")
    return "cuda" if has_gpu else "cpu"


def default_nlist(n: int) -> int:
    """IVF lists for N rows when none is given: about 2 sqrt(N), at least 40 rows a list."""
    return max(1, min(int(2 * math.sqrt(n)), n // 40))


class FlatIndex:
    """Exact inner-product search over ``features`` (N, D) float32, held by reference.

    ``search(xq, k)`` is ``faiss.knn``: the computation of faiss's ``IndexFlatIP`` (the
    same BLAS blocks and heaps, so the same neighbours, similarities and tie order),
    without the index's copy of the vectors.
    """

    def __init__(self, features: np.ndarray):
        self.features = np.ascontiguousarray(features, dtype=np.float32)  # (N, D), not copied
        self.ntotal, self.d = features.shape

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return faiss.knn(xq, self.features, k, faiss.METRIC_INNER_PRODUCT)


class IVFIndex:
    """Inverted file over ``features`` (N, D) float32, held by reference: ``nlist``
    centroids (a faiss flat quantizer) and, per list, the ids of the rows assigned to it.

    A query is compared exactly with the rows of its ``nprobe`` nearest lists, the
    candidates faiss's ``IndexIVFFlat`` compares. :meth:`search_rows` goes list by list
    rather than query by query: the queries that probe a list are multiplied with its
    rows in one BLAS product (``faiss.knn``) and their running top-k kept in faiss heaps,
    which is several times faster than the per-query scan when many rows are searched at
    once (the kNN graph). Memory: the (N, ``probes.shape[1]``) nearest lists of every row
    (computed once with the assignment) and the list order, int64; never a copy of the rows.
    """

    def __init__(self, features: np.ndarray, quantizer, probes: np.ndarray, nprobe: int):
        self.features = features  # (N, D), not copied
        self.ntotal, self.d = features.shape
        self.quantizer = quantizer  # faiss.IndexFlatIP holding the (nlist, D) centroids
        self.nlist = quantizer.ntotal
        self.nprobe = min(int(nprobe), self.nlist)
        self._probes = probes  # (N, p) nearest lists of each row, nearest first; column 0 its list
        assign = probes[:, 0]
        self.order = np.argsort(assign, kind="stable")  # row ids grouped by list, ascending in a list
        self.offsets = np.searchsorted(assign[self.order], np.arange(self.nlist + 1))  # (nlist + 1,)

    def members(self, lst: int) -> np.ndarray:
        """Row ids of list ``lst``, ascending."""
        return self.order[self.offsets[lst]:self.offsets[lst + 1]]

    def probes(self, rows: np.ndarray) -> np.ndarray:
        """(Q, min(nprobe, nlist)) int64: the lists each of ``features[rows]`` searches,
        nearest first."""
        p = min(int(self.nprobe), self.nlist)
        if p <= self._probes.shape[1]:
            return self._probes[rows, :p]
        return _nearest_lists(self.quantizer, self.features, p, rows)

    def search_rows(self, rows: np.ndarray, k: int, progress: bool = False,
                    desc: str = "kNN search", threads: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` of ``features[rows]`` among the rows of their ``nprobe`` lists, list by
        list. Returns (sims (Q, k) float32 descending, ids (Q, k) int64); slots left empty
        (fewer candidates than k) hold id -1.

        The queries are split into ``threads`` contiguous groups (default: the CPUs this
        process may use, at most 4), each searched by one thread with its own heaps and one
        OpenMP thread in faiss: the per-list products are small, and faiss's own threads
        spend more time waiting for each other on them than computing (5x slower with 2 on a
        busy 2-core machine). A query's result does not depend on the thread count.
        """
        from concurrent.futures import ThreadPoolExecutor

        from tqdm.auto import tqdm

        rows = np.asarray(rows, dtype=np.int64)
        probes = self.probes(rows)  # (Q, p)
        p = probes.shape[1]
        probes = probes.ravel()  # (Q * p,)
        by_list = np.argsort(probes, kind="stable")  # query slots grouped by list
        bounds = np.searchsorted(probes[by_list], np.arange(self.nlist + 1))
        del probes
        threads = max(1, min(threads or _cpus(4), rows.size))
        edges = np.linspace(0, rows.size, threads + 1).astype(np.int64)
        bar = tqdm(total=self.nlist, desc=desc, disable=not progress, leave=False, unit="list")

        def group(g: int) -> tuple[np.ndarray, np.ndarray]:
            faiss.omp_set_num_threads(1)  # this thread only (OpenMP settings are per thread)
            lo, hi = int(edges[g]), int(edges[g + 1])
            heap = faiss.ResultHeap(hi - lo, k, keep_max=True)
            for lst in range(self.nlist):
                queries = by_list[bounds[lst]:bounds[lst + 1]] // p  # positions in rows, ascending
                queries = queries[np.searchsorted(queries, lo):np.searchsorted(queries, hi)]
                members = self.members(lst)
                if queries.size and members.size:
                    d_, i_ = faiss.knn(self.features[rows[queries]], self.features[members],
                                       min(k, members.size), faiss.METRIC_INNER_PRODUCT)
                    heap.add_result_subset(queries - lo, d_, members[i_])
                if g == 0:
                    bar.update()
            heap.finalize()  # each row sorted, largest first
            return heap.D, heap.I

        with ThreadPoolExecutor(max_workers=threads) as pool:
            parts = list(pool.map(group, range(threads)))
        bar.close()
        if threads == 1:
            return parts[0]
        return np.concatenate([d for d, _ in parts]), np.concatenate([i for _, i in parts])


def _cpus(most: int) -> int:
    """CPUs this process may use, at most ``most``."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(most, n))


def _nearest_lists(quantizer, features, p: int, rows=None, batch: int = 16384) -> np.ndarray:
    """(Q, p) int64: the ``p`` centroids of ``quantizer`` nearest to each of ``features[rows]``
    (all rows when None), nearest first, computed ``batch`` rows at a time."""
    n = features.shape[0] if rows is None else len(rows)
    out = np.empty((n, p), np.int64)
    for s in range(0, n, batch):
        xq = features[s:s + batch] if rows is None else features[rows[s:s + batch]]
        out[s:s + batch] = quantizer.search(np.ascontiguousarray(xq), p)[1]
    return out


def build_index(features: np.ndarray, index: str = "flat", device: str = "cpu", *,
                nlist: int | None = None, nprobe: int = 8, hnsw_m: int = 16,
                ef_search: int = 64, seed: int = 0):
    """An inner-product index over ``features`` (N, D) float32, for :func:`search`.

    ``flat`` is exact; ``ivf`` (``nlist`` lists, default :func:`default_nlist` ~ 2 sqrt(N),
    centroids trained by faiss k-means, 10 iterations on 40 rows a list; ``nprobe`` lists
    searched) and ``hnsw`` (graph with ``hnsw_m`` links, ``ef_search`` >= k + 1 candidates)
    are approximate and meant for large N, where exact search costs N^2 D.
    On the CPU, ``flat`` is a :class:`FlatIndex` and ``ivf`` an :class:`IVFIndex`, both
    holding ``features`` by reference (keep the array alive and unchanged); ``hnsw`` is a
    faiss index with its own copy. ``device="auto"`` moves flat/ivf to the GPU where faiss
    has one (faiss indexes with a copy there).
    """
    if index not in INDEXES:
        raise ValueError(f"knn index {index!r} unknown; expected one of {INDEXES}")
    n, d = features.shape
    gpu = index != "hnsw" and faiss_device(device) == "cuda"
    if index == "flat":
        if not gpu:
            return FlatIndex(features)
        idx = faiss.IndexFlatIP(d)
    elif index == "ivf":
        nlist = min(int(nlist), n) if nlist else default_nlist(n)
        idx = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        idx.cp.seed, idx.cp.niter = seed, 10
        rng = np.random.default_rng(seed)
        idx.train(np.ascontiguousarray(features[rng.choice(n, size=min(n, 40 * nlist), replace=False)]))
        idx.nprobe = min(nlist, nprobe)
        if not gpu:
            quantizer = faiss.IndexFlatIP(d)
            quantizer.add(idx.quantizer.reconstruct_n(0, nlist))  # (nlist, D) centroids
            # every row's nprobe nearest lists at once: the first is the list it belongs to
            probes = _nearest_lists(quantizer, features, min(nlist, nprobe))
            return IVFIndex(features, quantizer, probes, nprobe)
    else:
        idx = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        idx.hnsw.efConstruction = 40
        idx.hnsw.efSearch = ef_search
    if gpu:
        idx = faiss.index_cpu_to_all_gpus(idx)
    idx.add(features)
    return idx


def search(idx, features: np.ndarray, k: int, rows: np.ndarray | None = None,
           batch: int | None = None, *, exclude_self: bool = False, progress: bool = False,
           desc: str = "kNN search") -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of ``features[rows]`` in the index ``idx`` (built on ``features``).

    ``exclude_self=False``: the row itself is placed first, the others follow in
    the index's order. ``exclude_self=True``: the ``k`` nearest other rows; the index is
    asked for ``k + 1`` and the query's own column is removed by index, or, when
    it did not return the query (exact duplicates listed before it), the
    ``(k + 1)``-th. Queries go to the index ``batch`` rows at a time (default: as many
    as keep one batch's (batch, k + 1) results under ``RESULT_BYTES``, at most 16 384;
    a ``desc`` progress bar over the batches when ``progress``); an :class:`IVFIndex`
    searches all ``rows`` list by list in one pass (its bar counts lists). Ties: see
    :func:`knn`. Returns (sims (Q, k) float32 descending, ids (Q, k) int64). Slots an
    approximate index could not fill hold id -1 and similarity -inf.
    """
    from tqdm.auto import tqdm

    n = features.shape[0]
    rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    if exclude_self and k + 1 > n:
        raise ValueError(f"knn: k={k} other points requested but there are only {n - 1}")
    if hasattr(idx, "hnsw"):
        idx.hnsw.efSearch = max(idx.hnsw.efSearch, k + 1)
    kk = min(k + 1, n)  # one spare slot: self can be moved to the front, or removed
    batch = batch or max(1, min(16384, RESULT_BYTES // (12 * kk)))
    by_list = isinstance(idx, IVFIndex)
    if by_list:
        d_all, i_all = idx.search_rows(rows, kk, progress=progress, desc=desc)  # (Q, kk)
    sims = np.empty((rows.size, k), np.float32)
    ids = np.empty((rows.size, k), np.int64)
    for s in tqdm(range(0, rows.size, batch), desc=desc, disable=not progress or by_list,
                  leave=False, unit="batch"):
        q = rows[s:s + batch]
        if by_list:
            d_, i_ = d_all[s:s + batch], i_all[s:s + batch]
        else:
            d_, i_ = idx.search(np.ascontiguousarray(features[q]), kk)  # (b, kk)
        d_ = np.where(i_ < 0, -np.inf, d_).astype(np.float32)
        if exclude_self:
            sims[s:s + batch], ids[s:s + batch] = _without_self(q, d_, i_, k)
        else:
            sims[s:s + batch], ids[s:s + batch] = _self_first(features, q, d_, i_, k)
    return sims, ids


def _without_self(q, d_, i_, k):
    """Remove query q[i] from its (k+1)-list by index; if it is not there, drop the last."""
    drop = i_ == q[:, None]  # (Q, k+1) the query's own column
    drop[~drop.any(axis=1), -1] = True  # query not returned: drop the (k+1)-th instead
    return d_[~drop].reshape(-1, k), i_[~drop].reshape(-1, k)


def _self_first(features, q, d_, i_, k):
    """Put query q[i] at rank 1 of its own list, keep the others in order, cut to k."""
    not_self = i_ != q[:, None]  # (Q, k+1)
    # stable sort: False (self) first, then the original order
    order = np.argsort(not_self, axis=1, kind="stable")
    i_ = np.take_along_axis(i_, order, axis=1)
    d_ = np.take_along_axis(d_, order, axis=1)
    missing = not_self.all(axis=1)  # self not returned (ties, approximate index)
    if missing.any():
        xq = features[q[missing]]  # (m, D)
        i_[missing, 1:] = i_[missing, :-1]
        d_[missing, 1:] = d_[missing, :-1]
        i_[missing, 0] = q[missing]
        d_[missing, 0] = np.einsum("ij,ij->i", xq, xq)
    if i_.shape[1] < k:
        raise ValueError(f"knn: k={k} exceeds the number of points {i_.shape[1]}")
    return d_[:, :k], i_[:, :k]


def knn(features, k: int, index: str = "flat", device: str = "cpu", rows=None,
        seed: int = 0, *, exclude_self: bool = False, norm_tol: float | None = 1e-3,
        batch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours by inner product: the one neighbour search of the package.

    Args: ``features`` (N, D), L2-normalised to ``norm_tol`` (None: any finite rows;
    :func:`check_features`); ``index`` flat | ivf | hnsw (faiss, :func:`build_index`)
    or ``"dense"`` (numpy, below); ``device`` cpu | auto | cuda (faiss only); ``rows``
    optional query row indices (default all); ``batch`` query rows per index call
    (default: sized from k, :func:`search`).

    The query itself:
    - ``exclude_self=False`` (the kNN graph, docs/method.md §3): the point itself at
      rank 1, then its k - 1 nearest others; 1 <= k <= N.
    - ``exclude_self=True`` (Recall@K, MAP@R, galleries, docs/method.md §11): the k
      nearest *other* points, the query removed by index, not by rank, so an exact
      duplicate listed before the query still counts; 1 <= k <= N - 1.

    Ties (equal similarities): with faiss, which members of a group tied at the k-th
    place are returned and in what order is faiss's choice (the CPU flat index of
    faiss 1.15 keeps the lowest indices for k + 1 < 100 and lists tied members higher
    index first); mining and Recall@K use that order as it comes. ``index="dense"``
    computes ``x @ x[r]`` with numpy for one query row at a time and sorts it stably:
    exact over all N, ties lower index first, equal to
    ``[j for j in argsort(-x @ x[r], kind="stable") if j != r]`` (self prepended when
    not excluded). It costs O(N log N) a row: meant for a few rows (the Figure 3
    galleries, the pool inspector), not for whole collections.

    Returns (sims (Q, k) float32, ids (Q, k) int64), each row sorted by similarity
    (after the query itself when it is included).

    Example: ``sims, ids = knn(x, 30)``; ``ids[:, 0] == arange(N)``;
    ``knn(x, 4, exclude_self=True)[1]`` never holds the query.
    """
    if index not in INDEXES + (DENSE,):
        raise ValueError(f"knn index {index!r} unknown; expected one of {INDEXES + (DENSE,)}")
    x = check_features(features, norm_tol=norm_tol)
    n = x.shape[0]
    if exclude_self and not 1 <= int(k) <= n - 1:
        raise ValueError(f"knn: k={k} must be between 1 and the number of other points N-1={n - 1}")
    if not 1 <= int(k) <= n:
        raise ValueError(f"knn: k={k} must be between 1 and the number of points N={n}")
    if index == DENSE:
        return _dense(x, int(k), rows, exclude_self)
    idx = build_index(x, index, device, seed=seed)
    return search(idx, x, int(k), rows, batch, exclude_self=exclude_self)


def _dense(x: np.ndarray, k: int, rows, exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
    """``index="dense"`` of :func:`knn`: numpy products, one row at a time, stable sort."""
    n = x.shape[0]
    rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64).ravel()
    sims = np.empty((rows.size, k), np.float32)
    ids = np.empty((rows.size, k), np.int64)
    for i, r in enumerate(rows):
        s = x @ x[r]  # (N,)
        order = np.argsort(-s, kind="stable")  # ties: lower index first
        order = order[order != r]  # the query removed by index
        if not exclude_self:
            order = np.concatenate([[r], order])
        ids[i] = order[:k]
        sims[i] = s[ids[i]]
    return sims, ids
