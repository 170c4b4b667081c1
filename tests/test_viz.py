"""Figures return Figures with the content they claim; save_figure is atomic."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mom.companion import viz  # noqa: E402
from mom.config import MiningConfig  # noqa: E402
from mom.datasets import ArrayDataset  # noqa: E402
from mom.mining import mine, pool_diagnostics  # noqa: E402
from conftest import clustered  # noqa: E402
from mom.companion.paper import TABLE1, TABLE1_COLUMNS, format_table, table1_rows  # noqa: E402


@pytest.fixture(scope="module")
def small():
    x, labels = clustered()
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, size=(len(x), 12, 12), dtype=np.uint8)
    ds = ArrayDataset(images, labels, name="toy")
    pools = mine(x, MiningConfig(k_graph=6, k_pos=6, k_neg=20, pool_size=5))
    return ds, x, labels, pools


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_project_2d_matches_pca_up_to_sign():
    x, _ = clustered()
    coords = viz.project_2d(x)
    xc = x - x.mean(0)
    _, s, vt = np.linalg.svd(xc.astype(np.float64), full_matrices=False)
    ref = xc @ vt[:2].T
    assert coords.shape == (len(x), 2)
    for j in range(2):
        assert np.allclose(np.abs(coords[:, j]), np.abs(ref[:, j]), atol=1e-5)
    # variance explained is the two largest singular values, in order
    assert np.allclose(coords.var(0) * len(x), s[:2] ** 2, rtol=1e-4)
    with pytest.raises(ValueError, match="project_2d"):
        viz.project_2d(np.zeros(5))


def test_plot_diffusion_rings_the_top_points_and_rejects_nan(small):
    _, x, labels, _ = small
    coords = viz.project_2d(x)
    eu = x @ x[0]
    manifold = np.exp(-np.arange(len(x)) / 10.0)
    fig = viz.plot_diffusion(coords, eu, manifold, 0, top=7, labels=labels)
    assert isinstance(fig, Figure) and len(fig.axes) == 4  # two panels + colour bars
    ringed = fig.axes[0].collections[1].get_offsets()
    assert len(ringed) == 7
    top_eu = [j for j in np.argsort(-eu) if j != 0][:7]
    assert np.allclose(np.asarray(ringed), coords[top_eu])
    assert "of the anchor's class" in fig.axes[0].get_title()
    bad = manifold.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        viz.plot_diffusion(coords, eu, bad, 0)


def test_plot_stationary_marks_kept_modes():
    pi = np.array([0.1, 0.5, 0.2, 0.9, 0.05])
    fig = viz.plot_stationary(pi, np.array([3, 1]), np.random.default_rng(0).normal(size=(5, 2)),
                              n_anchors=1)
    assert len(fig.axes) == 2
    marked = np.asarray(fig.axes[0].collections[0].get_offsets())
    assert marked.tolist() == [[1.0, 0.9]]  # rank 1, value 0.9: only the top mode is kept
    with pytest.raises(ValueError, match="modes"):
        viz.plot_stationary(pi, np.array([7]))


def test_plot_pools_2d_counts_same_class(small):
    _, x, labels, pools = small
    coords = viz.project_2d(x)
    a = int(pools.anchors[0])
    pos = pools.positives[0]
    fig = viz.plot_pools_2d(coords, a, {"positives": {"P+": pos, "NN^e": pools.baseline.positives[0]},
                                        "negatives": {"P-": pools.negatives[0]}}, labels)
    assert len(fig.axes) == 2
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    expected = np.mean(labels[pos] == labels[a])
    assert texts[0] == f"P+: {expected:.0%} same class"


def test_grouped_bars_heights():
    fig = viz.plot_grouped_bars({"mom": {"P+ precision": 0.7, "P- purity": 0.8},
                                 "euclidean": {"P+ precision": 0.6, "P- purity": 0.9}})
    heights = sorted(round(p.get_height(), 3) for p in fig.axes[0].patches)
    assert heights == [0.6, 0.7, 0.8, 0.9]
    with pytest.raises(ValueError):
        viz.plot_grouped_bars({})


def test_pool_diagnostics_figure_shows_the_engine_numbers(small):
    _, x, labels, pools = small
    diag = pool_diagnostics(pools, x, labels)
    groups = viz.pool_diagnostics_groups(diag)
    assert groups["mom"] == {"P+ precision": diag["pos_precision"], "P- purity": diag["neg_purity"]}
    assert groups["euclidean"]["P- purity"] == diag["baseline_neg_purity"]
    fig = viz.plot_pool_diagnostics(diag)
    heights = sorted(p.get_height() for p in fig.axes[0].patches if np.isfinite(p.get_height()))
    assert heights == sorted(v for g in groups.values() for v in g.values())


def test_plot_recalls_and_metric_bars():
    ours = {"initial": {"recall@1": 10, "recall@2": 20, "recall@4": 30, "recall@8": 40, "nmi": 5}}
    fig = viz.plot_recalls(ours, reference=TABLE1)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 1 + len(TABLE1)
    assert list(lines[0].get_ydata()) == [10, 20, 30, 40]
    rows = table1_rows(ours)
    fig = viz.plot_metric_bars(rows, TABLE1_COLUMNS)
    # the cyclic-match row has no NMI: no bar there, never a zero
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert len(heights) == 3 * 5 - 1 and 0 not in heights and 45.3 in heights
    hatched = [p.get_height() for p in fig.axes[0].patches if p.get_hatch()]
    assert 45.3 in hatched and 10 not in hatched and len(hatched) == 9  # the paper's two rows


def test_table1_rows_and_format():
    rows = table1_rows({"mom": {"recall@1": 50.0}}, paper=True)
    assert [r["source"] for r in rows] == ["ours", "paper", "paper"]
    assert np.isnan(rows[0]["nmi"])
    text = format_table(rows)
    assert format_table([{"anchors": "all", "n": 55, "r": 1.25}], ("n", "r"), label="anchors") \
        .endswith("| all | 55 | 1.2 |")  # counts stay integers
    assert "| mom | 50.0 |  |" in text and "| MoM (paper) | 45.3 | 57.8 | 68.6 | 78.4 | 55.0 |" in text


def test_gallery_rows_and_frames(small):
    ds, x, labels, pools = small
    rows = viz.gallery_ids(pools, x, 0, n=4, seed=3)
    a = int(pools.anchors[0])
    assert list(rows) == ["P+", "NN^e_3", "P-", "X \\ NN^e_3"]
    assert np.array_equal(rows["P+"], pools.positives[0][:4])
    brute = [j for j in np.argsort(-(x @ x[a]), kind="stable") if j != a][:3]
    assert rows["NN^e_3"].tolist() == brute
    assert a not in rows["X \\ NN^e_3"] and not set(rows["X \\ NN^e_3"]) & set(brute)
    fig = viz.gallery_figure(ds, pools, x, [0, 1], n=4, labels=labels, seed=3)
    grid = np.array(fig.axes).reshape(8, 6)  # 2 anchors x 4 rows; anchor, name, 4 images
    from mom.companion.gallery import ROW_LABELS  # the paper's typesetting: $P^+$, $NN^e_3$, ...
    assert [grid[i, 1].texts[0].get_text() for i in range(4)] == [ROW_LABELS[r] for r in rows]
    first = grid[0, 2]  # first P+ image of anchor 0
    want = viz.SAME if labels[rows["P+"][0]] == labels[a] else viz.OTHER
    assert first.spines["top"].get_edgecolor() == to_rgba(want)
    assert grid[0, 0].spines["top"].get_edgecolor() == to_rgba("tab:blue")
    assert not grid[1, 0].spines["top"].get_visible()  # anchor only in the block's first row
    assert grid[1, 4].spines["top"].get_visible()
    assert grid[1, 5].spines["top"].get_visible() is False  # NN^e_3 row has 3 images


def test_save_figure_writes_png_and_svg_atomically(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    paths = viz.save_figure(fig, tmp_path / "sub" / "fig")
    assert [p.name for p in paths] == ["fig.png", "fig.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in paths[1].read_bytes()[:500]
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["fig.png", "fig.svg"]


def test_math_labels_typeset_pool_names_once():
    assert viz.math_label("P+ precision") == "$P^+$ precision"
    assert viz.math_label("P- purity\nrandom") == "$P^-$ purity\nrandom"
    assert viz.math_label("ranks k+ +1") == "ranks $k^+$ +1"
    assert viz.math_label("$P^+$ (MoM)") == "$P^+$ (MoM)" and viz.math_label("mom") == "mom"
    fig = viz.plot_grouped_bars({"mom": {"P+ precision": 0.7}})
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["$P^+$ precision"]
