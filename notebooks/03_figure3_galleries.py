# ---
# jupyter:
#   jupytext:
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Figure 3: what the pools look like, and how hard they are
#
# By default on the bundled Omniglot characters (`params/omniglot.yaml`, the pools mined
# by its main run). For sampled anchors, four rows (as in the paper's Figure 3):
#
# - **$P^+$**: hard positives, close on the manifold but not Euclidean neighbours;
# - **$NN^e_3$**: the three Euclidean nearest neighbours (what Euclidean mining would call positives);
# - **$P^-$**: hard negatives, Euclidean neighbours that the manifold does not reach;
# - **$X \setminus NN^e_3$**: random images outside the Euclidean neighbourhood (easy negatives).
#
# Frames: **blue** = the anchor, **green** = same class as the anchor, **red** = another
# class (the key is under the figure). The labels are used for this display only;
# mining never saw them.
#
# How to read it against the paper: in the paper's Figure 3 (CUB birds) the $P^+$ row
# is mostly green while looking *different* from the anchor (other poses, backgrounds),
# the $NN^e_3$ row is green and looks alike (easy positives, little to learn), the $P^-$
# row looks alike but is often red (hard negatives), and $X \setminus NN^e_3$ is red and
# unlike (easy negatives). The same pattern here, row by row, is the method working;
# a $P^+$ row full of red frames means the pool depth $k^+$ is too large for the
# collection's class size (on Omniglot the paper's $k^+$ = 50 is 2.5 classes deep).
#
# Under each row's name: its share of correct members over **every** anchor (precision
# for the positive rows, purity for the negative rows), and which pool each row stands
# for in training: MoM trains on $P^+$ and $P^-$; the Euclidean baseline on
# $NN^e_{k^+}$ (of which $NN^e_3$ shows the nearest three) and on the points beyond
# $NN^e_{k^-}$ (which $X \setminus NN^e_3$ only samples).

# %% tags=["parameters"]
params = "omniglot"  # omniglot | default (Fashion-MNIST) | smoke | paper | a YAML path
overrides = []  # parameter overrides, as for `mom run --set`
figures_dir = ""  # empty: figures/<params> of the repository, whatever the working directory
results_dir = ""  # empty: results/<params> of the repository
runs_dir = ""  # empty: runs/<params> of the repository (cached pipeline runs)
progress = False
n_anchors_shown = 4  # anchors sampled for the figure
n_images = 6  # images per row
seed = 0

# %%
import numpy as np

from mom.companion import viz
from mom.companion.claims import compare
from mom.companion.reproduce import notebook_dirs, save_results
from mom.companion.runinfo import start
from mom.companion.runs import cached_run, load_run
from mom.config import apply_overrides, load_params
from mom.datasets.splits import train_split

run_info = start(params)  # the clock and the machine, read now; the last cell prints the time taken
print(run_info.header())
cfg = apply_overrides(load_params(params), overrides)
figures_dir, results_dir, runs_dir = notebook_dirs(params, figures_dir, results_dir, runs_dir)
run = load_run(cached_run(cfg, runs_dir, progress=progress)[1])  # the pipeline run of these params
train_ds = train_split(cfg)  # the run's training images
labels = np.asarray(train_ds.labels)  # display only
pools = run.pools
positions = np.sort(np.random.default_rng(seed).choice(len(pools), min(n_anchors_shown, len(pools)),
                                                       replace=False))
print(f"{len(pools)} anchors in {run.run_dir.name}; showing anchors {pools.anchors[positions].tolist()}")

# %%
from mom.companion.gallery import row_notes, row_rates

rates = row_rates(pools, run.features, labels, seed=seed)  # over every anchor
notes = row_notes(rates, cfg.mining.k_pos, pools.config.k_neg if pools.config else None)
for name, rate in rates.items():
    print(f"{name:<12} {'precision' if name in ('P+', 'NN^e_3') else 'purity'} {rate:.3f}")
fig = viz.gallery_figure(train_ds, pools, run.features, positions, n=n_images, labels=labels,
                         seed=seed, notes=notes)
viz.save_figure(fig, f"{figures_dir}/03_figure3");

# %% [markdown]
# Over *all* anchors, not only the ones shown (the run's pool diagnostics): P+ precision
# is the share of the anchor's class in P+, P− purity the share of other classes in P−;
# "euclidean" is the baseline's pools, and the last group the Euclidean neighbours at
# P+'s depth. (Notebook 00 draws the same numbers as a figure, `00_pool_diagnostics`.)

# %%
diagnostics = viz.pool_diagnostics_groups(run.results["pools"])
for group, values in diagnostics.items():
    print(f"{group:<26}" + "  ".join(f"{k} {v:.3f}" for k, v in values.items()))

# %% [markdown]
# ## How hard, and how correct (the mechanism behind Table 1)
# Three measurements on the same pools (docs/method.md §13a; training labels measure,
# they choose nothing). (a) Where the positives sit in their anchor's Euclidean
# ordering: the baseline's are its first $k^+ - 1$ neighbours, MoM's $P^+$ lie beyond by
# construction, and the histogram says how far. (b) One epoch of tuples of each pool
# family, drawn as training draws them, scored by the **initial** network: a tuple it
# already gets right (no loss) teaches nothing. (c) At each position of the pools, $P^+$
# precision against the Euclidean neighbours at the same depth (what a deeper Euclidean
# pool would add), and $P^-$ purity against the nearest Euclidean neighbours taken as
# negatives. Hard *and* correct is the claim: harder than the baseline in (a) and (b),
# and above the dotted lines in (c).

# %%
from mom.hardness import hardness_report
from mom.pipeline import embed_with_model, load_model

initial = load_model(run.run_dir / "initial.pt")  # the untrained training network
initial_emb = embed_with_model(initial, train_ds, cfg, progress=progress)  # (N, d)
tc = cfg.row_train("mom")
hardness = hardness_report(pools, run.features, initial_emb, labels, margin=tc.margin,
                           hard_negatives=tc.hard_negatives,
                           n_tuples=tc.epoch_tuples(len(train_ds)), seed=seed)
for name, v in hardness["violated"].items():
    print(f"{name:<10} tuples violated by the initial network: loss {v['loss']:.1%}, "
          f"order {v['order']:.1%} (of {v['n']})")
ranks = {k: np.asarray(v) for k, v in hardness["ranks"].items()}
print(f"median Euclidean rank: P+ {np.median(ranks['mom']):.0f}, baseline positives "
      f"{np.median(ranks['euclidean']):.0f}")
fig = viz.plot_hardness(hardness)
viz.save_figure(fig, f"{figures_dir}/03_hardness")
save_results(results_dir, "figure3", {"anchors": pools.anchors[positions].tolist(),
                                      "pools": run.results["pools"], "row_rates": rates,
                                      "hardness": {k: hardness[k] for k in (
                                          "violated", "by_position", "k_pos", "margin",
                                          "hard_negatives", "n_tuples", "seed")},
                                      "median_rank": {k: float(np.median(v)) for k, v in ranks.items()},
                                      "run_dir": str(run.run_dir)}, cfg);

# %% [markdown]
# ## What this run shows
# The pattern of the paper's Figure 3, counted over every anchor rather than seen in a
# few: P+ should hold the anchor's class more often than the Euclidean neighbours just
# beyond the same depth, and P− should be mostly other classes.

# %%
print(run_info.footer())
stats = run.results["pools"]
print(f"P+ precision {stats['pos_precision']:.3f} against {stats['pos_precision_euclid']:.3f} "
      f"for the Euclidean neighbours at P+'s depth: "
      f"{compare(stats['pos_precision'], stats['pos_precision_euclid'])}")
print(f"P- purity {stats['neg_purity']:.3f} (above one half: mostly other classes): "
      f"{compare(stats['neg_purity'], 0.5)}")
print(f"P+ precision {stats['pos_precision']:.3f} above one half (mostly the anchor's class, "
      f"as in the paper's Figure 3): {compare(stats['pos_precision'], 0.5)}")
v = hardness["violated"]
print(f"MoM tuples violated by the initial network {v['mom']['loss']:.1%} against "
      f"{v['euclidean']['loss']:.1%} for Euclidean pools (harder): "
      f"{compare(v['mom']['loss'], v['euclidean']['loss'])}")
