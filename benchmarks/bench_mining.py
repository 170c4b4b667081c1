"""Benchmark mining: block CG (``mom.mine``) against a per-anchor scipy CG loop.

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

Usage: python benchmarks/bench_mining.py [--large] [--n 5864] [--dim 512]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np
from scipy.sparse.linalg import cg

from mom import MiningConfig, mine
from mom.diffusion import _sort_rows, _topk_columns, laplacian
from mom.graph import affinity, normalize
from mom.knn import build_index, search
from mom.mining import capped_k_neg, pools_from_neighbours


def clustered(n: int, dim: int, n_clusters: int, seed: int = 0, spread: float = 3.0) -> np.ndarray:
    """Seeded synthetic descriptors: Gaussian clusters on the unit sphere, grouped
    under n_clusters // 10 super-clusters so that neighbouring clusters overlap."""
    rng = np.random.default_rng(seed)

    def unit(v):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    supers = unit(rng.standard_normal((max(1, n_clusters // 10), dim)))
    centres = unit(supers[rng.integers(0, len(supers), n_clusters)]
                   + 0.9 * unit(rng.standard_normal((n_clusters, dim))))
    labels = rng.integers(0, n_clusters, n)
    x = np.empty((n, dim), np.float32)
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5864)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--clusters", type=int, default=100)
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
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    print(f"cpus available: {len(os.sched_getaffinity(0))}", file=sys.stderr)
    import torch  # noqa: F401  loaded before timing, as in the pipeline (which embeds with torch)

    if not args.large_only:
        r = part_cub(args)
        print("CUB-size, all anchors: " + ", ".join(f"{k}={_fmt(v)}" for k, v in r.items()))
    if args.large or args.large_only:
        r = part_large(args)
        print("large, stationary anchors: " + ", ".join(f"{k}={_fmt(v)}" for k, v in r.items()))
    return 0


def _fmt(v):
    return f"{v:.3f}" if isinstance(v, float) else str(v)


if __name__ == "__main__":
    sys.exit(main())
