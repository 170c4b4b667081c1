"""The pool inspector: state after each callback, and the widgets in a live kernel."""
import json
import textwrap

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from mom.companion.widgets import PoolInspector, euclidean_ranks
from mom.config import MiningConfig
from mom.datasets import ArrayDataset
from mom.mining import mine, pool_diagnostics


def toy(seed=0, n_per=15, classes=4):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per)
    x = rng.normal(size=(classes, 8))[labels] + 0.4 * rng.normal(size=(len(labels), 8))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    ds = ArrayDataset(rng.integers(0, 255, (len(x), 10, 10), dtype=np.uint8), labels, "toy")
    return ds, x, labels, mine(x, MiningConfig(k_graph=6, k_pos=5, k_neg=15, pool_size=4))


@pytest.fixture(scope="module")
def data():
    return toy()


def test_euclidean_ranks_brute_force():
    x = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0]] + 0.1  # point 4 duplicates point 0
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x[0]
    for j in range(1, 5):
        brute = 1 + sum(sims[i] > sims[j] for i in range(5) if i != 0)
        assert euclidean_ranks(x, 0, np.array([j]))[0] == brute
    assert euclidean_ranks(x, 0, np.array([4]))[0] == 1


def test_state_follows_the_callbacks(data):
    ds, x, labels, pools = data
    insp = PoolInspector(ds, pools, x, labels)
    s = insp.state
    assert (s["position"], s["anchor"], s["pools"]) == (0, int(pools.anchors[0]), "mom")
    assert s["positives"] == pools.positives[0].tolist()
    assert s["negatives"] == pools.negatives[0].tolist()
    assert np.allclose(s["positive_weights"], pools.positive_weights[0])
    # P+ lies beyond the k+ Euclidean neighbours; baseline positives within them
    assert min(s["positive_ranks"]) > pools.config.k_pos - 1
    diag = pool_diagnostics(pools, x, labels)
    assert s["precision"] == pytest.approx(diag["pos_precision_per_anchor"][0])

    insp.set_anchor(3)
    assert insp.state["anchor"] == int(pools.anchors[3])
    brief = insp.summary(n=2)
    assert brief["anchor"] == insp.state["anchor"] and len(brief["positives"]) <= 2
    assert brief["positives"][0][0] == int(pools.positives[3][0])
    assert brief["positives"][0][2] == insp.state["positive_ranks"][0]
    assert insp.state["positives"] == pools.positives[3].tolist()

    insp.toggle_baseline()
    s = insp.state
    assert s["pools"] == "euclidean" and s["positives"] == pools.baseline.positives[3].tolist()
    assert max(s["positive_ranks"]) <= pools.config.k_pos - 1
    assert s["purity"] == pytest.approx(diag["baseline_neg_purity_per_anchor"][3])
    insp.toggle_baseline(False)
    assert insp.state["pools"] == "mom"

    insp.set_order("worst first")
    worst = insp.state["precision"]
    assert worst == pytest.approx(np.nanmin(diag["pos_precision_per_anchor"]))
    insp.set_order("best first")
    assert insp.state["precision"] == pytest.approx(np.nanmax(diag["pos_precision_per_anchor"]))
    with pytest.raises(ValueError, match="out of range"):
        insp.set_anchor(len(pools))
    with pytest.raises(ValueError, match="order"):
        insp.set_order("random")


def test_switch_sources_and_label_free_use(data):
    ds, x, labels, pools = data
    ds2, x2, _, pools2 = toy(seed=5, n_per=12, classes=3)
    insp = PoolInspector(ds, pools, x, labels, name="a")
    insp.set_order("worst first")
    insp.set_anchor(2)
    insp.controls  # noqa: B018 - build the widgets, so that switching re-renders them
    insp.add_source("b", ds2, pools2, x2)  # no labels: browsing still works, by index
    assert insp.controls["source"].options == ("a", "b")
    insp.switch("b")
    s = insp.state
    assert (s["source"], s["order"], s["position"], s["anchor"]) == ("b", "index", 0, int(pools2.anchors[0]))
    assert "precision" not in s and insp.controls["order"].disabled
    with pytest.raises(ValueError, match="labels"):
        insp.set_order("worst first")
    with pytest.raises(ValueError, match="unknown source"):
        insp.switch("c")
    with pytest.raises(ValueError, match="do not match"):
        insp.add_source("bad", ds2, pools2, x)


def test_widgets_reflect_state(data):
    ds, x, labels, pools = data
    insp = PoolInspector(ds, pools, x, labels, n_show=3)
    c = insp.controls
    c["step"].value = 4  # moving the slider is the same as set_anchor(4)
    assert insp.state["anchor"] == int(pools.anchors[4])
    c["baseline"].value = True
    assert insp.state["pools"] == "euclidean"
    insp.set_anchor(1)  # and the other way round: the slider follows the state
    assert c["step"].value == 1
    view = insp.widget.children[2].children  # anchor row, positives row, negatives row
    cells = view[1].children[1].children
    assert len(cells) == min(3, len(pools.baseline.positives[1]))
    first = int(pools.baseline.positives[1][0])
    colour = "green" if labels[first] == labels[insp.state["anchor"]] else "red"
    assert cells[0].children[0].layout.border == f"3px solid {colour}"
    assert f"#{first}" in cells[0].children[1].value
    assert "euclidean" in insp.widget.children[1].value


LIVE = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    from test_widgets import toy
    from mom.companion.widgets import PoolInspector
    ds, x, labels, pools = toy()
    insp = PoolInspector(ds, pools, x, labels)
    insp
""")
CHANGE = textwrap.dedent("""
    before = dict(insp.state)
    insp.controls["step"].value = 5
    insp.controls["baseline"].value = True
    print(json.dumps({"before": before, "after": insp.state}))
""")


@pytest.mark.slow
def test_inspector_in_a_live_kernel(tmp_path):
    import pathlib
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(LIVE.format(tests=str(pathlib.Path(__file__).parent))),
                nbformat.v4.new_code_cell(CHANGE)]
    NotebookClient(nb, kernel_name="python3", timeout=120,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = nb.cells[0].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in shown)
    out = json.loads("".join(o["text"] for o in nb.cells[1].outputs if o["output_type"] == "stream"))
    before, after = out["before"], out["after"]
    _, _, _, pools = toy()
    assert before["anchor"] == int(pools.anchors[0]) and before["pools"] == "mom"
    assert after["anchor"] == int(pools.anchors[5]) and after["pools"] == "euclidean"
    assert after["positives"] == pools.baseline.positives[5].tolist() != before["positives"]
