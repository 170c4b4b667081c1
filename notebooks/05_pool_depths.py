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
# # 05 · Pool depths from the data, and a guard that does no harm
#
# The paper fixes the pool depths for CUB's ~59 images a class (k+ 50, k− 100). A
# user's collection has class sizes nobody knows, and the method has no labels to find
# them. This notebook checks the offline default's label-free recipe on collections
# whose class size and class count it was not tuned on:
#
# - **`mining.k_pos: auto`, `k_neg: auto`**: the depths come from the mutual kNN graph.
#   Louvain splits it into communities; c, the size of the community a typical image
#   sits in, stands for "a class" (k+ = c / 3, k− = 4 c, capped at N/2;
#   `docs/method.md` §6a).
# - **`mining.adapt_k_graph: true`**: the graph's own k comes from the same statistic in
#   two passes: c0 is the typical community size at the configured k_graph (30, the cap),
#   and the graph is rebuilt at k = min(30, round(c0 / 2)) before the depths are read
#   (`docs/method.md` §6b). A kNN graph whose k exceeds a class must link across classes.
# - **`train.guard: holdout`**: 10% of the anchors never train; their own tuple loss,
#   measured after each (quarter-)epoch, picks the epoch that is returned, the untrained
#   network included (`docs/method.md` §10a).
#
# Part 1 mines every cell of a grid (images a class × training classes) with the auto
# rule and with two fixed pairs of depths: k+ 100 / k− 1250 (depths set by hand for the
# offline default's 500 images a class) and the paper's 50 / 100 (set for CUB).
# Training labels are used **only** for the diagnostics printed (P+ precision, P−
# purity), never to choose. Part 2 trains: a label-free study (seeds, 95% intervals,
# paired differences; notebook 01) per cell, for this recipe and for the fixed-depth
# recipe "fixed 100/1250, no guard" (k+ 100, k− 1250 on the graph at k_graph, one epoch
# of N tuples, no guard).

# %% tags=["parameters"]
params = "default"  # default | smoke | a YAML path (a Fashion-MNIST one)
overrides = []  # parameter overrides, as for `mom run --set`
plan = ""  # entry of params/studies/pool_depths.yaml: the grid and trained cells (empty: params')
seeds = 0  # training seeds per study (0: the plan's)
figures_dir = ""  # empty: figures/<params> of the repository, whatever the working directory
results_dir = ""  # empty: results/<params> of the repository
runs_dir = ""  # empty: runs/<params> of the repository (studies and their caches)
progress = False

# %%
from mom.companion import viz
from mom.companion.claims import difference_line
from mom.companion.depth_grid import (FIXED_DEPTHS, FIXED_RECIPE, FIXED_RECIPE_NAME, adapted_cells,
                                      class_size_studies, class_size_table, depth_grid, load_plan,
                                      recipe_contrast_table, recipe_contrasts,
                                      plot_class_size_studies, plot_depth_grid, save_depth_grid)
from mom.companion.reproduce import notebook_dirs, save_results
from mom.companion.runinfo import start
from mom.config import apply_overrides, load_params

run = start(params)  # the clock and the machine, read now; the last cell prints the time taken
print(run.header())
cfg = apply_overrides(load_params(params), overrides)
figures_dir, results_dir, runs_dir = notebook_dirs(params, figures_dir, results_dir, runs_dir)
plan = load_plan(plan or params)  # images a class x training classes, the trained cells, seeds
per_class, n_classes, study_cells = plan["per_class"], plan["classes"], plan["study_cells"]
seeds = seeds or plan["seeds"]
print(f"grid: {per_class} images a class x {n_classes} training classes; trained: {study_cells}, "
      f"{seeds} seeds")
print(f"params {cfg.name!r}: k+ {cfg.mining.k_pos}, k- {cfg.mining.k_neg}, k_graph "
      f"{cfg.mining.k_graph}, guard {cfg.train.guard}")

# %% [markdown]
# ## 1 · What the rule picks, cell by cell (mining only)

# %%
rows = depth_grid(cfg, per_class=per_class, n_classes=n_classes,
                  cache_dir=f"{runs_dir}/depth_grid_cache", progress=progress)
save_depth_grid(rows, f"{results_dir}/pool_depths_grid.csv")
cols = ("per_class", "classes", "n", "rule", "k_graph", "k_graph_value", "k_pos", "k_neg", "value",
        "pos_precision", "pos_precision_euclid", "neg_purity", "note")
print(" | ".join(cols))
for r in rows:
    print(" | ".join(str(r.get(c, "")) for c in cols))

# %% [markdown]
# How to read it: `value` is the typical community size c the rule read off the graph;
# the true class size (`per_class`) is what it should track, without ever seeing it.
# `pos_precision` is the share of P+ from the anchor's class, `pos_precision_euclid` the
# same for the Euclidean neighbours just beyond depth k+ (the positives a Euclidean
# miner would add instead), `neg_purity` the share of P− from another class. Fixed
# depths deeper than a class (k+ 100 at 20 images a class) pull P+ from other classes;
# a row marked "cannot mine" has k+ ≥ N. Rule "auto" mines on the graph at the
# configured k_graph; "auto+k_graph" lets the graph's k adapt (`k_graph` is then the k
# it chose, `k_graph_value` the first pass's c0). Rows "auto" with `k_graph` 10 repeat the
# smallest classes with a graph whose k was fixed below the class size by hand.

# %%
fig = plot_depth_grid(rows, base_k_graph=cfg.mining.k_graph)
viz.save_figure(fig, f"{figures_dir}/05_pool_depths");

# %% [markdown]
# ## 2 · Training: does the recipe do harm where it was not tuned?
#
# Each cell is a label-free study (`--select none`): the parameter file's setting, one
# training per seed for MoM and for the Euclidean baseline, scored once on the test
# classes; differences are paired per seed with a 95% t interval. "params" is this
# notebook's parameter file (auto depths + guard, and the adapted graph when it sets
# `adapt_k_graph`); "fixed 100/1250, no guard" is fixed depths k+ 100, k− 1250 on the
# graph at k_graph, one epoch of N tuples, no guard. Where the parameter file adapts the graph, the cells
# whose graph it actually changed (read from the grid above, no labels) are also trained
# with the graph fixed at the configured k_graph ("fixed k_graph"): the same recipe, one
# switch apart.

# %%
# the trainings are shared with notebook 01's studies (the same work folder): the cell of
# the parameter file's own collection is its label-free study
summaries = class_size_studies(cfg, [tuple(c) for c in study_cells], f"{runs_dir}/class_size",
                               recipes={"params": {}, FIXED_RECIPE_NAME: FIXED_RECIPE},
                               seeds=seeds, work_dir=f"{runs_dir}/study-work", progress=progress)
if cfg.mining.adapt_k_graph:
    adapted = adapted_cells(rows, [tuple(c) for c in study_cells], cfg.mining.k_graph)
    print(f"cells whose graph adapt_k_graph changed: {adapted}")
    summaries += class_size_studies(cfg, adapted, f"{runs_dir}/class_size",
                                    recipes={"fixed k_graph": {"mining.adapt_k_graph": False}},
                                    seeds=seeds, work_dir=f"{runs_dir}/study-work",
                                    progress=progress)
print(class_size_table(summaries, metrics=("recall@1", "nmi", "map@r")))
# the adapted graph against the fixed one, the MoM row paired per seed (same seeds, test
# images and initial network: only the graph's k differs)
contrasts = recipe_contrasts(summaries, "params", "fixed k_graph")
if contrasts:
    print(recipe_contrast_table(contrasts))
save_results(results_dir, "pool_depths", {"grid": rows, "fixed_depths": FIXED_DEPTHS,
                                         "fixed_recipe": FIXED_RECIPE, "studies": summaries,
                                         "contrasts": contrasts}, cfg)

# %% [markdown]
# How to read it: a difference whose interval straddles 0 is no evidence either way;
# "do no harm" asks that MoM − initial is not below 0 with confidence. "guard kept"
# lists, per seed, the (quarter-)epoch the guard returned: 0 means it fell back to the
# initial network.

# %%
fig = plot_class_size_studies(summaries, "recall@1")
viz.save_figure(fig, f"{figures_dir}/05_class_size_recall1");
fig = plot_class_size_studies(summaries, "nmi")
viz.save_figure(fig, f"{figures_dir}/05_class_size_nmi");

# %% [markdown]
# ## What this run shows
# Per trained cell and recipe, MoM − initial with its 95% interval over the seeds: a
# gain is shown when the interval lies above 0, and harm when it lies below 0.

# %%
print(run.footer())
harm = []
for s in summaries:
    if s["note"]:
        print(f"{s['per_class']} a class x {s['classes']}, {s['recipe']}: {s['note']}")
        continue
    for metric in ("recall@1", "nmi", "map@r"):
        d = s["paired"]["mom-initial"][metric]
        print(difference_line(f"{s['per_class']} a class x {s['classes']}, {s['recipe']}: "
                              f"MoM - initial {metric}", d))
        if d["ci95"][1] < 0:
            harm.append(f"{s['per_class']} a class x {s['classes']} ({s['recipe']}, {metric})")
print("harm (an interval below 0):", ", ".join(harm) if harm else "none")
