"""benchmarks/bench_mining.py at scale, on a few thousand rows: the paths the million-row
run takes (memory-mapped synthetic data, per-stage memory, recall, the index curve)."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
bench = pytest.importorskip("bench_mining")


def test_retrieval_part_end_to_end(tmp_path):
    out = tmp_path / "r.json"
    assert bench.main(["--retrieval", "--n", "3000", "--k-neg", "400", "--n-anchors", "20",
                       "--recall-rows", "50", "--data-dir", str(tmp_path), "--json", str(out)]) == 0
    r = json.loads(out.read_text())["retrieval"]
    assert r["N"] == 3000 and r["k_neg"] == 400 and 0 < r["anchors"] <= 20
    stages = ("check", "knn", "graph", "anchors", "diffusion", "euclidean", "pools")
    assert all(f"t_{s}_s" in r and r[f"peak_{s}_gb"] > 0 for s in stages)
    assert r["peak_rss_gb"] >= max(r[f"peak_{s}_gb"] for s in stages)
    assert 0.5 < r["recall@30"] <= 1.0 and 0 < r["largest_component"] <= 1
    files = list(tmp_path.glob("clustered-n3000-*.npy"))  # the data, written once
    assert len(files) == 1
    x = np.load(files[0], mmap_mode="r")
    assert x.shape == (3000, 512) and np.allclose(np.linalg.norm(x[:10], axis=1), 1, atol=1e-5)


def test_index_curve_and_features_file(tmp_path):
    x = bench.clustered(2000, 32, 30, seed=1, spread=1.0)[0]
    np.save(tmp_path / "f.npy", x)
    out = tmp_path / "c.json"
    assert bench.main(["--index-curve", "--features", str(tmp_path / "f.npy"), "--recall-rows", "40",
                       "--curve", "ivf:nlist=20:nprobe=1,20", "--curve", "faiss-ivf:nlist=20:nprobe=2",
                       "--curve", "ivf-sq8:nlist=20:nprobe=2", "--curve", "hnsw:m=8:ef=40",
                       "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["index_curve"]
    assert [r["index"] for r in rows] == ["ivf", "ivf", "faiss-ivf", "ivf-sq8", "hnsw"]
    assert rows[1]["recall@30"] == 1.0  # every list probed: exact
    assert all(0 < r["recall@30"] <= 1 and r["total_s"] >= r["search_s"] for r in rows)
    assert all(0 < r["largest_component"] <= 1 for r in rows)


def test_memory_trace_sees_a_short_spike():
    import time
    with bench.MemoryTrace(every=0.05) as mem:
        time.sleep(0.12)
        t0 = time.perf_counter()
        a = np.ones(300 << 17)  # 300 MiB, touched and freed between two samples
        del a
        t1 = time.perf_counter()
        time.sleep(0.12)
        t2 = time.perf_counter()
        time.sleep(0.12)
    if not mem.live:
        pytest.skip("/proc/self/clear_refs cannot be written here")
    assert mem.peak(t0, t1)[0] - mem.peak(t2, np.inf)[0] > 0.25  # GiB


def test_train_memory_benchmark_runs_each_mode_in_its_own_process(tmp_path):
    sys.modules.pop("bench_train_memory", None)
    mem = pytest.importorskip("bench_train_memory")
    out = tmp_path / "m.json"
    assert mem.main(["--image-size", "32", "--batch-size", "4", "--micro", "2", "--images", "20",
                     "--threads", "1", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert [row["mode"] for row in r["rows"]] == ["bare", "train", "micro:2"]
    assert all(row["peak_mb"] >= row["start_mb"] > 0 for row in r["rows"])
    assert r["train_over_bare"] == r["rows"][1]["peak_mb"] / r["rows"][0]["peak_mb"]
    with pytest.raises(SystemExit):  # too few images for the pools
        mem.main(["--batch-size", "42", "--images", "20"])
