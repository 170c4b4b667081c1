"""Device check: mom's GPU paths against the CPU and against their bare references.

Run through ``bash scripts/device_check.sh``, which probes for a CUDA device, runs each
check in a process of its own under a time limit and prints one table
(check | result | target | status). On a machine without a usable CUDA device every
check is reported ``skipped`` with the reason, in seconds.

Checks (each reuses the reference of the benchmark named):

- ``embed``: ``mom.extract`` on CUDA (float16 autocast, channels_last) against CPU
  float32 on the same 512 bundled Fashion-MNIST images, efficientnet_lite0 + GAP at
  64 px: cosine >= 0.999 on every row; throughput against the bare forward pass on
  in-memory tensors (``benchmarks/bench_embed.py: bare_forward``), >= 85%, with 0 and
  with 8 loader workers.
- ``mine``: ``mine`` with the torch block CG on CUDA (kNN by faiss on the CPU) against
  the CPU at CUB size (N 5 864, D 512, clustered as ``benchmarks/bench_mining.py``
  makes them, every point an anchor): identical P+ and P- sets; its time there and at
  N 100 000 (stationary anchors, IVF); with faiss on the GPU too where
  ``faiss.get_num_gpus() > 0``.
- ``train``: 50 steps of ``mom.train`` on CUDA without and with AMP: finite loss;
  triplets/s against bare forward + backward + step on the same batches held in
  memory (``benchmarks/bench_train.py``'s reference, with train's CUDA settings:
  channels_last, autocast and grad scaling when AMP), >= 80%.
- ``ddp``: ``torchrun --nproc_per_node=1``, a training of 2 steps on CUDA: the
  process group's backend is NCCL, the loss finite.

Commands (what the shell script calls)::

    python scripts/device_check.py probe --dir DIR           # prints why to skip ("" = a GPU)
    python scripts/device_check.py run CHECK --out F.json [--device cuda] [--small]
    python scripts/device_check.py table --dir DIR --checks embed mine train ddp [--skip R]
    python scripts/device_check.py ddp-worker --out F.json   # under torchrun, by ``ddp``

``--device cpu --small`` runs a check's code on the CPU at reduced sizes (to try the
script on a machine without a GPU; its numbers mean nothing).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ("embed", "mine", "train", "ddp")
TITLES = {"embed": "embed (CUDA AMP vs CPU fp32)", "mine": "mine (torch CG on CUDA)",
          "train": "train 50 steps (CUDA, fp32 and AMP)", "ddp": "DDP NCCL, torchrun world size 1"}


def _row(check: str, result: str, target: str, ok: bool | None) -> dict:
    status = "skipped" if ok is None else "pass" if ok else "FAIL"
    return {"check": check, "result": result, "target": target, "status": status}


def _benchmarks():
    """The benchmark scripts' modules (they hold the references)."""
    path = str(ROOT / "benchmarks")
    if path not in sys.path:
        sys.path.insert(0, path)


def _device(name: str):
    import torch
    return torch.device(name)


def _sync(device) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- checks
def check_embed(device, small: bool) -> list[dict]:
    import numpy as np
    import torch

    _benchmarks()
    from bench_embed import bare_forward, input_pipeline

    from mom.backbones import build_backbone, make_transform
    from mom.datasets import FashionMNIST, Subset
    from mom.extract import extract
    from mom.model import EmbeddingNet
    from mom.pooling import Pooling
    n_cos, n_speed, bs, size = (64, 256, 64, 32) if small else (512, 4096, 128, 64)
    full = FashionMNIST("train")
    bb = build_backbone("efficientnet_lite0")
    model = EmbeddingNet(bb, Pooling("gap"))
    tf = make_transform(bb.meta, size)
    rows = []

    ds = Subset(full, range(n_cos))
    ref = extract(model, ds, tf, device="cpu", batch_size=bs, progress=False)  # (n, 1280) fp32
    got = extract(model, ds, tf, device=device, batch_size=bs, progress=False)  # AMP, channels_last
    cos = np.sum(ref.astype(np.float64) * got.astype(np.float64), axis=1)  # rows are L2-normalised
    rows.append(_row("embed: cosine to CPU fp32, per row",
                     f"min {cos.min():.5f}, mean {cos.mean():.5f} ({n_cos} images, {size} px)",
                     ">= 0.999 every row", bool(cos.min() >= 0.999)))

    ds = Subset(full, range(min(n_speed, len(full))))
    n = len(ds)
    x = torch.stack([tf(ds[i][0]) for i in range(n)])  # (n, 3, S, S), decoded outside the timing
    bare_forward(model, x[:bs], bs, device)  # warm-up: allocator, cudnn
    t_input = input_pipeline(ds, tf, bs, 0)
    for workers in (0, min(8, os.cpu_count() or 1)):
        t_bare, t_ext = [], []
        for _ in range(3):  # alternate, best of each
            t_bare.append(bare_forward(model, x, bs, device))
            t0 = time.perf_counter()
            extract(model, ds, tf, device=device, batch_size=bs, num_workers=workers, progress=False)
            t_ext.append(time.perf_counter() - t0)
        ratio = min(t_bare) / min(t_ext)
        extra = f"; input pipeline alone {n / t_input:.0f} img/s" if workers == 0 else ""
        rows.append(_row(f"embed: extract / bare forward, {workers} loader workers",
                         f"{100 * ratio:.0f}% ({n / min(t_ext):.0f} vs {n / min(t_bare):.0f} img/s, "
                         f"{n} images, batch {bs}{extra})", ">= 85%", bool(ratio >= 0.85)))
    return rows


def _pool_sets(pools) -> dict:
    return {int(a): (frozenset(p.tolist()), frozenset(q.tolist()))
            for a, p, q in zip(pools.anchors, pools.positives, pools.negatives)}


def _agreement(a, b) -> tuple[int, int, float, float]:
    """(anchors whose P+ and P- both match, anchors on either side, mean Jaccard P+, P-)."""
    keys = set(a) | set(b)
    empty = (frozenset(), frozenset())

    def jac(s, t):
        return 1.0 if not s and not t else len(s & t) / len(s | t)
    same = sum(a.get(k) == b.get(k) for k in keys)
    jp = [jac(a.get(k, empty)[0], b.get(k, empty)[0]) for k in keys]
    jn = [jac(a.get(k, empty)[1], b.get(k, empty)[1]) for k in keys]
    return same, len(keys), sum(jp) / max(1, len(jp)), sum(jn) / max(1, len(jn))


class _FaissOnCpu:
    """Within it, ``mine`` builds its faiss index on the CPU whatever its ``device``
    (so that the torch CG alone runs on the GPU)."""

    def __enter__(self):
        import mom.mining as mining
        self.mining, self.real = mining, mining.build_index
        mining.build_index = lambda x, index, device, **kw: self.real(x, index, "cpu", **kw)

    def __exit__(self, *exc):
        self.mining.build_index = self.real


def check_mine(device, small: bool) -> list[dict]:
    _benchmarks()
    from bench_mining import clustered

    from mom import MiningConfig, mine
    n, dim, n_large = (1500, 128, 20_000) if small else (5864, 512, 100_000)
    dev = str(device)
    x, _ = clustered(n, dim, 100, 0)
    cfg = MiningConfig(anchors="all", seed=0)  # the defaults: torch CG kernels, float32
    t0 = time.perf_counter()
    cpu = mine(x, cfg, device="cpu")
    t_cpu = time.perf_counter() - t0
    rows = []
    with _FaissOnCpu():
        mine(x[:2000], MiningConfig(anchors="all", seed=0, k_neg=50, pool_size=20), device=dev)  # warm-up
        t0 = time.perf_counter()
        gpu = mine(x, cfg, device=dev)
        t_gpu = time.perf_counter() - t0
    same, total, jp, jn = _agreement(_pool_sets(cpu), _pool_sets(gpu))
    rows.append(_row(f"mine N {n}: P+/P- of CG on {device.type} vs CPU",
                     f"{same}/{total} anchors identical (mean Jaccard P+ {jp:.4f}, P- {jn:.4f})",
                     "all identical", same == total and len(gpu) == len(cpu)))
    rows.append(_row(f"mine N {n}: time, CG on {device.type}",
                     f"{t_gpu:.2f} s (CPU {t_cpu:.2f} s, {t_cpu / t_gpu:.1f}x; diffusion "
                     f"{gpu.timings.get('diffusion', float('nan')):.2f} s vs "
                     f"{cpu.timings.get('diffusion', float('nan')):.2f} s)",
                     "< CPU time, same run", t_gpu < t_cpu))

    import faiss
    faiss_gpu = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    if faiss_gpu and device.type == "cuda":
        t0 = time.perf_counter()
        both = mine(x, cfg, device=dev)
        t_both = time.perf_counter() - t0
        same, total, jp, jn = _agreement(_pool_sets(cpu), _pool_sets(both))
        rows.append(_row(f"mine N {n}: faiss GPU + CG CUDA vs CPU",
                         f"{same}/{total} anchors identical (Jaccard P+ {jp:.4f}, P- {jn:.4f}); "
                         f"{t_both:.2f} s",
                         "all identical", same == total))
    else:
        why = "faiss has no GPU support here (faiss-cpu)" if not hasattr(faiss, "StandardGpuResources") \
            else "faiss sees no GPU" if device.type == "cuda" else "not a CUDA run"
        rows.append(_row(f"mine N {n}: faiss GPU + CG CUDA vs CPU", why, "all identical", None))

    xl, _ = clustered(n_large, dim, n_large // 60, 0, spread=2.5)
    big = MiningConfig(anchors="stationary", n_anchors=1500, knn_index="ivf", seed=0)
    where = "faiss GPU" if faiss_gpu and device.type == "cuda" else "faiss CPU"
    t0 = time.perf_counter()
    # "auto": the CG on CUDA and faiss on the GPU where it has one ("cuda" would refuse faiss-cpu)
    pools = mine(xl, big, device="auto" if device.type == "cuda" else dev)
    t_big = time.perf_counter() - t0
    stages = ", ".join(f"{k} {v:.1f}" for k, v in pools.timings.items())
    rows.append(_row(f"mine N {n_large:,}: time, stationary anchors, IVF ({where})".replace(",", " ", 1),
                     f"{t_big:.1f} s, {len(pools)} anchors ({stages} s)",
                     "< 120 s (CPU: 35-37 s on 2 cores)", t_big < 120))
    return rows


def _bare_steps(model, batches, cfg, device) -> float:
    """bench_train.bare_steps with train's device settings: channels_last on CUDA,
    float16 autocast and grad scaling when ``cfg.amp``. Seconds for the batches."""
    import torch

    from mom.train import freeze_batchnorm, make_optimizer, tuple_loss
    cuda = device.type == "cuda"
    model.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
    opt, _ = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=bool(cfg.amp) and cuda)
    model.train()
    if cfg.freeze_bn:
        freeze_batchnorm(model)
    _sync(device)
    t0 = time.perf_counter()
    for x, w in batches:
        xb = x.flatten(0, 1)  # (b * (2+K), 3, H, W)
        if cuda:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, enabled=scaler.is_enabled()):
            z = model(xb).view(x.shape[0], x.shape[1], -1)  # (b, 2+K, D)
            loss = tuple_loss(z.float(), w, cfg)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        float(loss.detach())  # the host sync train makes to check the loss
    return time.perf_counter() - t0


def check_train(device, small: bool) -> list[dict]:
    _benchmarks()
    from bench_train import epoch_batches

    import mom
    from mom.config import EmbedConfig, MiningConfig, TrainConfig
    from mom.datasets import FashionMNIST
    from mom.mining import mine
    from mom.train import build_model, train
    per_class, steps, bs, size = (20, 3, 8, 32) if small else (100, 50, 42, 64)
    ds = FashionMNIST("train", per_class=per_class)
    embed_cfg = EmbedConfig(image_size=size, device=str(device))
    feats = mom.embed(ds, embed_cfg, progress=False, distributed=False)  # (N, C)
    pools = mine(feats, MiningConfig(k_pos=max(5, per_class // 5), k_neg=len(ds) // 2,
                                     pool_size=min(50, len(ds) // 4)))  # as bench_train
    rows = []
    for amp in (False, True):
        name = "AMP" if amp else "fp32"
        cfg = TrainConfig(epochs=1, batch_size=bs, tuples_per_epoch=steps * bs, image_size=size,
                          trainable="last:2", device=str(device), amp=amp)
        initial = build_model(embed_cfg, cfg, init_features=feats)
        try:
            batches, _ = epoch_batches(copy.deepcopy(initial), ds, pools, cfg, device)
            _bare_steps(copy.deepcopy(initial), batches[:2], cfg, device)  # warm-up
            t_bare, t_train, hist = [], [], None
            for _ in range(2):  # alternate, best of each
                t_bare.append(_bare_steps(copy.deepcopy(initial), batches, cfg, device))
                hist = train(copy.deepcopy(initial), ds, pools, cfg, embed_cfg, progress=False,
                             distributed=False).history[0]
                t_train.append(hist["sample_s"] + hist["train_s"])
        except FloatingPointError as exc:
            rows.append(_row(f"train {name}: {steps} steps, loss", str(exc)[:120], "finite", False))
            continue
        finite = math.isfinite(hist["loss"]) and hist["steps"] == steps
        rows.append(_row(f"train {name}: {steps} steps, loss",
                         f"mean loss {hist['loss']:.4f} over {hist['steps']} steps",
                         f"finite, {steps} steps", finite))
        tr, bare = hist["tuples"] / min(t_train), len(batches) * bs / min(t_bare)
        rows.append(_row(f"train {name}: triplets/s vs bare fwd+bwd+step",
                         f"{100 * tr / bare:.0f}% ({tr:.0f} vs {bare:.0f} triplets/s, batch {bs}, "
                         f"{size} px, last:2)", ">= 80%", tr / bare >= 0.80))
    return rows


def check_ddp(device, small: bool) -> list[dict]:
    limit = float(os.environ.get("DEVICE_CHECK_LIMIT", "60"))
    want = "nccl" if device.type == "cuda" else "gloo"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ddp.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
               str(Path(__file__).resolve()), "ddp-worker", "--out", str(out), "--device", str(device)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)  # its own group: a timeout ends the workers too
        try:
            log, _ = proc.communicate(timeout=max(10.0, limit - 10))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return [_row(TITLES["ddp"], f"torchrun gave no result within {limit - 10:.0f} s",
                         f"{want}, 2 steps, finite loss", False)]
        if proc.returncode != 0 or not out.is_file():
            last = [ln for ln in log.splitlines() if ln.strip()][-1:] or ["(no output)"]
            return [_row(TITLES["ddp"], f"torchrun exited {proc.returncode}: {last[0][:160]}",
                         f"{want}, 2 steps, finite loss", False)]
        got = json.loads(out.read_text())
    ok = (got["backend"] == want and got["world_size"] == 1 and got["steps"] == 2
          and math.isfinite(got["loss"]))
    return [_row(TITLES["ddp"], f"backend {got['backend']}, world size {got['world_size']}, "
                 f"{got['steps']} steps, loss {got['loss']:.4f}; train.json world_size "
                 f"{got['logged_world_size']}", f"{want}, 2 steps, finite loss", ok)]


def ddp_worker(out: str, device: str) -> None:
    """Under torchrun: a tiny training on ``device`` (embedding and training both under
    torchrun, as ``mom train`` would run there); records the group's backend."""
    import torch.distributed as dist

    import mom
    from mom.config import EmbedConfig, MiningConfig, TrainConfig
    from mom.datasets import FashionMNIST
    from mom.train import build_model, train
    ds = FashionMNIST("train", per_class=12)  # 60 images
    embed_cfg = EmbedConfig(image_size=32, batch_size=64, device=device)
    feats = mom.embed(ds, embed_cfg, progress=False)  # distributed=None: under torchrun
    pools = mom.mine(feats, MiningConfig(k_graph=8, k_pos=6, k_neg=20, pool_size=5))
    cfg = TrainConfig(embedding_dim=16, trainable="last:1", epochs=1, batch_size=8,
                      tuples_per_epoch=16, hard_negatives=3, lr=0.01, image_size=32, device=device)
    seen = {}

    def eval_fn(model, epoch):  # runs inside train, while its process group exists
        seen.update(backend=str(dist.get_backend()) if dist.is_initialized() else "none",
                    world_size=dist.get_world_size() if dist.is_initialized() else 0)
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        res = train(build_model(embed_cfg, cfg, init_features=feats), ds, pools, cfg, embed_cfg,
                    out_dir=tmp, progress=False, eval_fn=eval_fn)
        logged = json.loads((Path(tmp) / "train.json").read_text()).get("world_size")
    h = res.history[0]
    with open(out, "w") as fh:
        json.dump({**seen, "steps": h["steps"], "loss": h["loss"], "logged_world_size": logged}, fh)


RUN = {"embed": check_embed, "mine": check_mine, "train": check_train, "ddp": check_ddp}


# ----------------------------------------------------------------------------- commands
def probe(folder: Path) -> str:
    """Why the checks must be skipped ("" when a CUDA device is usable); writes probe.json."""
    info = {"python": sys.version.split()[0]}
    reason = ""
    try:
        import torch
        info["torch"] = torch.__version__
        info["cuda"] = torch.version.cuda
        if not torch.cuda.is_available():
            reason = (f"no CUDA device (torch {torch.__version__}"
                      f"{', built without CUDA' if torch.version.cuda is None else ''})")
        else:
            torch.zeros(1, device="cuda")  # a device torch sees but cannot use fails here
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpus"] = torch.cuda.device_count()
    except ImportError as exc:
        reason = f"cannot import torch with {sys.executable}: {exc}"
    except Exception as exc:  # noqa: BLE001  a broken driver: report, do not crash
        reason = f"CUDA device unusable: {type(exc).__name__}: {exc}"[:200]
    try:
        import faiss
        info["faiss"] = faiss.__version__
        info["faiss_gpus"] = faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0
    except ImportError:
        info["faiss"] = None
    info["reason"] = reason
    (folder / "probe.json").write_text(json.dumps(info))
    return reason


def run(check: str, out: Path, device: str, small: bool) -> int:
    """Run one check and write its rows to ``out``; a soft time limit (SIGALRM) turns a
    slow check into a ``timeout`` row (the shell script kills a stuck one later)."""
    limit = int(float(os.environ.get("DEVICE_CHECK_LIMIT", "0")))

    def alarm(signum, frame):
        raise TimeoutError(f"no result within {limit} s")
    if limit > 0:
        signal.signal(signal.SIGALRM, alarm)
        signal.alarm(limit)
    t0 = time.perf_counter()
    try:
        import torch
        torch.manual_seed(0)
        rows = RUN[check](_device(device), small)
    except TimeoutError as exc:
        rows = [{"check": TITLES[check], "result": str(exc), "target": "-", "status": "timeout"}]
    except Exception as exc:  # noqa: BLE001  a check that breaks is a row, not a crash
        import traceback
        traceback.print_exc()
        rows = [{"check": TITLES[check], "result": f"{type(exc).__name__}: {exc}"[:200],
                 "target": "-", "status": "error"}]
    finally:
        signal.alarm(0)
    out.write_text(json.dumps({"check": check, "rows": rows, "seconds": time.perf_counter() - t0}))
    return 0


def _cell(text) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def table(folder: Path, checks: list[str], skip: str, tryout: bool = False) -> int:
    """Print the one table; exit status 1 when a check failed, errored or timed out."""
    try:
        info = json.loads((folder / "probe.json").read_text())
    except (OSError, ValueError):
        info = {}
    rows = []
    for check in checks:
        res = folder / f"{check}.json"
        if skip:
            rows.append({"check": TITLES[check], "result": skip, "target": "-", "status": "skipped"})
        elif res.is_file():
            got = json.loads(res.read_text())
            rows += [dict(r, check=f"{r['check']} ({got['seconds']:.0f} s)" if i == 0 else r["check"])
                     for i, r in enumerate(got["rows"])]
        else:
            rc = (folder / f"{check}.rc").read_text().strip() if (folder / f"{check}.rc").is_file() else "?"
            log = folder / f"{check}.log"
            last = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()][-1:] \
                if log.is_file() else []
            killed = rc in ("124", "137")
            rows.append({"check": TITLES[check],
                         "result": (f"killed at the time limit ({os.environ.get(f'LIMIT_{check}', '?')} s)"
                                    if killed else f"exit {rc}: {(last or ['no output'])[0][:160]}"),
                         "target": "-", "status": "timeout" if killed else "error"})
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    gpu = info.get("gpu") or "no GPU"
    if tryout:
        gpu += " (TRY-OUT: the checks ran on the CPU at small sizes; the numbers mean nothing)"
    print(f"mom device check, {when}: {gpu}; torch {info.get('torch')}, CUDA {info.get('cuda')}, "
          f"faiss {info.get('faiss')} ({info.get('faiss_gpus', 0)} GPU), python {info.get('python')}")
    print()
    print("| check | result | target | status |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {_cell(r['check'])} | {_cell(r['result'])} | {_cell(r['target'])} | {r['status']} |")
    (folder / "table.done").write_text("")  # the shell script's sign that the table is out
    return int(any(r["status"] in ("FAIL", "error", "timeout") for r in rows))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--dir", required=True, type=Path)
    p = sub.add_parser("run")
    p.add_argument("check", choices=CHECKS)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--device", default="cuda")
    p.add_argument("--small", action="store_true", help="reduced sizes (a try-out on the CPU)")
    p = sub.add_parser("table")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--checks", nargs="+", default=list(CHECKS), choices=CHECKS)
    p.add_argument("--skip", default="", help="report every check as skipped for this reason")
    p.add_argument("--tryout", action="store_true", help="the checks ran with --device cpu --small")
    p = sub.add_parser("ddp-worker")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda")
    args = ap.parse_args(argv)
    if args.cmd == "probe":
        print(probe(args.dir))
        return 0
    if args.cmd == "run":
        return run(args.check, args.out, args.device, args.small)
    if args.cmd == "table":
        return table(args.dir, args.checks, args.skip, args.tryout)
    ddp_worker(args.out, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
