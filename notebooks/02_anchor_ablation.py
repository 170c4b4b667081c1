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
oxford_root = ""  # roxford5k folder; with the paper params, adds the Oxford5k mAP ablation

# %%
from mom import viz
from mom.ablation import ablation, ablation_grid, ablation_table, diagnostics_table
from mom.config import apply_overrides, load_params
from mom.paper import ABLATION_CLAIM, format_table
from mom.reproduce import notebook_dirs, save_results

cfg = apply_overrides(load_params(params), overrides)
figures_dir, results_dir, runs_dir = notebook_dirs(params, figures_dir, results_dir, runs_dir)
print(f"params {cfg.name!r}, dataset {cfg.data.dataset!r}: at most {cfg.mining.n_anchors} stationary "
      f"modes, as many random anchors; k+ {cfg.mining.k_pos}, k- {cfg.mining.k_neg}")

# %%
rows = ablation(cfg, runs_dir, progress=progress)
table = ablation_table(rows)
print(format_table(table, columns=("n_anchors", "initial", "euclidean", "mom"), label="anchors"))
print(f"metric: {rows[0]['metric']}.  Paper: {ABLATION_CLAIM}")

# %%
fig = viz.plot_grouped_bars(ablation_grid(rows), ylabel=rows[0]["metric"], fmt="%.1f",
                            title=f"anchor ablation on {cfg.data.dataset}")
viz.save_figure(fig, f"{figures_dir}/02_anchor_ablation");

# %% [markdown]
# ## Pool diagnostics
# P+ precision (share of positives from the anchor's class) and P− purity (share of
# negatives from another class), per anchor choice and pool family.

# %%
fig = viz.plot_grouped_bars(diagnostics_table(rows), ylabel="fraction",
                            title="pool diagnostics (labels used for display only)")
viz.save_figure(fig, f"{figures_dir}/02_pool_diagnostics");

# %% [markdown]
# ## Oxford5k (paper parameters only)
# Retrieval mining: stationary anchors, k− = 10 000, contrastive loss (SPEC §5, §6, §8).
# Runs only when `oxford_root` is given with the paper parameters.

# %%
oxford = []
if oxford_root and cfg.name == "paper":
    ox_cfg = apply_overrides(cfg, ["data.dataset=roxford5k", f"data.root={oxford_root}",
                                   "data.per_class=null", "mining.k_neg=10000",
                                   "train.loss=contrastive", "train.margin=0.7",
                                   "train.n_negatives=5"])
    oxford = ablation(ox_cfg, runs_dir, progress=progress)
    print(format_table(ablation_table(oxford), columns=("n_anchors", "initial", "euclidean", "mom"),
                       label="anchors"))
else:
    print("Oxford5k ablation skipped (needs params='paper' and oxford_root)")

# %%
save_results(results_dir, "anchor_ablation", {"rows": rows, "table": table, "oxford": oxford}, cfg);
