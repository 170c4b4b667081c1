# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Figure 3: what the pools look like
#
# For sampled anchors, four rows (as in the paper's Figure 3):
#
# - **P+**: hard positives, close on the manifold but not Euclidean neighbours;
# - **NN^e_3**: the three Euclidean nearest neighbours (what Euclidean mining would call positives);
# - **P−**: hard negatives, Euclidean neighbours that the manifold does not reach;
# - **X \ NN^e_3**: random images outside the Euclidean neighbourhood (easy negatives).
#
# Frames: **green** = same class as the anchor, **red** = another class. The labels
# are used for this display only; mining never saw them.

# %% tags=["parameters"]
params = "smoke"  # smoke | default | paper | path to a YAML parameter file
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

from mom import viz
from mom.config import apply_overrides, load_params
from mom.pipeline import train_split
from mom.reproduce import notebook_dirs, save_results
from mom.runs import cached_run, load_run

cfg = apply_overrides(load_params(params), overrides)
figures_dir, results_dir, runs_dir = notebook_dirs(params, figures_dir, results_dir, runs_dir)
run = load_run(cached_run(cfg, runs_dir, progress=progress)[1])  # the same run as Table 1
train_ds = train_split(cfg)  # the run's training images
labels = np.asarray(train_ds.labels)  # display only
pools = run.pools
positions = np.sort(np.random.default_rng(seed).choice(len(pools), min(n_anchors_shown, len(pools)),
                                                       replace=False))
print(f"{len(pools)} anchors in {run.run_dir.name}; showing anchors {pools.anchors[positions].tolist()}")

# %%
fig = viz.gallery_figure(train_ds, pools, run.features, positions, n=n_images, labels=labels, seed=seed)
viz.save_figure(fig, f"{figures_dir}/03_figure3");

# %% [markdown]
# Over *all* anchors, not only the ones shown (the run's pool diagnostics): P+ precision
# is the share of the anchor's class in P+, P− purity the share of other classes in P−;
# "euclidean" is the baseline's pools, and the last bar Euclidean neighbours at P+'s depth.

# %%
fig = viz.plot_pool_diagnostics(run.results["pools"])
viz.save_figure(fig, f"{figures_dir}/03_pool_diagnostics")
save_results(results_dir, "figure3", {"anchors": pools.anchors[positions].tolist(),
                                      "pools": run.results["pools"], "run_dir": str(run.run_dir)}, cfg);
