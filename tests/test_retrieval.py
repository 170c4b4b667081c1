"""Retrieval rows: mAP of cropped queries against the database, end to end on a
tiny revisited-Oxford fixture, and the metric mapping checked by hand."""
import json
import math

import numpy as np
import pytest

from data_fixtures import make_oxford
from mom.cli import main
from mom.config import DataConfig
from mom.datasets import is_retrieval, load_benchmark
from mom.retrieval import retrieval_metrics


def test_retrieval_metrics_by_hand():
    # 3 database items on the unit circle, 1 query closest to item 0, then 1, then 2
    db = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    gnd = [{"easy": np.array([1]), "hard": np.array([2]), "junk": np.array([0])}]
    m = retrieval_metrics(q, db, gnd, "revisited")
    # easy: positive {1}, junk {0, 2}: ranked first after junk removal -> AP 1
    assert m["map_easy"] == pytest.approx(100.0)
    # medium: positives {1, 2}, junk {0}: ranks 0 and 1 -> AP 1
    assert m["map_medium"] == pytest.approx(100.0) and m["map"] == m["map_medium"]
    # hard: positive {2}, junk {0, 1} -> AP 1
    assert m["map_hard"] == pytest.approx(100.0)
    classic = [{"good": np.array([2]), "ok": np.array([], dtype=np.int64), "junk": np.array([0])}]
    # junk item 0 removed, the ranking is [1, 2]: the positive at rank 1 gives
    # the trapezoid (0/1 + 1/2) / 2 = 25%
    assert retrieval_metrics(q, db, classic, "classic")["map"] == pytest.approx(100 * (0 / 1 + 1 / 2) / 2)
    with pytest.raises(ValueError, match="protocol"):
        retrieval_metrics(q, db, gnd, "other")


def test_benchmark_needs_a_retrieval_dataset_and_root(tmp_path):
    assert is_retrieval(DataConfig(dataset="roxford5k"))
    assert not is_retrieval(DataConfig())
    with pytest.raises(ValueError, match="not a retrieval dataset"):
        load_benchmark(DataConfig())
    with pytest.raises(ValueError, match="data.root"):
        load_benchmark(DataConfig(dataset="rparis6k"))
    with pytest.raises(FileNotFoundError, match="gnd_roxford5k.pkl"):
        load_benchmark(DataConfig(dataset="roxford5k", root=str(tmp_path)))


@pytest.mark.slow
def test_run_on_oxford_layout_reports_map(tmp_path):
    make_oxford(tmp_path / "data", n_db=24, n_q=3)
    out = tmp_path / "run"
    sets = ["--set", "data.dataset=roxford5k", "--set", f"data.root={tmp_path / 'data'}",
            "--set", "data.per_class=null", "--set", "mining.k_graph=5",
            "--set", "mining.k_pos=4", "--set", "mining.k_neg=8", "--set", "mining.pool_size=3"]
    assert main(["-q", "run", "--params", "smoke", "--out", str(out), *sets]) == 0
    results = json.loads((out / "results.json").read_text())
    for row in ("initial", "euclidean", "mom"):
        for key in ("map_easy", "map_medium", "map_hard", "map"):
            assert math.isfinite(results[row][key]) and 0 <= results[row][key] <= 100, (row, key)
        assert "recall@1" not in results[row]
    assert results["data"] == {**results["data"], "train": 24, "test": 3}
    assert not (out / "pool_diagnostics.npz").exists()  # no labels, no diagnostics

    # the stage command scores the saved model the same way
    assert main(["-q", "evaluate", "--params", "smoke", *sets, "--checkpoint", str(out / "mom"),
                 "--out", str(tmp_path / "m.json")]) == 0
    again = json.loads((tmp_path / "m.json").read_text())
    assert again["map"] == pytest.approx(results["mom"]["map"], abs=1e-6)
