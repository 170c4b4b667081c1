"""Benchmark mining: block CG (``mom.mine``) against a per-anchor scipy CG loop, and
the release's retrieval setting at up to a million descriptors.

Part 1 (default): CUB size, N = 5 864, D = 512, every point an anchor; the
reference runs the same graph and pool code but solves one anchor at a time
with ``scipy.sparse.linalg.cg`` (x0 = 0, maxiter = cg_iterations). Prints both
times, the speed ratio and the agreement of the pools (mean Jaccard of P+ and P-).
Part 2 (``--large``): N = 100 000 with (up to) 1 500 stationary anchors and an
IVF index (exact search would cost N^2 D); prints wall and CPU time, the time of
each stage and peak memory (ru_maxrss). ``--dtype`` is mine's CG precision: float32
(MiningConfig's default: half the memory traffic of the sparse x block product, which
is where most of the speed is) or float64 (the release's); the reference stays float64,
so the Jaccard columns also measure what single precision changes in the pools.
``--backend`` is mine's ``MiningConfig.cg_backend`` (torch or numpy kernels for the block
CG); ``--device cuda`` runs mine (faiss where it has a GPU, and the torch CG) on a GPU.
torch is imported before timing, as in the pipeline (which embeds with torch first).

Notes from earlier measurements of the CG's settings (2 CPU cores; the reasons behind
the constants of ``mom/diffusion.py``, not re-measured by this script):
- block width (``CACHE_BYTES``, ``MIN_BLOCK``): at N = 5 864, blocks of 1 024 columns
  were 2-3x slower per column than 64-256; at N = 100 000, 16 columns cost 1.5x more
  per column than 64.
- torch kernels (``TORCH_CACHE_BYTES``): fastest with one (N, b) array of about
  1.5 MiB per block at N = 5 864; the torch CG was 1.2-1.4x faster than the numpy one
  on the CPU there.
- threads: 2 torch OpenMP threads per block were 7x slower than 1 on a busy machine
  (they spin-wait), hence one torch thread per block.

At scale (each runs alone):

``--retrieval`` (default N 1 000 000, D 512): the release's retrieval setting end to end
through ``mom.mine``: kNN graph k 30 (mutual, s^3) with ``--index`` (MiningConfig.knn_index,
default ivf with knn_nlist about 2 sqrt(N) and knn_nprobe 8), stationary distribution,
1 500 modes as anchors, P+ / P- with k+ 50 and k- 10 000 (the anchors' Euclidean lists
exact). The descriptors are a float32 ``.npy`` read memory-mapped: ``--features``, or the
synthetic data below, written once into ``--data-dir`` (2 GB at 1M). Prints each stage's
seconds (``pools.timings``; "check" is the input check before them), peak memory per
stage, the share of rows in the graph's largest component (where the anchors are) and
recall@30 of the graph's index against exact search on 1 000 sampled rows (the index
built again after mine, the same seed giving the same index, outside mine's time).

``--index-curve`` (default N 200 000): recall@30 against seconds: for each setting, build
the index and search every row for its 30 neighbours as mine does. Kinds: ``ivf``
(mom.knn.IVFIndex: faiss-trained centroids, searched list by list, no copy of the rows),
``faiss-ivf`` (faiss's IndexIVFFlat: the same candidates scanned query by query, with its
own copy), ``ivf-sq8`` (IndexIVFScalarQuantizer, 8 bits a dimension), ``hnsw``
(IndexHNSWFlat, efConstruction 40). ``--curve KIND:nlist=..:nprobe=a,b`` picks settings.

Memory: a thread reads VmHWM (the peak RSS) every 20 ms and resets it, so each stage's
figure is its exact peak. RSS counts the resident pages of the memory-mapped features
(0.38 GB at 200 000, 1.9 GB at 1M) and of the shared libraries (about 0.4 GB with torch);
``anon`` (sampled) leaves both out.

Data at scale: ``clustered`` with spread 2.0 and ``--drift 1`` (super-clusters along a
random walk). Why not the ``--large`` data (spread 2.5, super-clusters apart): a row's exact
30 nearest are half noise there (47% from its own cluster at N 100 000; at 1M, by the
similarities' spread, about 5 unrelated rows a query pass its 30th), so IVF reached 0.85 only when
scanning 20% of the rows (nlist 316, nprobe 64). At spread 2.0 with the super-clusters
apart, the largest component hangs on chance similarities between super-clusters, which an
index finds only by scanning about 1% of the rows per query (N 200 000, 894 lists,
nprobe 4 / 8 / 16: 2% / 82% / 99.5% of the rows in the largest component, for recall@30
0.971 / 0.980 / 0.983). With the drift, consecutive super-clusters overlap as on a manifold,
and the component holds 99.9% of the rows from nprobe 8 (98% at nprobe 4).

Measured on 2 cores shared with another engineer's jobs, which kept 1-2 of them busy
throughout (CPU time = wall time: about one core was ours; a quiet machine should be
faster), float32 torch CG, defaults above:

  --retrieval       N 100 000    N 200 000
  check              0.1 s        0.2 s
  knn               8.8          19.8       (IVF build + search of every row)
  graph             0.8           0.8
  anchors           3.8           8.3       (1 000 power iterations)
  diffusion        10.0          19.1       (1 500 anchors, top 10 000 each)
  euclidean         7.6          10.1       (exact lists of the anchors, depth 10 050)
  pools             3.2           2.8
  total (CPU)      34.1 s (33.2)  61.0 s (60.5)
  peak RSS          1.71 GB       1.91 GB   (anon 1.09 / 1.10 GB)
  recall@30         0.972         0.976
  largest component 99.9%         99.9%     (1 500 anchors, none skipped)

  main's mine before this work (2ba0d6b) on the same N 200 000 data: 107 s of CPU
  (162 s wall on a busier machine), 2.88 GB, and only 868 anchors kept, with P- of 5.8
  members on average instead of 50: its anchor lists came from the IVF index, which
  holds fewer than 10 050 candidates per query. On spread 2.0 without drift: 102 s
  (knn 45.9, graph 1.1, anchors 14.7, diffusion 34.8, pools 4.0), 2.95 GB, against 62 s,
  2.39 GB here (before the pools' set tests went in blocks).

  --index-curve, N 200 000 (build + search of every row, recall@30, largest component):
  ivf nlist  447  nprobe 4 / 8 / 16: 13.4 / 21.4 / 33.2 s, 0.965 / 0.984 / 0.989
  ivf nlist  894  nprobe 2 / 4 / 8 / 16: 12.2 / 14.9 / 20.1 / 29.5 s,
                  0.862 / 0.942 / 0.976 / 0.986, component 11% / 99.8% / 99.9% / 100%
  ivf nlist 1788  nprobe 4 / 8 / 16: 29.6 / 32.6 / 39.8 s, 0.904 / 0.954 / 0.979
  faiss-ivf  894  nprobe 4 / 8: 28.6 / 44.4 s (the same recall as ivf; 1.89 GB vs 1.40)
  ivf-sq8    894  nprobe 8: 24.7 s, 0.971
  N 100 000: ivf 632 nprobe 8 8.7 s, 0.972; faiss-ivf 16.7 s; ivf-sq8 10.8 s, 0.967;
  hnsw M 32 efSearch 64 / 128: 41.6 / 58.6 s, 0.932 / 0.962 (build 18 s).

Choice: ivf, nlist about 2 sqrt(N), nprobe 8 (the defaults): recall 0.97-0.98 with a
connected graph, 2.2x faster than faiss's own IVF at the same candidates and without its
copy of the rows; nprobe 4 is 25% faster but at the edge of the 0.95 target (0.942);
nlist sqrt(N) with nprobe 4 scans as many rows with a cheaper build (0.965 at 200 000).

Extrapolated to N 1 000 000 (not measured; the IVF build and search grow as N^1.5 with
nlist ~ sqrt(N), 11x from 200 000; anchors, graph and the exact anchor search as N):
knn about 200 s, anchors 40 s, euclidean 50 s, diffusion 20-40 s (a column's CG support
reached 80 000 of 200 000 rows in 20 steps; at most full), graph 4 s, pools 3 s: about
5.5-6 minutes on one core's worth, under the 8-minute target; peak RSS about 4-5.5 GB
(1.9 GB of it the memory-mapped features; at most 2 GiB of CG blocks), under 6 GB.
Still to be measured. The 1M run:

  python benchmarks/bench_mining.py --retrieval --n 1000000 --json retrieval-1m.json

The release reports that mining at this size "will take few hours".

Usage: python benchmarks/bench_mining.py [--large] [--n 5864] [--dim 512]
       python benchmarks/bench_mining.py --retrieval [--n 1000000] [--nprobe 8] [--features X.npy]
       python benchmarks/bench_mining.py --index-curve [--n 200000] [--curve ivf:nlist=894:nprobe=4,8]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.sparse.linalg import cg

from mom import MiningConfig, mine
from mom.diffusion import _sort_rows, _topk_columns, laplacian
from mom.graph import affinity, largest_component, normalize
from mom.knn import build_index, default_nlist, search
from mom.mining import capped_k_neg, pools_from_neighbours


def clustered(n: int, dim: int, n_clusters: int, seed: int = 0, spread: float = 3.0,
              out: np.ndarray | None = None, drift: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded synthetic descriptors: Gaussian clusters on the unit sphere, grouped
    under n_clusters // 10 super-clusters so that neighbouring clusters overlap.
    ``drift``: the super-clusters follow a random walk on the sphere instead of lying
    apart (each the previous one plus ``drift`` times a random direction, normalised), so
    that consecutive ones overlap and the kNN graph is one chain of neighbourhoods, not
    islands joined only by chance similarities. Written into ``out`` (N, D) float32 when
    given (e.g. a memory-mapped file)."""
    rng = np.random.default_rng(seed)

    def unit(v):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    supers = unit(rng.standard_normal((max(1, n_clusters // 10), dim)))
    if drift is not None:  # the same draws, used as the steps of the walk
        for i in range(1, len(supers)):
            supers[i] = unit(supers[i - 1] + drift * supers[i])
    centres = unit(supers[rng.integers(0, len(supers), n_clusters)]
                   + 0.9 * unit(rng.standard_normal((n_clusters, dim))))
    labels = rng.integers(0, n_clusters, n)
    x = np.empty((n, dim), np.float32) if out is None else out
    for s in range(0, n, 10_000):  # in chunks: keeps the generator's memory small
        noise = rng.standard_normal((min(10_000, n - s), dim), dtype=np.float32)
        x[s:s + 10_000] = unit(centres[labels[s:s + 10_000]] + spread / np.sqrt(dim) * noise)
    return x, labels


def reference_mine(x: np.ndarray, cfg: MiningConfig):
    """The same algorithm with one scipy CG solve per anchor (all anchors)."""
    n = x.shape[0]
    k_neg = capped_k_neg(cfg.k_neg, n)
    k_e = min(n, max(cfg.k_pos, k_neg + cfg.pool_size))  # Euclidean depth of the pools
    sims, ids = search(build_index(x, "flat"), x, max(cfg.k_graph, k_e))  # one search, as mine
    L = laplacian(normalize(affinity(sims[:, :cfg.k_graph], ids[:, :cfg.k_graph], cfg.gamma)), cfg.alpha)
    k_m = max(cfg.k_pos, k_neg)
    mvals = np.empty((n, k_m))
    mids = np.empty((n, k_m), np.int64)
    e = np.zeros(n)
    for r in range(n):
        e[r] = 1.0
        f, _ = cg(L, e, x0=np.zeros(n), rtol=cfg.cg_tol, atol=0.0, maxiter=cfg.cg_iterations)
        e[r] = 0.0
        v, i = _sort_rows(*_topk_columns(f[:, None], k_m))
        mvals[r], mids[r] = v[0], i[0]
    anchors = np.arange(n)
    pos, _, neg = pools_from_neighbours(anchors, ids[:, :k_e], mids, mvals, cfg.k_pos, k_neg, cfg.pool_size)
    keep = np.array([len(p) > 0 and len(q) > 0 for p, q in zip(pos, neg)])
    return {int(a): (set(pos[a].tolist()), set(neg[a].tolist())) for a in anchors[keep]}


def jaccard(a: set, b: set) -> float:
    return 1.0 if not a and not b else len(a & b) / len(a | b)


def part_cub(args) -> dict:
    x, _ = clustered(args.n, args.dim, args.clusters, args.seed)
    cfg = MiningConfig(anchors="all", block_size=args.block_size, seed=args.seed,
                       cg_dtype=args.dtype, cg_backend=args.backend)
    t0, c0 = time.perf_counter(), time.process_time()
    pools = mine(x, cfg, progress=args.progress, device=args.device)
    t_mine, c_mine = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    ref = reference_mine(x, cfg)
    t_ref, c_ref = time.perf_counter() - t0, time.process_time() - c0
    mom_sets = {int(a): (set(p.tolist()), set(q.tolist()))
                for a, p, q in zip(pools.anchors, pools.positives, pools.negatives)}
    common = sorted(set(mom_sets) | set(ref))
    empty = (set(), set())
    jp = [jaccard(mom_sets.get(a, empty)[0], ref.get(a, empty)[0]) for a in common]
    jn = [jaccard(mom_sets.get(a, empty)[1], ref.get(a, empty)[1]) for a in common]
    return {"N": args.n, "D": args.dim, "cg_dtype": args.dtype, "backend": args.backend,
            "anchors_mom": len(pools), "anchors_ref": len(ref),
            "n_skipped": pools.n_skipped, "time_mine_s": t_mine, "time_reference_s": t_ref,
            "speedup": t_ref / t_mine, "cpu_time_mine_s": c_mine, "cpu_time_reference_s": c_ref,
            "speedup_cpu_time": c_ref / c_mine, "jaccard_pos": float(np.mean(jp)),
            "jaccard_neg": float(np.mean(jn)), **{f"t_{k}_s": v for k, v in pools.timings.items()}}


def part_large(args) -> dict:
    x, _ = clustered(args.large_n, args.dim, args.large_n // 60, args.seed, spread=args.large_spread)
    cfg = MiningConfig(anchors="stationary", n_anchors=1500, knn_index=args.large_index,
                       block_size=args.block_size, seed=args.seed, cg_dtype=args.dtype,
                       cg_backend=args.backend)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, c0 = time.perf_counter(), time.process_time()
    pools = mine(x, cfg, progress=args.progress, device=args.device)
    t, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"N": args.large_n, "D": args.dim, "knn_index": args.large_index, "cg_dtype": args.dtype,
            "backend": args.backend, "anchors": len(pools),
            "n_skipped": pools.n_skipped, "time_s": t, "cpu_time_s": cpu, "peak_rss_gb": rss / 2**20,
            "peak_rss_before_gb": rss0 / 2**20, "features_gb": x.nbytes / 2**30,
            **{f"t_{k}_s": v for k, v in pools.timings.items()}}


# ----------------------------------------------------------------- at scale (--retrieval, --index-curve)

class MemoryTrace:
    """Peak resident memory over time, from a thread that reads ``VmHWM`` (the peak RSS)
    of /proc/self/status every ``every`` seconds and then resets it (``/proc/self/clear_refs``),
    so each sample is the exact peak of its interval, short spikes included.

    RSS counts the pages of a memory-mapped features file that are resident; ``RssAnon``
    (sampled, not a peak) leaves them out. ``peak(t0, t1)`` is the highest peak of the
    samples overlapping [t0, t1]. Resetting the peak also resets ru_maxrss: read peaks here.
    Where /proc cannot be written, it falls back to ru_maxrss (one peak for the whole run).
    """

    def __init__(self, every: float = 0.02):
        self.every, self.samples, self._stop = every, [], None

    @staticmethod
    def _status() -> dict:
        with open("/proc/self/status") as f:
            return {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in f)
                    if k in ("VmHWM", "RssAnon")}

    def _reset(self) -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def _run(self):
        last = time.perf_counter()
        while not self._stop.is_set():
            st, now = self._status(), time.perf_counter()
            self.samples.append((last, now, st["VmHWM"], st.get("RssAnon", 0)))
            self._reset()
            last = now
            self._stop.wait(self.every)

    def __enter__(self):
        import threading

        self.live = self._reset()
        if self.live:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.live:
            self._stop.set()
            self._thread.join()
            st, now = self._status(), time.perf_counter()
            self.samples.append((self.samples[-1][1] if self.samples else now, now, st["VmHWM"],
                                 st.get("RssAnon", 0)))
        else:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.samples.append((-np.inf, np.inf, rss, 0))

    def peak(self, t0: float = -np.inf, t1: float = np.inf) -> tuple[float, float]:
        """(peak RSS, highest sampled anonymous RSS) in GiB over [t0, t1]."""
        inside = [(p, a) for s, e, p, a in self.samples if e >= t0 and s <= t1] or [(0, 0)]
        return max(p for p, _ in inside) / 2**30, max(a for _, a in inside) / 2**30


def synthetic_file(args) -> Path:
    """The clustered data of ``args`` as a float32 ``.npy`` in ``args.data_dir``, written
    once (in chunks, through a memory map) and named after every parameter of the generator."""
    clusters = args.clusters or args.n // 60
    walk = f"-drift{args.drift:g}" if args.drift else ""
    name = f"clustered-n{args.n}-d{args.dim}-c{clusters}-s{args.spread:g}{walk}-seed{args.seed}.npy"
    path = Path(args.data_dir) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(args.n, args.dim))
        clustered(args.n, args.dim, clusters, args.seed, args.spread, out=out, drift=args.drift or None)
        out.flush()
        del out
        os.replace(tmp, path)
    return path


def load_features(args) -> tuple[np.ndarray, str]:
    """(features memory-mapped read-only, a line describing them): ``--features`` or the
    synthetic data of ``args``."""
    path = Path(args.features) if args.features else synthetic_file(args)
    x = np.load(path, mmap_mode="r")
    if args.features:
        args.n, args.dim = x.shape
        return x, f"{path} ({x.shape[0]} x {x.shape[1]} {x.dtype})"
    walk = f", super-clusters drifting by {args.drift:g}" if args.drift else ""
    return x, (f"clustered synthetic, spread {args.spread:g}, {args.clusters or args.n // 60} "
               f"clusters{walk} ({path})")


def sample_rows(n: int, count: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed + 1).choice(n, size=min(n, count), replace=False))


def exact_neighbours(x: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """(R, k) the k nearest other rows of ``x[rows]``, exact (faiss brute force, no copy of x)."""
    return search(build_index(x, "flat"), x, k, rows=rows, exclude_self=True)[1]


def recall(idx, x: np.ndarray, rows: np.ndarray, exact: np.ndarray) -> float:
    """Recall@k of index ``idx``: the share of each sampled row's k exact nearest other rows
    that the index returns among its k nearest other rows (the point itself not counted)."""
    k = exact.shape[1]
    got = search(idx, x, k, rows=rows, exclude_self=True)[1]
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(got, exact)]))


def part_retrieval(args) -> dict:
    """The release's retrieval setting end to end through ``mine``; per-stage time and memory."""
    x, about = load_features(args)
    cfg = MiningConfig(anchors="stationary", n_anchors=args.n_anchors, k_pos=args.k_pos,
                       k_neg=args.k_neg, knn_index=args.index, knn_nprobe=args.nprobe,
                       knn_nlist=args.nlist, block_size=args.block_size, seed=args.seed,
                       cg_dtype=args.dtype, cg_backend=args.backend)
    with MemoryTrace() as mem:
        t_start, c0 = time.perf_counter(), time.process_time()
        pools = mine(x, cfg, progress=args.progress, device=args.device)
        t_end, cpu = time.perf_counter(), time.process_time() - c0
    # mine's laps follow each other from just after its input check, which comes first
    stages = {"check": t_end - t_start - sum(pools.timings.values()), **pools.timings}
    out = {"N": args.n, "D": args.dim, "data": about, "knn_index": cfg.knn_index,
           "knn_nprobe": cfg.knn_nprobe, "knn_nlist": cfg.knn_nlist or "default",
           "cg_dtype": cfg.cg_dtype, "backend": cfg.cg_backend, "k_pos": cfg.k_pos, "k_neg": cfg.k_neg,
           "anchors": len(pools), "n_skipped": pools.n_skipped,
           "largest_component": float(np.mean(pools.stationary > 0)),
           "P+ mean size": float(pools.positives.sizes().mean()) if len(pools) else 0.0,
           "P- mean size": float(pools.negatives.sizes().mean()) if len(pools) else 0.0,
           "time_s": t_end - t_start, "cpu_time_s": cpu, "features_gb": x.nbytes / 2**30}
    t = t_start
    for name, seconds in stages.items():
        rss, anon = mem.peak(t, t + seconds)
        out[f"t_{name}_s"] = seconds
        out[f"peak_{name}_gb"] = rss
        out[f"anon_{name}_gb"] = anon
        t += seconds
    out["peak_rss_gb"], out["peak_anon_gb"] = mem.peak()
    if args.recall_rows:  # the graph's index again (same seed: the same index), outside mine's time
        t0 = time.perf_counter()
        rows = sample_rows(args.n, args.recall_rows, args.seed)
        idx = build_index(x, cfg.knn_index, "cpu", nlist=cfg.knn_nlist, nprobe=cfg.knn_nprobe,
                          seed=cfg.seed)
        out[f"recall@{args.recall_k}"] = recall(idx, x, rows, exact_neighbours(x, rows, args.recall_k))
        out["recall_check_s"] = time.perf_counter() - t0
    return out


def curve_settings(args) -> list[tuple[str, dict, str, list]]:
    """(kind, build parameters, searched parameter, its values) of the index curve:
    ``--curve KIND:key=v:key=v1,v2,...`` (the last key may list several values, searched
    on one build), or the default grid around the default IVF size for N."""
    if args.curve:
        out = []
        for spec in args.curve:
            kind, *kv = spec.split(":")
            pairs = [p.split("=") for p in kv]
            build = {k: int(v) for k, v in pairs[:-1]}
            key, values = pairs[-1]
            out.append((kind, build, key, [int(v) for v in values.split(",")]))
        return out
    nl = default_nlist(args.n)
    return ([("ivf", {"nlist": m}, "nprobe", [1, 2, 4, 8, 16]) for m in (nl // 2, nl, 2 * nl)]
            + [("faiss-ivf", {"nlist": nl}, "nprobe", [4, 8]),
               ("ivf-sq8", {"nlist": nl}, "nprobe", [4, 8]),
               ("hnsw", {"m": 32}, "ef", [64, 128])])


def curve_index(x: np.ndarray, kind: str, build: dict, seed: int):
    """One index of the curve: ``ivf``/``hnsw`` as ``mom.knn.build_index`` builds them,
    ``faiss-ivf`` (faiss's IndexIVFFlat, the per-query scan, with a copy of x) and ``ivf-sq8``
    (IndexIVFScalarQuantizer, 8 bits a dimension: a quarter of the copy) trained like ivf."""
    import faiss

    if kind == "ivf":
        return build_index(x, "ivf", nlist=build.get("nlist"), nprobe=1, seed=seed)
    if kind == "hnsw":
        return build_index(x, "hnsw", hnsw_m=build.get("m", 16), seed=seed)
    n, d = x.shape
    nlist = build.get("nlist") or default_nlist(n)
    quantizer = faiss.IndexFlatIP(d)
    if kind == "faiss-ivf":
        idx = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    elif kind == "ivf-sq8":
        idx = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit,
                                            faiss.METRIC_INNER_PRODUCT)
    else:
        raise ValueError(f"--curve: unknown index kind {kind!r} (ivf, faiss-ivf, ivf-sq8, hnsw)")
    idx.cp.seed, idx.cp.niter = seed, 10
    rng = np.random.default_rng(seed)
    idx.train(np.ascontiguousarray(x[rng.choice(n, size=min(n, 40 * nlist), replace=False)]))
    idx.add(x)
    return idx


def part_curve(args) -> list[dict]:
    """Recall@k against seconds: for every setting, build the index, search every row for
    the graph's k_graph neighbours (as mine does) and measure recall on sampled rows."""
    x, about = load_features(args)
    k_graph = MiningConfig.k_graph
    rows = sample_rows(args.n, args.recall_rows, args.seed)
    t0 = time.perf_counter()
    exact = exact_neighbours(x, rows, args.recall_k)
    print(f"index curve on {about}; exact neighbours of {rows.size} rows: "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    out = []
    for kind, build, key, values in curve_settings(args):
        with MemoryTrace() as mem:
            t0, c0 = time.perf_counter(), time.process_time()
            idx = curve_index(x, kind, build, args.seed)
            t_build, c_build = time.perf_counter() - t0, time.process_time() - c0
        base = mem.peak()[0]
        for v in values:
            if key == "nprobe":
                idx.nprobe = v
            elif key == "ef":
                idx.hnsw.efSearch = v
            else:
                raise ValueError(f"--curve: the searched parameter is nprobe or ef, got {key!r}")
            with MemoryTrace() as m2:
                t0, c0 = time.perf_counter(), time.process_time()
                sims, ids = search(idx, x, k_graph)  # (N, k_graph): the graph's search
                t_search, c_search = time.perf_counter() - t0, time.process_time() - c0
            r = {"index": kind, **build, key: v, "build_s": t_build, "search_s": t_search,
                 "total_s": t_build + t_search, "cpu_s": c_build + c_search,
                 f"recall@{args.recall_k}": recall(idx, x, rows, exact),
                 # the share of rows in the mutual graph's largest component, where the
                 # stationary anchors are: rare cross-cluster edges decide it, not recall
                 "largest_component": largest_component(affinity(sims, ids, MiningConfig.gamma)).size / args.n,
                 "peak_rss_gb": max(base, m2.peak()[0])}
            del sims, ids
            out.append(r)
            print("  " + ", ".join(f"{k}={_fmt(v)}" for k, v in r.items()), file=sys.stderr, flush=True)
        del idx
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=None,
                    help="descriptors (default: 5 864; --retrieval 1 000 000; --index-curve 200 000)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--clusters", type=int, default=None,
                    help="clusters of the synthetic data (default: 100; at scale N / 60)")
    ap.add_argument("--block-size", type=int, default=MiningConfig.block_size)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default=MiningConfig.cg_dtype, choices=("float32", "float64"),
                    help="CG working precision of mine (default: MiningConfig's; the reference always uses float64)")
    ap.add_argument("--backend", default=MiningConfig.cg_backend, choices=("numpy", "torch"),
                    help="MiningConfig.cg_backend: array backend of mine's block CG")
    ap.add_argument("--device", default="cpu", help="device of mine: cpu, cuda or auto")
    ap.add_argument("--large", action="store_true", help="also run the N = 100 000 part")
    ap.add_argument("--large-only", action="store_true", help="run only the large part")
    ap.add_argument("--large-n", type=int, default=100_000)
    ap.add_argument("--large-index", default="ivf", choices=("flat", "ivf", "hnsw"))
    ap.add_argument("--large-spread", type=float, default=2.5,
                    help="cluster spread of the large data (tighter than part 1, so that an "
                         "approximate index finds the clusters)")
    scale = ap.add_argument_group("at scale (--retrieval, --index-curve)")
    scale.add_argument("--retrieval", action="store_true",
                       help="the release's retrieval setting end to end through mine (only this part)")
    scale.add_argument("--index-curve", action="store_true",
                       help="recall@k against seconds of kNN-graph indexes (only this part)")
    scale.add_argument("--features", help="descriptors (N, D) float32 .npy, memory-mapped "
                       "(default: the synthetic data, written once into --data-dir)")
    scale.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "mom-bench"),
                       help="where the synthetic data files go")
    scale.add_argument("--spread", type=float, default=2.0,
                       help="cluster spread of the synthetic data at scale (see the docstring)")
    scale.add_argument("--drift", type=float, default=1.0,
                       help="the synthetic super-clusters follow a random walk with this step "
                            "(0: they lie apart; see the docstring)")
    scale.add_argument("--index", default="ivf", choices=("flat", "ivf", "hnsw"),
                       help="MiningConfig.knn_index of --retrieval")
    scale.add_argument("--nprobe", type=int, default=MiningConfig.knn_nprobe,
                       help="MiningConfig.knn_nprobe: IVF lists searched per row")
    scale.add_argument("--nlist", type=int, default=MiningConfig.knn_nlist,
                       help="MiningConfig.knn_nlist: IVF lists (default about 2 sqrt(N))")
    scale.add_argument("--n-anchors", type=int, default=1500)
    scale.add_argument("--k-pos", type=int, default=50)
    scale.add_argument("--k-neg", type=int, default=10_000)
    scale.add_argument("--recall-rows", type=int, default=1000,
                       help="rows whose neighbours are checked against exact search (0: no check)")
    scale.add_argument("--recall-k", type=int, default=MiningConfig.k_graph)
    scale.add_argument("--curve", action="append",
                       help="one index setting of --index-curve, KIND:key=v:...:key=v1,v2 "
                            "(KIND ivf, faiss-ivf, ivf-sq8 with nlist / nprobe; hnsw with m / ef); "
                            "repeatable; default: a grid around the default IVF")
    scale.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    print(f"cpus available: {len(os.sched_getaffinity(0))}", file=sys.stderr)
    import torch  # noqa: F401  loaded before timing, as in the pipeline (which embeds with torch)

    results = {}
    if args.retrieval or args.index_curve:
        args.n = args.n or (1_000_000 if args.retrieval else 200_000)
        if args.index_curve:
            results["index_curve"] = part_curve(args)
            for r in results["index_curve"]:
                print("index curve: " + ", ".join(f"{k}={_fmt(v)}" for k, v in r.items()))
        if args.retrieval:
            r = results["retrieval"] = part_retrieval(args)
            print("retrieval, stationary anchors: " + ", ".join(f"{k}={_fmt(v)}" for k, v in r.items()))
    else:
        args.n = args.n or 5864
        args.clusters = args.clusters or 100
        if not args.large_only:
            r = results["cub"] = part_cub(args)
            print("CUB-size, all anchors: " + ", ".join(f"{k}={_fmt(v)}" for k, v in r.items()))
        if args.large or args.large_only:
            r = results["large"] = part_large(args)
            print("large, stationary anchors: " + ", ".join(f"{k}={_fmt(v)}" for k, v in r.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0


def _fmt(v):
    return f"{v:.3f}" if isinstance(v, float) else str(v)


if __name__ == "__main__":
    sys.exit(main())
