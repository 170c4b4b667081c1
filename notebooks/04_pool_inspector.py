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
# # 04 · Pool inspector
#
# Browse the mined pools interactively: pick an anchor with the slider, order anchors
# by the precision of their P+ (worst or best first), toggle the Euclidean baseline
# pools, and switch between the cached runs found in `runs_dir` (other datasets or
# parameter files). Each thumbnail shows its index, for P+ its weight `w` (the manifold
# similarity) and for both pools its Euclidean rank `e#` from the anchor. Frames:
# green = the anchor's class, red = another (labels for display only).
#
# The widgets need a live kernel; below them, a static picture of the worst anchor is
# drawn so that the executed notebook shows something too.

# %% tags=["parameters"]
params = "omniglot"  # omniglot | default (Fashion-MNIST) | smoke | paper | a YAML path
overrides = []  # parameter overrides, as for `mom run --set`
figures_dir = ""  # empty: figures/<params> of the repository, whatever the working directory
results_dir = ""  # empty: results/<params> of the repository
runs_dir = ""  # empty: runs/<params> of the repository (cached pipeline runs)
progress = False
more_runs_dirs = []  # other folders of cached runs to switch to, e.g. another params' runs

# %%
from mom.companion import viz
from mom.companion.claims import compare
from mom.companion.reproduce import notebook_dirs, save_results
from mom.companion.runinfo import start
from mom.companion.runs import cached_run, finished_runs
from mom.companion.widgets import PoolInspector
from mom.config import apply_overrides, load_params

run_info = start(params)  # the clock and the machine, read now; the last cell prints the time taken
print(run_info.header())
cfg = apply_overrides(load_params(params), overrides)
figures_dir, results_dir, runs_dir = notebook_dirs(params, figures_dir, results_dir, runs_dir)
results, current = cached_run(cfg, runs_dir, progress=progress)
others = [d for folder in [runs_dir, *more_runs_dirs] for d in finished_runs(folder) if d != current]
inspector = PoolInspector.from_runs([current, *others])
print(f"sources: {inspector.sources}")
inspector

# %% [markdown]
# The same controls as calls, e.g. for a script: the worst anchor by P+ precision,
# then its Euclidean baseline.

# %%
inspector.set_order("worst first")
print("MoM pools:", inspector.summary())
inspector.toggle_baseline()
print("Euclidean:", inspector.summary())
print("back to", inspector.toggle_baseline(False)["pools"], "pools")

# %%
src_ds, src_pools, src_feats, src_labels = inspector.source_data()
fig = viz.gallery_figure(src_ds, src_pools, src_feats, [inspector.state["position"]], n=8, labels=src_labels)
viz.save_figure(fig, f"{figures_dir}/04_worst_anchor");

# %% [markdown]
# ## What this run shows
# The worst anchor by P+ precision, against the pools' average over every anchor
# (training labels, for display only).

# %%
print(run_info.footer())
stats, worst = results["pools"], inspector.summary()
print(f"over every anchor: P+ precision {stats['pos_precision']:.3f} against "
      f"{stats['pos_precision_euclid']:.3f} for the Euclidean neighbours at P+'s depth: "
      f"{compare(stats['pos_precision'], stats['pos_precision_euclid'])}")
print(f"the worst anchor, #{worst['anchor']}: P+ precision {worst['precision']:.2f}, "
      f"P- purity {worst['purity']:.2f}")
save_results(results_dir, "pool_inspector", {"worst_anchor": worst, "pools": stats,
                                             "sources": inspector.sources}, cfg);
