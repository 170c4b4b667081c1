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
from mom.companion.paper import TABLE1, format_table, table1_rows  # noqa: E402


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
    assert isinstance(fig, Figure) and len(fig.axes) == 3  # (a), (b), (c): no colour bar
    ringed = fig.axes[0].collections[1].get_offsets()
    assert len(ringed) == 7
    top_eu = [j for j in np.argsort(-eu) if j != 0][:7]
    assert np.allclose(np.asarray(ringed), coords[top_eu])
    top_m = [j for j in np.argsort(-manifold, kind="stable") if j != 0][:7]
    assert np.allclose(np.asarray(fig.axes[1].collections[1].get_offsets()), coords[top_m])
    same = int(np.sum(labels[top_m] == labels[0]))
    assert f"{same} of them of the anchor's class" in fig.axes[1].get_title()
    # the points are coloured by class: one colour a class
    colours = fig.axes[0].collections[0].get_facecolors()
    _, palette = viz.class_colours(labels)
    for c in np.unique(labels):
        assert np.allclose(colours[labels == c][:, :3], palette[int(c)][:3])
    # (c): every other point at (Euclidean, manifold similarity), the log axis
    assert np.allclose(np.asarray(fig.axes[2].collections[0].get_offsets())[:, 0], eu[1:])
    assert fig.axes[2].get_yscale() == "log" and "inner product" in fig.axes[2].get_xlabel()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]  # one legend, under the figure
    assert "anchor" in legend and any(t.startswith("class") for t in legend)
    assert all(ax.get_legend() is None for ax in fig.axes)
    bad = manifold.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        viz.plot_diffusion(coords, eu, bad, 0)


def test_plot_stationary_marks_kept_modes_as_probabilities():
    pi = np.array([0.1, 0.5, 0.2, 0.9, 0.05])
    fig = viz.plot_stationary(pi, np.array([3, 1]), np.random.default_rng(0).normal(size=(5, 2)),
                              n_anchors=1)
    assert len(fig.axes) == 2
    marked = np.asarray(fig.axes[0].collections[0].get_offsets())
    # rank 1, probability 0.9 / 1.75: only the top mode is kept; the L2 or any other
    # scaling of pi is drawn as a distribution summing to 1
    assert np.allclose(marked, [[1.0, 0.9 / pi.sum()]])
    again = viz.plot_stationary(pi * 7.0, np.array([3, 1]), n_anchors=1)
    assert np.allclose(np.asarray(again.axes[0].collections[0].get_offsets()), marked)
    assert fig.axes[0].get_ylabel() == "stationary probability (sums to 1)"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("anchors=stationary" in t for t in legend)
    assert not any("modes (anchors)" in t for t in legend)
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
    texts = [t.get_text() for t in fig.legends[0].get_texts()]  # under the panels
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


def _points(ax):
    """(x, y, yerr or None) of every marker drawn by plot_differences, left to right."""
    found = []
    for line in ax.get_lines():
        x, y = line.get_xdata(), line.get_ydata()
        if len(x) == 1 and line.get_marker() in ("o", "D"):  # not the error bars' caps
            found.append((float(x[0]), float(y[0])))
    return sorted(found)


def test_plot_differences_draws_differences_around_zero_with_their_intervals():
    table = {"mom": {"recall@1": {"mean": 0.3, "ci95": [0.1, 0.5]}, "nmi": {"mean": -1.0, "ci95": None}},
             "euclidean": {"recall@1": {"mean": -0.2, "ci95": [-0.4, 0.0]}}}
    fig = viz.plot_differences(table, title="t")
    ax = fig.axes[0]
    assert sorted(y for _, y in _points(ax)) == [-1.0, -0.2, 0.3]
    assert any(np.allclose(line.get_ydata(), 0.0) for line in ax.get_lines())  # the zero line
    bars = [c for c in ax.collections if c.get_segments()]  # the error bars: exactly two
    assert sorted(round(s[0][1], 3) for c in bars for s in c.get_segments()) == [-0.4, 0.1]
    assert ax.get_ylabel() == "difference (percentage points)"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "mom (one run, no interval)" in legend and "mom" in legend
    assert [t.get_text() for t in ax.get_xticklabels()] == ["R@1", "NMI"]
    with pytest.raises(ValueError, match="empty"):
        viz.plot_differences({})


def test_plot_before_after_is_the_change_of_one_run():
    before = {"recall@1": 91.7, "nmi": 59.6}
    after = {"recall@1": 92.1, "nmi": 62.9}
    fig = viz.plot_before_after(before, after, ["recall@1", "nmi"], label="one epoch")
    ax = fig.axes[0]
    assert np.allclose(sorted(y for _, y in _points(ax)), sorted([0.4, 3.3]))
    assert ax.get_ylim()[0] < 0.4 and not ax.patches  # markers around zero, no bars from 0
    assert [t.get_text() for t in ax.get_xticklabels()] == ["R@1\n91.7 → 92.1", "NMI\n59.6 → 62.9"]


def _study(mom_r1=(0.1, [-0.2, 0.4])):
    metrics = ("recall@1", "recall@2", "recall@4", "recall@8", "nmi")
    paired = {p: {m: {"mean": mom_r1[0] if p == "mom-initial" else 0.0,
                      "ci95": mom_r1[1] if p == "mom-initial" else [0.0, 0.0], "n": 3, "p": 0.5}
                  for m in metrics} for p in ("mom-initial", "mom-euclidean", "euclidean-initial")}
    rows = {r: {m: {"mean": 50.0, "ci95": [49.0, 51.0], "n": 3} for m in metrics}
            for r in ("initial", "euclidean", "mom")}
    return {"paired": paired, "rows": rows}


def test_plot_table1_puts_each_data_set_on_its_own_axis():
    fig = viz.plot_table1(_study(), dataset="Toy")
    a, b = fig.axes[:2]
    assert max(abs(y) for _, y in _points(a)) < 1  # our differences, not 45 or 92
    paper = sorted(y for _, y in _points(b))
    expected = sorted(TABLE1["MoM (paper)"][m] - TABLE1["Cyclic match (paper)"][m]
                      for m in ("recall@1", "recall@2", "recall@4", "recall@8"))
    assert np.allclose(paper, expected)  # MoM minus cyclic match; no NMI for cyclic match
    assert "Toy" in a.get_title() and "CUB-200-2011" in b.get_title()
    assert all("percentage points" in ax.get_ylabel() for ax in (a, b))


def test_epoch_labels_say_how_many_tuples():
    assert viz.epoch_label(0.25) == "epoch (0.25 N tuples; 4 make one pass)"
    assert viz.epoch_label(None) == "epoch (N tuples, one pass)"
    assert viz.epoch_label(600) == "epoch (600 tuples)"


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


def test_save_figure_rasterises_large_scatters_in_the_svg(tmp_path):
    xy = np.random.default_rng(0).normal(size=(5000, 2))
    fig, (big, small) = plt.subplots(1, 2)
    big.scatter(xy[:, 0], xy[:, 1], s=4)
    small.scatter(xy[:10, 0], xy[:10, 1], s=4)
    svg = viz.save_figure(fig, tmp_path / "scatter")[1].read_text()
    assert svg.count("<image") == 1  # the 5 000 points as one image; the 10 stay vectors
    assert len(svg) < 200_000  # a vector path per point would be several MB


def test_math_labels_typeset_pool_names_once():
    assert viz.math_label("P+ precision") == "$P^+$ precision"
    assert viz.math_label("P- purity\nrandom") == "$P^-$ purity\nrandom"
    assert viz.math_label("ranks k+ +1") == "ranks $k^+$ +1"
    assert viz.math_label("$P^+$ (MoM)") == "$P^+$ (MoM)" and viz.math_label("mom") == "mom"
    fig = viz.plot_grouped_bars({"mom": {"P+ precision": 0.7}})
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["$P^+$ precision"]
