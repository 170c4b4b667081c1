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
# # 01 · Table 1: Recall@K and NMI, with seeds and confidence intervals
#
# By default on the bundled Omniglot characters (`params/omniglot.yaml`: the paper's CUB
# protocol at 224 px, all layers trained; train = 68 characters, test = the other 68,
# never seen in training). Three rows, each scored on the test split:
#
# - **initial**: the training architecture before any update (backbone + PCA head);
# - **euclidean**: fine-tuned on Euclidean pools (positives $NN^e$, negatives far away);
# - **mom**: fine-tuned on $P^+$ / $P^-$ mined on the manifold.
#
# One run of each row is an anecdote, so the rows come from `mom.study`: every trained
# row is repeated over several training seeds, and each number is a mean with its 95%
# Student-t interval. Two protocols:
#
# - **validation**: each trained row picks its own learning rate and number of epochs
#   from the same grid (`params/studies/<params>.yaml`), scored on validation classes
#   held out of the *training* classes; the test split chooses nothing. This is the fair
#   comparison (equal tuning budget, "A Metric Learning Reality Check").
# - **none**: the parameter file's settings, no labels used for anything but scoring:
#   the number a user without any labels would get.
#
# Both parameter files train with a label-free guard (`train.guard: holdout`, 10% of the
# anchors held out; docs/method.md §10a) that may hand back an earlier epoch, or the
# untrained network. The **trained networks** (each training's last epoch) are the rows
# Table 1 compares; the guarded ones are reported beside them, never instead.
#
# The paper's Table 1 (CUB-200-2011, GoogLeNet, 64-d; `docs/method.md` §12 and
# `mom.companion.paper`) is printed beside ours. Only the `paper` parameters on CUB are
# comparable to it; on Omniglot or Fashion-MNIST the absolute values differ, and what can
# carry over is the *ordering* of the rows and the sign of the paired differences.

# %% tags=["parameters"]
params = "omniglot"  # omniglot | default (Fashion-MNIST) | smoke | paper | a YAML path
overrides = []  # parameter overrides, as for `mom run --set`
figures_dir = ""  # empty: figures/<params> of the repository, whatever the working directory
results_dir = ""  # empty: results/<params> of the repository
runs_dir = ""  # empty: runs/<params> of the repository (cached pipeline runs)
progress = False

# %%
from mom.companion import viz
from mom.companion.claims import DATASET_NAMES, difference_line
from mom.companion.paper import (LATER_LABEL_FREE_R1, TABLE1, TABLE1_COLUMNS, format_table,
                                 table1_rows)
from mom.companion.reproduce import notebook_dirs, save_results
from mom.companion.runinfo import start
from mom.config import apply_overrides, load_params
from mom.studies import load_study, save_study, study, summary_table

run = start(params)  # the clock and the machine, read now; the last cell prints the time taken
print(run.header())
cfg = apply_overrides(load_params(params), overrides)
figures_dir, results_dir, runs_dir = notebook_dirs(params, figures_dir, results_dir, runs_dir)
studies = {}
for select in ("validation", "none"):
    scfg = load_study(params, select=select)
    studies[select] = study(cfg, f"{runs_dir}/study-{select}", scfg,
                            work_dir=f"{runs_dir}/study-work", progress=progress)
    save_study(f"{runs_dir}/study-{select}", results_dir,
               "study" if select == "validation" else "study_none")
fair = studies["validation"]
# the trained networks (each training's last epoch) where the study has a guard; else the rows
trained = {**fair, **fair["unguarded"]} if fair.get("unguarded") else fair
print(f"params {cfg.name!r}, dataset {cfg.data.dataset!r}: "
      f"{fair['rows']['mom']['recall@1']['n']} seeds per row")
print("selected on the validation classes", fair["protocol"]["validation_classes"], ":",
      fair["selected"])

# %% [markdown]
# ## The rows, each at its own selected setting
# Mean [95% CI] over the training seeds, percent. The last rows are the **paired**
# differences: for each seed, mom minus the other row (same seed, same tuple stream),
# then the mean of those differences with its interval and the sign-flip test's `p`
# (with 5 seeds the smallest possible `p` is 0.0625, so read the interval first).
# An interval that lies above zero is a gain the seeds agree on; one that straddles
# zero is no evidence either way. The `initial` row has no training, so its interval
# has zero width.

# %%
if fair.get("unguarded"):
    print("The trained networks (each training's last epoch):")
    print(summary_table(trained, metrics=TABLE1_COLUMNS))
    print("\nWith the guard (the epoch its held-out loss keeps; 0 = the untrained network):",
          fair["guard"]["kept_epoch"])
print(summary_table(fair, metrics=TABLE1_COLUMNS))
print("\nThe paper (CUB-200-2011, GoogLeNet):")
for name, row in TABLE1.items():
    print(f"  {name:<22}" + "  ".join(f"{k} {v:.1f}" for k, v in row.items()))
print("Later label-free methods, CUB Recall@1:",
      ", ".join(f"{k} {v}" for k, v in LATER_LABEL_FREE_R1.items()))

# %% [markdown]
# The same means as one table beside the paper's rows (ours: this dataset; the paper's:
# CUB-200-2011). The figure draws what Table 1 claims, differences between rows, each
# data set on its own axis: (a) ours, MoM and the Euclidean row minus the initial
# network, paired per seed with the 95% interval; (b) the paper, MoM minus the other
# label-free row (cyclic match), one number each.

# %%
means = {row: {k: v["mean"] for k, v in m.items()} for row, m in trained["rows"].items()}
rows = table1_rows(means)
print(format_table(rows))
save_results(results_dir, "table1", {"rows": rows, "source": "study.json (validation)",
                                     "pools": fair["pools"], "selected": fair["selected"]}, cfg)
fig = viz.plot_table1(trained, dataset=DATASET_NAMES.get(cfg.data.dataset, cfg.data.dataset))
viz.save_figure(fig, f"{figures_dir}/01_table1");

# %%
fig = viz.plot_study_rows(trained)
viz.save_figure(fig, f"{figures_dir}/01_study_rows");

# %%
fig = viz.plot_study_paired(trained)
viz.save_figure(fig, f"{figures_dir}/01_study_paired");

# %% [markdown]
# ## Metric against epoch
# Top: every grid setting on the validation classes (one seed), the curves the
# selection read. Bottom: the selected settings on the test split, scored after each
# epoch for this plot only (nothing is chosen from it); the dashed line is the initial
# embedding. An epoch is `train.tuples_per_epoch` tuples (the axis says how many). A
# trained row whose guard returned the untrained network on every seed is drawn as
# trained, and named so: what the guard rejected; its score in the tables is the
# initial one.

# %%
fig = viz.plot_study_curves(fair)
viz.save_figure(fig, f"{figures_dir}/01_study_curves");

# %% [markdown]
# ## Without any labels
# The parameter file's settings for both trained rows (without its `rows` section, which
# a validation study chose): no selection at all, the guard choosing the epoch.

# %%
print(summary_table(studies["none"], metrics=TABLE1_COLUMNS))
fig = viz.plot_study_paired(studies["none"])
viz.save_figure(fig, f"{figures_dir}/01_study_none_paired");

# %% [markdown]
# ## What this run shows
# The verdicts, computed from the paired differences above: a gain is shown when its
# 95% interval over the seeds lies above 0.

# %%
print(run.footer())
views = {"validation, trained networks": trained, "validation, guarded": fair,
         "none (label-free), guarded": studies["none"]}
for name, res in views.items():
    for pair in ("mom-initial", "mom-euclidean"):
        for metric in ("recall@1", "nmi", "map@r"):
            print(difference_line(f"{name}: {pair} {metric}", res["paired"][pair][metric]))
