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
# # 01 · Table 1: Recall@K and NMI
#
# Three rows measured on the test split (classes never seen in training), all from the
# same descriptors, anchors and seed (`mom.pipeline.run`):
#
# - **initial**: the training architecture before any update (backbone + PCA head);
# - **euclidean**: fine-tuned on Euclidean pools (NN^e positives, far negatives);
# - **mom**: fine-tuned on P+ / P− mined on the manifold.
#
# Beside them, the numbers the paper reports on CUB-200-2011 (GoogLeNet, 64-d; SPEC §10).
# They are only comparable under the `paper` parameters (CUB); on the offline default
# the absolute values differ, and what carries over is the ordering of the rows.

# %% tags=["parameters"]
params = "smoke"  # smoke | default | paper | path to a YAML parameter file
overrides = []  # parameter overrides, as for `mom run --set`
figures_dir = "../figures/smoke"
results_dir = "../results/smoke"
runs_dir = "../runs/smoke"
progress = False
results_json = ""  # results.json of an earlier `mom run`; empty: run or reuse the pipeline

# %%
from mom import viz
from mom.config import apply_overrides, load_params
from mom.io import load_json
from mom.paper import LATER_LABEL_FREE_R1, TABLE1, TABLE1_COLUMNS, format_table, table1_rows
from mom.reproduce import save_results
from mom.runs import cached_run

cfg = apply_overrides(load_params(params), overrides)
if results_json:
    results, source = load_json(results_json), results_json
else:
    results, source = cached_run(cfg, runs_dir, progress=progress)
print(f"results of {source} (params {results['config']['name']!r}, "
      f"dataset {results['config']['data']['dataset']!r}, "
      f"{results['data']['train']} train / {results['data']['test']} test images)")

# %% [markdown]
# ## The table
# NMI is the mean over the seeded k-means runs listed in the config (`eval.nmi_seeds`);
# its spread is printed below the table.

# %%
ours = {row: results[row] for row in ("initial", "euclidean", "mom")}
rows = table1_rows(ours)
print(format_table(rows))
for row, m in ours.items():
    print(f"{row:>9}: NMI {m['nmi']:.1f} ± {m['nmi_std']:.1f} over {len(m['nmi_runs'])} k-means run(s)")
print("\nLater label-free methods, CUB Recall@1:",
      ", ".join(f"{k} {v}" for k, v in LATER_LABEL_FREE_R1.items()))

# %%
fig = viz.plot_recalls(ours, cfg.eval.ks, reference=TABLE1)
viz.save_figure(fig, f"{figures_dir}/01_recall_at_k");

# %%
fig = viz.plot_metric_bars(rows, TABLE1_COLUMNS, title="Table 1: ours (solid) and the paper (hatched)")
viz.save_figure(fig, f"{figures_dir}/01_table1");

# %% [markdown]
# ## Training curves
# The triplet loss per epoch for the two trained rows (mined pools only; no labels).

# %%
fig = viz.plot_history(results["history"])
viz.save_figure(fig, f"{figures_dir}/01_loss");

# %%
save_results(results_dir, "table1", {"rows": rows, "source": str(source), "pools": results["pools"],
                                     "run_config": results["config"]}, cfg);
