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
# # 00 · Mining on Manifolds, step by step
#
# The whole method, by default on the bundled Omniglot characters (`params/omniglot.yaml`:
# training split = the first 68 characters, test split = the other 68, 20 drawings each;
# `params = "default"` runs it on the bundled Fashion-MNIST subset instead):
#
# 1. embed the unlabeled training images with a pretrained network;
# 2. build the mutual k-nearest-neighbour graph;
# 3. diffuse from one anchor to get its *manifold similarity*;
# 4. find the modes of the random walk's stationary distribution (anchor selection);
# 5. mine hard positives **P+** (manifold but not Euclidean neighbours) and hard
#    negatives **P−** (Euclidean but not manifold neighbours), and compare them with
#    Euclidean neighbours;
# 6. fine-tune briefly on the mined tuples and compare the metrics before and after.
#
# No label is used to mine or train. Labels appear only to colour the pictures and to
# evaluate. All logic lives in `mom`; this notebook only calls it.

# %% tags=["parameters"]
params = "omniglot"  # omniglot | default (Fashion-MNIST) | smoke | paper | a YAML path
overrides = []  # parameter overrides, as for `mom run --set`
figures_dir = ""  # empty: figures/<params> of the repository, whatever the working directory
results_dir = ""  # empty: results/<params> of the repository
runs_dir = ""  # empty: runs/<params> of the repository (cached pipeline runs)
progress = False
anchor = 0  # index of the training image used as the example anchor
train_epochs = 1  # the short training run of section 6 (epochs of train.tuples_per_epoch tuples)

# %%
import numpy as np

from mom.anchors import modes, stationary
from mom.companion import viz
from mom.companion.claims import compare, difference_line
from mom.companion.paper import format_table
from mom.companion.reproduce import notebook_dirs, save_results
from mom.companion.runinfo import start
from mom.config import apply_overrides, load_params
from mom.datasets.splits import build_splits
from mom.depths import resolve_depths
from mom.diffusion import cg_block, laplacian
from mom.graph import affinity, largest_component, normalize
from mom.knn import knn
from mom.mining import mine, pool_diagnostics
from mom.pipeline import embed_split, evaluate_model, head_features
from mom.train import build_model, train

run = start(params)  # the clock and the machine, read now; the last cell prints the time taken
print(run.header())
cfg = apply_overrides(load_params(params), overrides)
figures_dir, results_dir, runs_dir = notebook_dirs(params, figures_dir, results_dir, runs_dir)
mc = cfg.mining
print(cfg.name, cfg.data, cfg.embed, mc, sep="\n")

# %% [markdown]
# ## 0 · The idea on a toy manifold (the paper's Figures 1 and 2)
# Two interleaved moons in the plane, 400 points, run through the library's own graph,
# diffusion and pool formulas (`mom.toy`; the points are lifted onto a sphere so that
# inner products rank as plane distances). The anchor ★ sits at the tip of the upper
# moon, inside the lower moon's arc. (a) Its Euclidean neighbours $NN^e$ form a ball
# that crosses to the other moon (squares). (b) The diffusion $f(r)$ spreads along
# the upper moon only, so its manifold neighbours $NN^m$ follow the curve. (c) What
# MoM mines from the difference: $P^+$ (green) are manifold neighbours too far for
# the Euclidean ball — hard positives — and $P^-$ (red) are Euclidean neighbours the
# manifold does not reach — hard negatives. Marker shape = moon, for the reader only.

# %%
from mom.toy import toy_example

toy = toy_example()
print(f"anchor {toy.anchor}: |P+| {len(toy.positives)}, |P-| {len(toy.negatives)}; "
      f"other moon among NN^e: {np.mean(toy.labels[toy.nn_euclidean] != toy.labels[toy.anchor]):.0%}, "
      f"among P+: {np.mean(toy.labels[toy.positives] != toy.labels[toy.anchor]):.0%}, "
      f"among P-: {np.mean(toy.labels[toy.negatives] != toy.labels[toy.anchor]):.0%}")
fig = viz.plot_toy_manifold(toy)
viz.save_figure(fig, f"{figures_dir}/00_toy_manifold");

# %% [markdown]
# ## 1 · Embeddings
# Each training image becomes an L2-normalised descriptor (docs/method.md §2). The 2-D pictures
# below are a PCA projection of these descriptors; colours there are labels, shown
# for the reader only.

# %%
train_ds, test_ds = build_splits(cfg)  # the same images as `mom run`
# mining descriptors (N, D), and the raw pooled ones (N, C) before any whitening
features, raw = embed_split(cfg, train_ds, cache_dir=f"{runs_dir}/cache", progress=progress)
labels = np.asarray(train_ds.labels)  # display and diagnostics only
coords = viz.project_2d(features)  # (N, 2)
print(f"{len(train_ds)} training images -> features {features.shape}; {len(test_ds)} test images")

# %% [markdown]
# ## 2 · The mutual kNN graph
# k nearest neighbours by inner product (the point itself included), edge weight
# max(0, y_i·y_j)^γ kept only when the pair is mutual (docs/method.md §3); S = D^-½ A D^-½.

# %%
sims, ids = knn(features, mc.k_graph)  # (N, k) each
A = affinity(sims, ids, mc.gamma)
S = normalize(A)
degree = np.asarray((A > 0).sum(axis=1)).ravel()
print(f"k = {mc.k_graph}, gamma = {mc.gamma}: {A.nnz // 2} mutual edges, "
      f"mean degree {degree.mean():.1f} of {mc.k_graph - 1} possible, "
      f"{np.sum(degree == 0)} isolated nodes, largest component {len(largest_component(A))} of {len(degree)}")

# %% [markdown]
# The pool depths k+ and k− are numbers in the parameter file, or `auto`: read off this
# graph, from the size c of the Louvain community a typical image sits in (k+ = c/3,
# k− = 4c; docs/method.md §6a). No label is involved.

# %%
depths = resolve_depths(mc, A)
print(f"k+ {depths.k_pos}, k- {depths.k_neg} ({depths.rule}"
      + (f": {depths.statistic} {depths.value:.1f}, {depths.communities} communities)"
         if depths.rule == "auto" else ")"))

# %% [markdown]
# ## 3 · Diffusion from one anchor
# f(r) solves (I − αS) f = e_r by conjugate gradient, truncated at a few iterations
# (docs/method.md §4). (a) and (b): the anchor's top k+ points by Euclidean similarity
# and by manifold similarity, ringed, every point coloured by its class (labels for the
# reader only). The manifold neighbours follow the data's shape rather than a ball
# around the anchor, so more of them share the anchor's class. (c) plots each point's
# two similarities against each other: points above the horizontal dashed line but
# left of the vertical one are manifold neighbours that are not Euclidean neighbours,
# the hard positives P+.

# %%
e_r = np.zeros(len(features))
e_r[anchor] = 1.0
f = cg_block(laplacian(S, mc.alpha), e_r, mc.cg_iterations, mc.cg_tol)  # (N,)
fig = viz.plot_diffusion(coords, features @ features[anchor], f, anchor, top=depths.k_pos,
                         labels=labels, class_names=getattr(train_ds, "class_names", None))
viz.save_figure(fig, f"{figures_dir}/00_diffusion");

# %% [markdown]
# ## 4 · Stationary distribution and its modes
# A random walk P = D^-1 A on the largest component, run by power iteration (the vector
# it returns is L2-normalised; the figure divides it by its sum, so it reads as
# probabilities). A node is a mode when its probability beats every neighbour's; with
# `mining.anchors: stationary` (the paper's retrieval setting) the top modes are the
# anchors, while this parameter file mines from every image (`anchors: all`;
# docs/method.md §5). The modes spread over the dense regions of the collection.

# %%
pi = stationary(A, mc.power_iterations)  # (N,)
graph_modes = modes(A, pi)
print(f"{len(graph_modes)} modes; the top {min(mc.n_anchors, len(graph_modes))} would be anchors")
fig = viz.plot_stationary(pi, graph_modes, coords, n_anchors=mc.n_anchors)
viz.save_figure(fig, f"{figures_dir}/00_stationary");

# %% [markdown]
# ## 5 · P+ and P− against Euclidean neighbours
# P+(r) = NN^m_{k+}(r) \ NN^e_{k+}(r): close on the manifold, not among the Euclidean
# neighbours. P−(r) = NN^e_{k−}(r) \ NN^m_{k−}(r): Euclidean neighbours that the manifold
# does not reach (docs/method.md §6). The Euclidean baseline takes NN^e_{k+} as positives and
# points beyond NN^e_{k−} as negatives. Marker edges: green = the anchor's class.

# %%
pools = mine(features, mc, progress=progress)
kept = np.flatnonzero(pools.anchors == anchor)
position = int(kept[0]) if len(kept) else 0  # the anchor is skipped when a pool is empty
shown = int(pools.anchors[position])
print(f"{len(pools)} anchors kept, {pools.n_skipped} skipped (empty P+ or P-); showing anchor {shown}")
fig = viz.plot_pools_2d(coords, shown, {
    "positives": {"$P^+$ (MoM)": pools.positives[position],
                  "$NN^e_{k^+}$ (Euclidean)": pools.baseline.positives[position]},
    "negatives": {"$P^-$ (MoM)": pools.negatives[position],
                  "beyond $NN^e_{k^-}$ (Euclidean)": pools.baseline.negatives[position]},
}, labels)
viz.save_figure(fig, f"{figures_dir}/00_pools");

# %% [markdown]
# Over all anchors: the fraction of P+ that shares the anchor's class (precision) and
# the fraction of P− that does not (purity), for MoM, the Euclidean baseline, and the
# Euclidean neighbours at the same depth as P+ (ranks k+ + 1 onwards).

# %%
diag = pool_diagnostics(pools, features, labels)
fig = viz.plot_pool_diagnostics(diag)
viz.save_figure(fig, f"{figures_dir}/00_pool_diagnostics")
viz.pool_diagnostics_groups(diag)

# %% [markdown]
# ## 6 · One short training run, and the metrics before and after
# The training architecture (backbone + a 64-d head initialised by PCA of the training
# descriptors) is evaluated on the unseen test classes, fine-tuned on (anchor, P+, P−)
# tuples with the weighted triplet loss (docs/method.md §8), and evaluated again.

# %%
short = apply_overrides(cfg, {"train.epochs": train_epochs})  # the short run's config
tcfg = short.row_train("mom", epochs=train_epochs)  # MoM's own setting, this length
model = build_model(cfg.embed, tcfg, init_features=head_features(cfg, train_ds, raw))
before, _ = evaluate_model(model, test_ds, cfg, progress=progress)
result = train(model, train_ds, pools, tcfg, cfg.embed, progress=progress)
after, _ = evaluate_model(result.model, test_ds, cfg, progress=progress)
tuples = sum(h["tuples"] for h in result.history)  # what "epoch" means here
trained = (f"{train_epochs} epoch(s) of MoM, {tuples} tuples "
           f"(an epoch: {viz.epoch_size(tcfg.tuples_per_epoch)})")
rows = [{"method": "before (initial)", **before}, {"method": f"after {trained}", **after}]
print(format_table(rows))

# %% [markdown]
# The change, after − before, per metric: one short training run with one seed, so a
# difference of a few tenths is within its training noise (notebook 01's seeds
# measure that noise).

# %%
metrics = ["recall@1", "recall@2", "recall@4", "recall@8", "nmi"]
fig = viz.plot_before_after(before, after, metrics, label=f"after − before, {trained}",
                            title=f"test split ({len(test_ds)} images of unseen classes)")
viz.save_figure(fig, f"{figures_dir}/00_before_after")
save_results(results_dir, "00_walkthrough", {
    "before": before, "after": after, "history": result.history, "anchor": shown,
    "pool_diagnostics": viz.pool_diagnostics_groups(diag), "n_anchors": len(pools),
    "n_skipped": pools.n_skipped}, short);

# %% [markdown]
# ## What this run shows
# Each line is computed from the numbers above: the pools against the Euclidean
# neighbours at the same depth (training labels, every anchor), and the short
# training's change (one run: no verdict without seeds).

# %%
print(run.footer())
print(f"P+ precision {diag['pos_precision']:.3f} against {diag['pos_precision_euclid']:.3f} for "
      f"the Euclidean neighbours at P+'s depth: P+ is cleaner: "
      f"{compare(diag['pos_precision'], diag['pos_precision_euclid'])}")
print(f"P- purity {diag['neg_purity']:.3f}: mostly other classes: {compare(diag['neg_purity'], 0.5)}")
for m in ("recall@1", "nmi"):
    print(difference_line(f"{trained}, {m} after - before", {"mean": after[m] - before[m]}))
