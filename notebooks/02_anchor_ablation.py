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
# # 02 · Anchor ablation
#
# Which anchors, and which pools? Anchors are **all** training images, the top
# **stationary**-distribution modes, or the same number drawn at **random** (seeded);
# for each, the network is fine-tuned on **Euclidean** pools and on **MoM** pools
# (P+ / P−) from the same anchors. The paper reports that stationary anchors clearly
# beat random ones and that P+ / P− clearly beat Euclidean pools.
#
# Metric: Recall@1 on the test split (CUB and the offline default); mAP for the
# retrieval collections (Oxford5k). Each cell is one `mom.pipeline.run`, cached by its
# configuration. The pool diagnostics below use training labels for display only.

# %% tags=["parameters"]
params = "smoke"  # smoke | default | paper | path to a YAML parameter file
overrides = []  # parameter overrides, as for `mom run --set`
figures_dir = ""  # empty: figures/<params> of the repository, whatever the working directory
results_dir = ""  # empty: results/<params> of the repository
runs_dir = ""  # empty: runs/<params> of the repository (cached pipeline runs)
progress = False
oxford_root = ""  # folder holding roxford5k/: adds the Oxford5k mAP ablation (params/paper_oxford.yaml)

# %%
from mom.companion import viz
from mom.companion.ablation import (ablation, ablation_differences, ablation_table,
                                    diagnostics_table)
from mom.companion.claims import difference_line
from mom.companion.paper import ABLATION_CLAIM, format_table
from mom.companion.reproduce import notebook_dirs, save_results
from mom.companion.runinfo import start
from mom.config import apply_overrides, load_params

run = start(params)  # the clock and the machine, read now; the last cell prints the time taken
print(run.header())
cfg = apply_overrides(load_params(params), overrides)
figures_dir, results_dir, runs_dir = notebook_dirs(params, figures_dir, results_dir, runs_dir)
print(f"params {cfg.name!r}, dataset {cfg.data.dataset!r}: at most {cfg.mining.n_anchors} stationary "
      f"modes, as many random anchors; k+ {cfg.mining.k_pos}, k- {cfg.mining.k_neg}")

# %%
rows = ablation(cfg, runs_dir, progress=progress)
table = ablation_table(rows)
print(format_table(table, columns=("n_anchors", "initial", "euclidean", "mom"), label="anchors"))
print(f"metric: {rows[0]['metric']}.  Paper: {ABLATION_CLAIM}")

# %% [markdown]
# How to read it: the paper makes two claims, that $P^+$/$P^-$ beat Euclidean pools for
# the same anchors, and that stationary-distribution anchors beat as many random ones.
# The figure draws each cell's change from the untrained network (trained − initial):
# compare each "mom" marker with its "euclidean" neighbour (first claim) and the
# stationary column with the random one (second claim). Each marker is **one**
# training run, so it has no interval: the seeds of notebook 01's study show how far
# one run moves by training noise alone, and a difference smaller than that is no
# evidence either way. On a small collection the graph may have few modes, so the
# stationary and random rows train on few anchors.

# %%
metric = viz.metric_label(rows[0]["metric"])
fig = viz.plot_differences(ablation_differences(rows),
                           ylabel=f"trained − initial, {metric} (percentage points)",
                           ticks={r["anchors"]: f"{r['anchors']} anchors\n({r['n_anchors']})"
                                  for r in rows},
                           title=f"anchor ablation on {cfg.data.dataset}: one training run a cell")
viz.save_figure(fig, f"{figures_dir}/02_anchor_ablation");

# %% [markdown]
# ## Pool diagnostics
# $P^+$ precision (share of positives from the anchor's class) and $P^-$ purity (share of
# negatives from another class), per anchor choice and pool family. Higher is cleaner;
# MoM's $P^+$ trades some precision for harder (farther) positives, so its precision
# below the Euclidean neighbours' is expected, not a failure.

# %%
fig = viz.plot_grouped_bars(diagnostics_table(rows), ylabel="fraction of the pool",
                            title="pool diagnostics (training labels, for display only)")
viz.save_figure(fig, f"{figures_dir}/02_pool_diagnostics");

# %% [markdown]
# ## Oxford5k (its own parameter file)
# The retrieval half of the ablation has its own parameters, `params/paper_oxford.yaml`:
# stationary anchors (top 1 500 modes), $k^-$ = 10 000, VGG16 + MAC trained with the
# contrastive loss (margin 0.7, 5 negatives), as the paper describes for retrieval
# (docs/method.md §5, §6, §10).
# Metric: mAP on the revisited Oxford5k (Medium), percent. It runs only when
# `oxford_root` names the data (a GPU is needed in practice).

# %%
oxford = []
if oxford_root:
    ox_cfg = apply_overrides(load_params("paper_oxford"), [f"data.root={oxford_root}"])
    oxford = ablation(ox_cfg, runs_dir, progress=progress)
    print(format_table(ablation_table(oxford), columns=("n_anchors", "initial", "euclidean", "mom"),
                       label="anchors"))
else:
    print("Oxford5k ablation skipped (set oxford_root to the folder holding roxford5k/)")

# %%
save_results(results_dir, "anchor_ablation", {"rows": rows, "table": table, "oxford": oxford}, cfg);

# %% [markdown]
# ## What this run shows
# The paper's two claims, cell by cell, from the numbers above. One run a cell gives
# no interval, so neither claim can be shown here, whatever the signs.

# %%
print(run.footer())
cells = {(r["anchors"], r["pools"]): r["value"] for r in rows}
for anchors in ("all", "stationary", "random"):
    print(difference_line(f"{anchors} anchors: MoM pools - Euclidean pools ({metric})",
                          {"mean": cells[anchors, "mom"] - cells[anchors, "euclidean"]}))
print(difference_line(f"MoM pools: stationary - random anchors ({metric})",
                      {"mean": cells["stationary", "mom"] - cells["random", "mom"]}))
