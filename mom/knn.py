"""k-nearest neighbours by inner product (faiss), and input checks for features.

Similarity is the inner product, which is the cosine on the L2-normalised
descriptors mining works on; larger is closer everywhere in the package.
Every row's own index is placed first (rank 1), so duplicated rows or an
approximate index can never push a point out of its own neighbour list.
"""
from __future__ import annotations

import math

import faiss
import numpy as np

__all__ = ["check_features", "build_index", "search", "knn", "faiss_device"]

INDEXES = ("flat", "ivf", "hnsw")


def check_features(features, name: str = "features", norm_tol: float | None = 1e-3) -> np.ndarray:
    """Validate an (N, D) array of L2-normalised descriptors; return it as C-contiguous float32.

    float64/float16 are converted to float32; integer, boolean, complex or object
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
    x = np.ascontiguousarray(x, dtype=np.float32)  # (N, D)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(f"{name}: {bad.size} row(s) contain NaN or inf (first: row {bad[0]})")
    if norm_tol is None:
        return x
    norms = np.linalg.norm(x, axis=1)  # (N,)
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
    """Resolve ``"auto"``/``"cpu"``/``"cuda"`` to where faiss will actually run."""
    if device not in ("auto", "cpu", "cuda", "gpu") and not str(device).startswith("cuda"):
        return "cpu"  # e.g. "mps": faiss has no such backend
    if device == "cpu":
        return "cpu"
    has_gpu = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    if not has_gpu and device != "auto":
        raise ValueError(f"device={device!r}: faiss has no GPU here (faiss-cpu or no CUDA device)")
    return "cuda" if has_gpu else "cpu"


def build_index(features: np.ndarray, index: str = "flat", device: str = "cpu", *,
                nlist: int | None = None, nprobe: int = 8, hnsw_m: int = 16,
                ef_search: int = 64, seed: int = 0):
    """A faiss inner-product index holding ``features`` (N, D) float32.

    ``flat`` is exact; ``ivf`` (IVFFlat with ``nlist`` ~ 2 sqrt(N) lists trained by
    10 k-means iterations on 40 points a list, ``nprobe`` lists searched) and
    ``hnsw`` (graph with ``hnsw_m`` links, ``ef_search`` >= k + 1 candidates) are
    approximate and meant for large N, where exact search costs N^2 D.
    ``device="auto"`` moves flat/ivf to the GPU where faiss has one.
    """
    if index not in INDEXES:
        raise ValueError(f"knn index {index!r} unknown; expected one of {INDEXES}")
    n, d = features.shape
    if index == "flat":
        idx = faiss.IndexFlatIP(d)
    elif index == "ivf":
        nlist = nlist or max(1, min(int(2 * math.sqrt(n)), n // 40))
        idx = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        idx.cp.seed, idx.cp.niter = seed, 10
        rng = np.random.default_rng(seed)
        idx.train(features[rng.choice(n, size=min(n, 40 * nlist), replace=False)])
        idx.nprobe = min(nlist, nprobe)
    else:
        idx = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        idx.hnsw.efConstruction = 40
        idx.hnsw.efSearch = ef_search
    if index != "hnsw" and faiss_device(device) == "cuda":
        idx = faiss.index_cpu_to_all_gpus(idx)
    idx.add(features)
    return idx


def search(idx, features: np.ndarray, k: int, rows: np.ndarray | None = None,
           batch: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of ``features[rows]`` in ``idx``; the row itself is placed first.

    Returns (sims (Q, k) float32 descending, ids (Q, k) int64). Slots an
    approximate index could not fill hold id -1 and similarity -inf.
    """
    n = features.shape[0]
    rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    if hasattr(idx, "hnsw"):
        idx.hnsw.efSearch = max(idx.hnsw.efSearch, k + 1)
    sims = np.empty((rows.size, k), np.float32)
    ids = np.empty((rows.size, k), np.int64)
    for s in range(0, rows.size, batch):
        q = rows[s:s + batch]
        # one spare slot so that self can be moved to the front without losing a neighbour
        xq = features[q]  # (b, D)
        d_, i_ = idx.search(xq, min(k + 1, n))
        sims[s:s + batch], ids[s:s + batch] = _self_first(xq, q, d_, i_, k)
    return sims, ids


def _self_first(xq, q, d_, i_, k):
    """Put query q[i] at rank 1 of its own list, keep the others in order, cut to k."""
    d_ = np.where(i_ < 0, -np.inf, d_).astype(np.float32)
    not_self = i_ != q[:, None]  # (Q, k+1)
    # stable sort: False (self) first, then the original order
    order = np.argsort(not_self, axis=1, kind="stable")
    i_ = np.take_along_axis(i_, order, axis=1)
    d_ = np.take_along_axis(d_, order, axis=1)
    missing = not_self.all(axis=1)  # self not returned (ties, approximate index)
    if missing.any():
        i_[missing, 1:] = i_[missing, :-1]
        d_[missing, 1:] = d_[missing, :-1]
        i_[missing, 0] = q[missing]
        d_[missing, 0] = np.einsum("ij,ij->i", xq[missing], xq[missing])
    if i_.shape[1] < k:
        raise ValueError(f"knn: k={k} exceeds the number of points {i_.shape[1]}")
    return d_[:, :k], i_[:, :k]


def knn(features, k: int, index: str = "flat", device: str = "cpu", rows=None,
        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours by inner product, the point itself included at rank 1.

    Args: ``features`` (N, D) L2-normalised; ``k`` <= N; ``index`` flat | ivf | hnsw;
    ``device`` cpu | auto | cuda; ``rows`` optional query row indices (default all).
    Returns (sims (Q, k) float32, ids (Q, k) int64), each row sorted by similarity.

    Example: ``sims, ids = knn(x, 30)``; ``ids[:, 0] == arange(N)``.
    """
    x = check_features(features)
    n = x.shape[0]
    if not 1 <= int(k) <= n:
        raise ValueError(f"knn: k={k} must be between 1 and the number of points N={n}")
    idx = build_index(x, index, device, seed=seed)
    return search(idx, x, int(k), rows)
