"""A fair multi-seed comparison of MoM against its baselines (``mom study``).

The study answers "does mining on the manifold beat the initial embedding and
Euclidean pools?" the way Musgrave et al. ("A Metric Learning Reality Check",
ECCV 2020) ask: the same tuning budget for every trained row, selection on
validation classes and never on the test split, several seeds, confidence
intervals and paired differences (:mod:`mom.stats`).

Rows: ``initial`` (the training architecture before any update; no training),
``euclidean`` (trained on Euclidean pools) and ``mom`` (trained on P+ / P-).

Protocol (``StudyConfig.select``):

- ``"validation"``: the *training* classes are split by class (seeded) into a
  mining/training part and a validation part (``val_fraction`` of the classes,
  at least 2 on each side). Every grid setting of every trained row is mined
  and trained on the first part and scored on the validation classes after
  each epoch (``select_seeds`` seeds). Each row's best setting by
  ``select_metric`` is then re-run with every seed on the full training
  classes and evaluated once on the test classes. The validation labels choose
  the settings and do nothing else; the test labels only score.
- ``"none"``: the parameter file's own settings, no labels anywhere but the
  test scoring: the label-free number. A ``rows`` section (per-row settings an
  earlier study chose with validation labels) is left out.
- ``"rows"``: each row at the parameter file's own per-row setting (its ``rows``
  section), nothing chosen by this study: the cells of the validation study that
  chose them, or the same settings on other anchors or data (the anchor ablation).

Seeds: seed ``s`` trains with ``train.seed + s`` for both trained rows, so the
euclidean and mom runs of one seed share the sampler stream and augmentation
order where the pools allow; differences are paired per seed. What a seed
varies is the training randomness (tuples, augmentation); the data, the
descriptors and the pools are fixed, so the intervals say how much training
noise there is, not how another sample of classes would do.

Shared work: the training descriptors, the pools and the initial model's
scores are computed once per (data, embedding, mining, evaluation split) and
cached under ``out/cache``; only training and its evaluation repeat. Every
(phase, setting, row, seed) cell is written to ``out/cells`` when it is done,
so an interrupted study resumes where it stopped.

Epochs in the grid are read off one training: scoring after each epoch does
not change the training (:func:`mom.train.train` isolates the RNGs), and the
schedule does not depend on the total number of epochs, so ``epochs=e`` is the
first ``e`` epochs of the longest run.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .config import RowsConfig, RunConfig, apply_overrides, config_from_dict, config_to_dict
from .io import atomic_write, env_info, load_json, save_json

__all__ = ["StudyConfig", "study", "load_study", "load_grid", "STUDIES_DIR", "expand_grid", "class_split", "ROWS",
           "TRAINED_ROWS", "SELECT_METRICS", "summary_table", "save_study", "STUDY_FILE", "RUNS_FILE"]

log = logging.getLogger(__name__)

ROWS = ("initial", "euclidean", "mom")
TRAINED_ROWS = ("euclidean", "mom")
PAIRS = (("mom", "initial"), ("mom", "euclidean"), ("euclidean", "initial"))
SELECT_MODES = ("validation", "none", "rows")
SELECT_METRICS = ("recall@1+nmi", "recall@1", "nmi", "map@r")
STUDY_FILE, RUNS_FILE, CONFIG_FILE = "study.json", "runs.csv", "study_config.json"
# fields that may differ between a study and its resumption (more seeds extend it)
_RESUMABLE = ("seeds",)
# per-epoch metrics that are not summarised (spread of k-means runs, the raw runs)
_NOT_SUMMARISED = ("nmi_std", "nmi_runs", "nmi_seed0")


@dataclass(frozen=True)
class StudyConfig:
    """How a study compares the rows (saved in ``study.json``).

    ``grid``: ``((key, (values...)), ...)`` with keys ``section.field`` as for
    ``--set``; every combination is one setting, applied to both trained rows.
    Empty: one setting, the parameter file's.
    """

    seeds: int = 5
    select: str = "validation"  # validation | none
    grid: tuple[tuple[str, tuple], ...] = ()
    val_fraction: float = 0.2  # of the training classes (at least 2 classes each side)
    val_seed: int = 0  # which classes are held out
    select_metric: str = "recall@1+nmi"  # mean of validation R@1 and NMI
    select_seeds: int = 1  # seeds per grid setting on the validation classes
    # the most SGD steps the validation phase may spend on each trained row (the same
    # budget for both): a grid that cannot be tried whole within it is refused before
    # any training. None: no limit
    budget_steps: int | None = None
    # with train.guard on: True scores a validation setting by the epoch its guard keeps
    # (the guarded network is what is selected); False by its last epoch (the trained
    # network is selected, and the guard is reported on top of that setting)
    select_guarded: bool = True

    def __post_init__(self):
        if not isinstance(self.seeds, int) or isinstance(self.seeds, bool) or self.seeds < 1:
            raise ValueError(f"study seeds must be a positive integer, got {self.seeds!r}")
        if self.select not in SELECT_MODES:
            raise ValueError(f"study select must be one of {SELECT_MODES}, got {self.select!r}")
        if not 0.0 < float(self.val_fraction) < 1.0:
            raise ValueError(f"study val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if self.select_metric not in SELECT_METRICS:
            raise ValueError(f"study select_metric must be one of {SELECT_METRICS}, "
                             f"got {self.select_metric!r}")
        if not isinstance(self.select_seeds, int) or self.select_seeds < 1:
            raise ValueError(f"study select_seeds must be a positive integer, got {self.select_seeds!r}")
        if not isinstance(self.select_guarded, bool):
            raise ValueError(f"study select_guarded must be true or false, got {self.select_guarded!r}")
        if self.budget_steps is not None and (not isinstance(self.budget_steps, int) or isinstance(
                self.budget_steps, bool) or self.budget_steps < 1):
            raise ValueError(f"study budget_steps must be a positive integer or null, got "
                             f"{self.budget_steps!r}")
        object.__setattr__(self, "grid", tuple((str(k), tuple(v)) for k, v in self.grid))
        if self.select != "validation" and self.grid:
            raise ValueError(f"study: a grid needs select='validation' (with {self.select!r} "
                             "nothing is chosen, the parameter file's setting is the only one)")


# ----------------------------------------------------------------------------- grid
STUDIES_DIR = Path(__file__).resolve().parent / "params" / "studies"


def load_study(params: str, *, select: str | None = None, seeds: int | None = None,
               grid=None) -> StudyConfig:
    """The StudyConfig of a parameter file: ``params/studies/<name>.yaml`` when it is
    bundled (its seeds, grid and selection settings), else the defaults; ``select``,
    ``seeds`` and ``grid`` (a YAML path or mapping) override it. ``select="none"``
    drops the grid (nothing is chosen)."""
    import yaml
    path = STUDIES_DIR / f"{Path(str(params)).stem}.yaml"
    values: dict[str, Any] = {}
    if path.is_file():
        values = yaml.safe_load(path.read_text()) or {}
        known = {f.name for f in dataclasses.fields(StudyConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown study field(s) {unknown}; known: {sorted(known)}")
        values["grid"] = load_grid(values.get("grid") or {})
    if grid is not None:
        values["grid"] = load_grid(grid)
    if select is not None:
        values["select"] = select
    if seeds is not None:
        values["seeds"] = seeds
    if values.get("select") in ("none", "rows"):
        if grid:
            raise ValueError(f"a grid needs --select validation (with --select "
                             f"{values['select']} nothing is chosen)")
        values["grid"] = ()
    return StudyConfig(**values)


def load_grid(source: str | Path | Mapping[str, Sequence] | None) -> tuple[tuple[str, tuple], ...]:
    """A grid from a YAML file (``section.field: [values]``) or a mapping."""
    if source is None:
        return ()
    where = "grid"
    if not isinstance(source, Mapping):
        import yaml
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"grid file {str(path)!r} does not exist")
        where = f"grid file {str(path)!r}"
        try:
            source = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{where} is not valid YAML: {exc}") from None
        if not isinstance(source, Mapping):
            raise ValueError(f"{where}: expected a mapping of section.field: [values]")
    grid = []
    for key, values in source.items():
        values = values if isinstance(values, (list, tuple)) else [values]
        if not values:
            raise ValueError(f"{where}: {key!r} has no values")
        if len(set(map(json.dumps, values))) != len(values):
            raise ValueError(f"{where}: {key!r} lists a value twice: {list(values)}")
        grid.append((str(key), tuple(values)))
    return tuple(grid)


def expand_grid(grid) -> list[dict[str, Any]]:
    """Every combination of the grid, in its order (the last key varies fastest)."""
    if not grid:
        return [{}]
    keys = [k for k, _ in grid]
    return [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in grid))]


def _check_value(cfg: RunConfig, key: str, value: Any, where: str) -> None:
    """The grid value must have the field's type (no silent bool -> float)."""
    if "." not in key:
        raise ValueError(f"{where}: {key!r} is not section.field")
    sec, name = key.split(".", 1)
    section = getattr(cfg, sec, None)
    if section is None or not dataclasses.is_dataclass(section) or name not in {
            f.name for f in dataclasses.fields(section)}:
        raise ValueError(f"{where}: unknown field {key!r}")
    default = getattr(section, name)
    if value is None or default is None:
        return
    ok = {bool: isinstance(value, bool),
          int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          str: isinstance(value, str),
          tuple: isinstance(value, (list, tuple))}.get(type(default), True)
    if not ok:
        raise ValueError(f"{where}: {key}={value!r} is a {type(value).__name__}, "
                         f"the field is a {type(default).__name__}")


def _check_grid(cfg: RunConfig, scfg: StudyConfig) -> list[dict[str, Any]]:
    """The grid's settings, each checked by building its config (before any work)."""
    where = "study grid"
    for key, values in scfg.grid:
        if key in ("train.pools", "train.seed"):
            raise ValueError(f"{where}: {key} is set by the study itself (rows and seeds)")
        for v in values:
            _check_value(cfg, key, v, where)
    settings = expand_grid(scfg.grid)
    for s in settings:
        try:
            apply_overrides(cfg, s)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: setting {s}: {exc}") from None
    return settings


def _setting_id(overrides: Mapping[str, Any]) -> str:
    if not overrides:
        return "params"
    blob = json.dumps(overrides, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


# ----------------------------------------------------------------------------- classes
def class_split(labels, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(mining classes, validation classes) of the training labels, split by class.

    ``max(2, round(fraction * C))`` classes, drawn with ``seed``, are held out;
    ValueError when either side would have fewer than 2 classes.
    """
    classes = np.unique(np.asarray(labels))
    if classes.size and classes.min() < 0:
        raise ValueError("study --select validation needs the training classes (labels >= 0); "
                         "this collection is unlabeled: use --select none")
    n_val = max(2, int(round(fraction * classes.size)))
    if classes.size - n_val < 2:
        raise ValueError(f"study --select validation: the training split has {classes.size} "
                         f"class(es); holding out {n_val} for validation leaves "
                         f"{classes.size - n_val} to mine and train on (need at least 2 on each side)")
    rng = np.random.default_rng(seed)
    val = np.sort(rng.choice(classes, size=n_val, replace=False))
    return np.setdiff1d(classes, val), val


def _class_subset(dataset, classes, part: str):
    from .datasets.base import Subset
    idx = np.flatnonzero(np.isin(np.asarray(dataset.labels), classes))
    return Subset(dataset, idx, name=f"{dataset.name}-{part}")


# ----------------------------------------------------------------------------- stages
@dataclass
class _Stage:
    """What every training of one (data, embedding, mining, eval split) shares."""

    head: np.ndarray  # (N, C) descriptors that initialise the PCA head
    pools: Any  # mom.mining.Pools (with the Euclidean baseline)
    initial: dict  # the untrained model's metrics on the evaluation split
    diagnostics: dict = field(default_factory=dict)  # pool diagnostics (training labels)


def _sections(cfg: RunConfig) -> dict:
    """Every config section without the fields that say how, not what, a stage computes
    (device, workers): the same rule as ``mom run``'s stage records."""
    from .pipeline import _section
    return {sec: _section(getattr(cfg, sec)) for sec in ("data", "embed", "mining", "train", "eval")}


def _stage_key(cfg: RunConfig, train_ds, eval_ds) -> str:
    """What the descriptors, pools and initial model of a stage depend on (the train
    fields of the initial model only, as ``mom run``'s ``initial`` stage)."""
    from .pipeline import _MODEL_FIELDS, stage_key
    sections = _sections(cfg)
    sections["train"] = {f: sections["train"][f] for f in _MODEL_FIELDS}
    return stage_key(sections, train_ds.fingerprint(), _fingerprint(eval_ds))


def _fingerprint(ds) -> str:
    """A dataset's fingerprint; a retrieval benchmark's is its database's (and queries')."""
    if hasattr(ds, "gnd"):
        return ds.database.fingerprint() + ds.queries.fingerprint()
    return ds.fingerprint()


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _prepare(cfg: RunConfig, train_ds, eval_ds, cache: Path, memo: dict, progress: bool) -> _Stage:
    """Embed, mine and score the initial model once per stage key (memory, then disk)."""
    from .io import save_npy
    from .mining import Pools, mine, pool_diagnostics
    from .model import build_model
    from .pipeline import embed_split, evaluate_model, head_features
    key = _stage_key(cfg, train_ds, eval_ds)
    if key in memo:
        return memo[key]
    folder = cache / key
    done = folder / "stage.json"
    if done.is_file():
        meta = load_json(done)
        stage = _Stage(head=np.load(folder / "head.npy"), pools=Pools.load(folder / "pools.npz"),
                       initial=meta["initial"], diagnostics=meta.get("diagnostics", {}))
        memo[key] = stage
        return stage
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # descriptors cached by embedding config and data (stages that differ only in their
    # mining, e.g. the anchors of an ablation, embed once)
    features, raw = embed_split(cfg, train_ds, cache_dir=cache / "descriptors",
                                progress=progress)  # (N, D), (N, C)
    head = head_features(cfg, train_ds, raw, cache_dir=cache / "descriptors",
                         progress=progress)  # (N, C)
    pools = mine(features, cfg.mining, progress=progress)
    diagnostics = {}
    labels = np.asarray(train_ds.labels)
    if np.any(labels >= 0):  # reported, never used to choose
        diagnostics = {k: float(v) for k, v in pool_diagnostics(pools, features, labels).items()
                       if np.ndim(v) == 0}
    model = build_model(cfg.embed, cfg.train, init_features=head)
    initial, _ = evaluate_model(model, eval_ds, cfg, progress=progress)
    save_npy(folder / "head.npy", np.asarray(head, dtype=np.float32))
    pools.save(folder / "pools.npz")
    save_json(done, {"initial": initial, "diagnostics": diagnostics, "n_train": len(train_ds),
                     "n_eval": len(eval_ds), "n_anchors": len(pools),
                     "seconds": round(time.perf_counter() - t0, 2)})
    stage = _Stage(head=head, pools=pools, initial=initial, diagnostics=diagnostics)
    memo[key] = stage
    return stage


# ----------------------------------------------------------------------------- cells
def _cell_key(cfg: RunConfig, row: str, train_ds, eval_ds) -> str:
    """Hash of everything that changes one training and its scores.

    The train section is the one the row trains with (``RunConfig.row_train``: the same
    key whether a setting comes from the grid or from the parameter file's ``rows``).
    The device fields are left out (a study may resume elsewhere), and for the
    Euclidean row ``train.weights`` is: its weights are all 1, so ``mean1``
    rescales nothing and both values train the same model bit for bit.
    """
    from .pipeline import _section, stage_key
    sections = _sections(cfg)
    sections["train"] = _section(cfg.row_train(row))  # what the row trains with
    if row == "euclidean":
        sections["train"]["weights"] = "raw"
    return stage_key(sections, row, train_ds.fingerprint(), _fingerprint(eval_ds))


def _run_cell(cfg: RunConfig, stage: _Stage, train_ds, eval_ds, row: str, progress: bool) -> dict:
    """Train ``row`` with ``cfg`` and score ``eval_ds`` after every epoch."""
    from .model import build_model
    from .pipeline import evaluate_model
    from .train import train
    t0 = time.perf_counter()
    model = build_model(cfg.embed, cfg.train, init_features=stage.head)

    def score(m, epoch):
        return _scalars(evaluate_model(m, eval_ds, cfg, progress=False)[0])

    tcfg = cfg.row_train(row)
    result = train(model, train_ds, stage.pools, tcfg, cfg.embed, out_dir=None,
                   progress=progress, eval_fn=score)
    # per-epoch records without their timings (cells must not differ between machines)
    timing = ("tuples", "embed_s", "sample_s", "train_s", "tuples_per_s")
    history = [{k: v for k, v in rec.items() if k not in timing} for rec in result.history]
    return {"history": history, "guard": result.guard,
            "seconds": round(time.perf_counter() - t0, 2)}


def _at_epoch(rec: Mapping[str, Any], epochs: int, initial: Mapping[str, Any],
              guarded: bool = True) -> dict:
    """The scores a training of ``epochs`` epochs returns: the last epoch's, or with
    ``train.guard`` (and ``guarded``) the epoch its held-out loss keeps among the first
    ``epochs`` (``initial`` when that is the untrained network); ``guard_epoch`` says which."""
    from .guard import choose_epoch
    guard = rec.get("guard") or {}
    if not guard.get("active") or not guarded:
        return dict(rec["history"][epochs - 1])
    kept = choose_epoch(guard["losses"][:epochs + 1])
    scores = dict(initial) if kept == 0 else dict(rec["history"][kept - 1])
    return {**scores, "epoch": epochs, "guard_epoch": kept}


def _cell(work: Path, phase: str, overrides: Mapping, row: str, seed: int, cfg: RunConfig,
          stage_fn, train_ds, eval_ds, progress: bool) -> dict:
    """One training of ``row`` with ``cfg`` scored after each epoch: loaded when a
    study (this one or another sharing ``work``) has done it, else run and saved."""
    path = work / "cells" / phase / f"{row}-{_cell_key(cfg, row, train_ds, eval_ds)}.json"
    if path.is_file():
        return load_json(path)
    stage = stage_fn(cfg)
    rec = _run_cell(cfg, stage, train_ds, eval_ds, row, progress)
    log.info("study %s %s %s seed %d: %.0f s", phase, row, _label(overrides), seed, rec["seconds"])
    rec.update(phase=phase, overrides=dict(overrides), row=row, seed=seed,
               train_seed=cfg.train.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_json(path, rec)
    return rec


def _metric_of(rec: Mapping[str, Any], metric: str) -> float:
    if metric == "recall@1+nmi":
        return 0.5 * (float(rec["recall@1"]) + float(rec["nmi"]))
    return float(rec[metric])


# ----------------------------------------------------------------------------- study
def _check_folder(out: Path, cfg: RunConfig, scfg: StudyConfig) -> None:
    """Refuse a study folder written by another configuration; else record this one."""
    def identity(c: RunConfig, s: StudyConfig) -> dict:
        sd = {k: v for k, v in config_to_dict(s).items() if k not in _RESUMABLE}
        return {"config": {"name": c.name, **_sections(c)}, "study": sd}

    path = out / CONFIG_FILE
    now = identity(cfg, scfg)
    if out.exists() and not out.is_dir():
        raise ValueError(f"study folder {str(out)!r} is a file")
    if path.is_file():
        old = load_json(path)
        try:
            before = identity(config_from_dict(old["config"], where=str(path)),
                              StudyConfig(**{**old["study"], "grid": tuple(
                                  (k, tuple(v)) for k, v in old["study"]["grid"])}))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"study folder {str(out)!r}: {CONFIG_FILE} is unreadable ({exc}); "
                             "use another --out") from None
        if before != now:
            diff = _diff_keys(before, now)
            raise ValueError(f"study folder {str(out)!r} was written by a different configuration "
                             f"(differs in {diff}); use another --out, or delete it")
        return
    out.mkdir(parents=True, exist_ok=True)
    save_json(path, {"config": config_to_dict(cfg), "study": config_to_dict(scfg)})


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def _with_seed(cfg: RunConfig, overrides: Mapping, seed: int) -> RunConfig:
    c = apply_overrides(cfg, overrides)
    return dataclasses.replace(c, train=dataclasses.replace(c.train, seed=cfg.train.seed + seed))


def study(cfg: RunConfig, out: str | Path, study_cfg: StudyConfig | None = None, *,
          work_dir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the study of ``cfg`` into ``out``; return what ``out/study.json`` holds.

    Writes ``study_config.json`` (first), ``runs.csv`` and ``study.json``; its figures
    are :func:`mom.companion.viz.save_study_figures`'s (``mom study`` draws them).
    ``work_dir`` (default ``out/work``) holds ``cache/`` (descriptors, pools, initial scores) and ``cells/`` (one
    JSON per finished training, keyed by a hash of its whole configuration), so
    several studies can share it and reuse each other's trainings. See the module docstring for
    the protocol. Bad input (grid, seeds, a validation split of fewer than 2
    classes a side, a folder written by another configuration) raises
    ValueError before any embedding or training.
    """
    from .datasets.splits import build_splits
    from .pipeline import check_config
    scfg = study_cfg or StudyConfig()
    out = Path(out)
    t_start = time.perf_counter()
    check_config(cfg)
    rows_ignored = None
    if scfg.select == "rows" and cfg.rows == RowsConfig():
        raise ValueError(f"study --select rows: parameter file {cfg.name!r} has no rows section "
                         "(each row's own setting); use --select none or validation")
    if scfg.select != "rows" and cfg.rows != RowsConfig():
        # a parameter file's per-row settings were chosen by an earlier selection (with
        # validation labels): a study chooses its own (validation) or none (label-free)
        rows_ignored = config_to_dict(cfg.rows)
        cfg = dataclasses.replace(cfg, rows=RowsConfig())
    settings = _check_grid(cfg, scfg)
    train_ds, test_ds = build_splits(cfg)
    if hasattr(test_ds, "gnd") and scfg.select == "validation":
        raise ValueError("study --select validation needs class labels; retrieval datasets "
                         "have none on their training images: use --select none")
    protocol: dict[str, Any] = {"select": scfg.select, "seeds": list(range(scfg.seeds)),
                                "train_seeds": [cfg.train.seed + s for s in range(scfg.seeds)],
                                "ci": "two-sided 95% Student-t interval over seeds",
                                "test": "two-sided sign-flip permutation test, exact (p); "
                                        "paired t-test (p_t)"}
    if scfg.select == "validation":
        mine_cls, val_cls = class_split(train_ds.labels, scfg.val_fraction, scfg.val_seed)
        mining_ds = _class_subset(train_ds, mine_cls, "mining")
        val_ds = _class_subset(train_ds, val_cls, "validation")
        budget = _check_budget(cfg, scfg, settings, len(mining_ds))
        protocol.update(mining_classes=mine_cls.tolist(), validation_classes=val_cls.tolist(),
                        select_metric=scfg.select_metric, select_seeds=scfg.select_seeds,
                        budget=budget, rows_ignored=rows_ignored,
                        labels_used="validation-class labels choose each row's setting; test "
                                    "labels only score; training labels only for the reported "
                                    "pool diagnostics")
    elif scfg.select == "rows":
        protocol.update(labels_used="each row at the parameter file's own setting (its rows "
                                    "section, chosen earlier); test labels only score; training "
                                    "labels only for the reported pool diagnostics",
                        rows=config_to_dict(cfg.rows))
    else:
        protocol.update(labels_used="test labels only score; training labels only for the "
                                    "reported pool diagnostics; nothing is selected",
                        rows_ignored=rows_ignored)
    _check_folder(out, cfg, scfg)

    work = Path(work_dir) if work_dir is not None else out / "work"
    cache, memo = work / "cache", {}
    lines: list[dict] = []
    curves: list[dict] = []
    selection: dict[str, list] = {}
    selected: dict[str, dict] = {}

    # ---- validation phase: every setting, every trained row, select_seeds seeds
    if scfg.select == "validation":
        bases = _epoch_bases(cfg, settings)
        cells = [(b, row, s) for b in bases for row in TRAINED_ROWS for s in range(scfg.select_seeds)]
        results = {}
        for base, row, s in _progress(cells, "study validation", progress):
            c = _with_seed(cfg, base["overrides"], s)
            results[(base["id"], row, s)] = _cell(
                work, "validation", base["overrides"], row, s, c,
                lambda cc: _prepare(cc, mining_ds, val_ds, cache, memo, progress),
                mining_ds, val_ds, progress)
        initial_val = _prepare(_with_seed(cfg, bases[0]["overrides"], 0), mining_ds, val_ds,
                               cache, memo, progress).initial
        for row in TRAINED_ROWS:
            table = []
            for base in bases:
                for e in base["epochs"]:
                    per_seed = []
                    for s in range(scfg.select_seeds):
                        rec = _at_epoch(results[(base["id"], row, s)], e, initial_val,
                                        guarded=scfg.select_guarded)
                        per_seed.append(rec)
                        lines.append(_line("validation", base["at"](e), row, s,
                                           cfg.train.seed + s, e, rec))
                        rest = {k: v for k, v in base["overrides"].items() if k != "train.epochs"}
                        curves.append({"split": "validation", "setting": _label(rest),
                                       "row": row, "seed": s, **_scalars(rec)})
                    score = float(np.mean([_metric_of(r, scfg.select_metric) for r in per_seed]))
                    table.append({"overrides": base["at"](e), "score": score,
                                  "epochs": e})
            best = max(range(len(table)), key=lambda i: (table[i]["score"], -i))  # first of ties
            selection[row] = table
            selected[row] = table[best]["overrides"]
        for s in range(scfg.select_seeds):
            lines.append(_line("validation", {}, "initial", s, cfg.train.seed + s,
                               0, initial_val))
    else:  # the parameter file's own: its rows section (select rows), else nothing
        selected = {row: {f"train.{k}": v for k, v in cfg.rows.of(row).items()}
                    for row in TRAINED_ROWS}

    # ---- test phase: each row's setting, every seed, full training classes
    per_row: dict[str, list[dict]] = {row: [] for row in ROWS}
    unguarded: dict[str, list[dict]] = {row: [] for row in ROWS}  # the last epoch's scores
    test_cells = [(row, s) for row in TRAINED_ROWS for s in range(scfg.seeds)]
    stage_test = _prepare(_with_seed(cfg, selected["mom"], 0), train_ds, test_ds, cache, memo,
                          progress)
    guard_epochs: dict[str, list] = {row: [] for row in TRAINED_ROWS}
    for row, s in _progress(test_cells, "study test", progress):
        c = _with_seed(cfg, selected[row], s)
        rec = _cell(work, "test", selected[row], row, s, c,
                    lambda cc: _prepare(cc, train_ds, test_ds, cache, memo, progress),
                    train_ds, test_ds, progress)
        epochs = len(rec["history"])
        final = _at_epoch(rec, epochs, _scalars(stage_test.initial))
        per_row[row].append(final)
        unguarded[row].append(_at_epoch(rec, epochs, {}, guarded=False))
        guard_epochs[row].append(final.get("guard_epoch"))
        lines.append(_line("test", selected[row], row, s, c.train.seed, epochs, final, selected=True))
        for h in rec["history"]:  # per-epoch test scores: for the curves only
            curves.append({"split": "test", "setting": _label(selected[row]), "row": row,
                           "seed": s, **_scalars(h)})
    initial = _scalars(stage_test.initial)
    for s in range(scfg.seeds):
        per_row["initial"].append(initial)
        unguarded["initial"].append(initial)
        lines.append(_line("test", {}, "initial", s, cfg.train.seed + s, 0, initial, selected=True))
        curves.append({"split": "test", "setting": "", "row": "initial", "seed": s, "epoch": 0,
                       **initial})
    if scfg.select == "validation":  # selected flags on the validation lines
        for ln in lines:
            if ln["split"] == "validation" and ln["row"] in selected:
                ln["selected"] = json.loads(ln["overrides"]) == selected[ln["row"]]

    result = _aggregate(per_row, scfg)
    guarded = cfg.train.guard != "none"
    # with the guard on, "rows" are the guarded networks; "unguarded" the same trainings'
    # last epochs (the trained networks at their setting, whatever the guard said)
    result["unguarded"] = _aggregate(unguarded, scfg) if guarded else None
    result.update({
        "params": cfg.name, "selected": selected, "selection": selection, "protocol": protocol,
        "config": config_to_dict(cfg), "study_config": config_to_dict(scfg),
        "pools": stage_test.diagnostics, "curves": curves,
        "depths": (stage_test.pools.depths.to_dict() if stage_test.pools.depths else None),
        "guard": {"mode": cfg.train.guard,
                  "kept_epoch": guard_epochs if cfg.train.guard != "none" else None},
        "timings_s": {"total": round(time.perf_counter() - t_start, 2)}, "env": env_info(),
    })
    _write_csv(out / RUNS_FILE, lines)
    save_json(out / STUDY_FILE, result)
    return result


def _check_budget(cfg: RunConfig, scfg: StudyConfig, settings: list[dict], n: int) -> dict:
    """The validation phase's SGD steps per trained row (one training per setting but
    its epochs, to its largest epoch count, on ``n`` mining images); ValueError naming
    the grid's learning rates when they exceed ``scfg.budget_steps``."""
    steps = 0
    for base in _epoch_bases(cfg, settings):
        t = apply_overrides(cfg, base["overrides"]).train
        steps += t.epochs * (t.epoch_tuples(n) // t.batch_size) * scfg.select_seeds
    if scfg.budget_steps is not None and steps > scfg.budget_steps:
        lrs = sorted({s.get("train.lr", cfg.train.lr) for s in settings})
        raise ValueError(
            f"study grid: trying every setting (learning rates {lrs}, {len(settings)} settings "
            f"in all, {scfg.select_seeds} seed(s) each) costs {steps} SGD steps per row on the "
            f"{n} mining images, over the budget of {scfg.budget_steps} (budget_steps); drop "
            "settings or raise the budget")
    return {"steps_per_row": steps, "budget_steps": scfg.budget_steps}


def _epoch_bases(cfg: RunConfig, settings: list[dict]) -> list[dict]:
    """Group the grid's settings by everything but ``train.epochs``: one training each,
    to the largest epoch count of its group, scored after every epoch count listed.

    Each base: ``{"overrides", "id", "epochs": [e...], "at": e -> the setting's overrides}``.
    """
    groups: dict[str, dict] = {}
    for s in settings:
        rest = {k: v for k, v in s.items() if k != "train.epochs"}
        g = groups.setdefault(json.dumps(rest, sort_keys=True), {"rest": rest, "epochs": []})
        g["epochs"].append(int(s.get("train.epochs", cfg.train.epochs)))
    bases = []
    for g in groups.values():
        if any("train.epochs" in s for s in settings):
            overrides = {**g["rest"], "train.epochs": max(g["epochs"])}
            at = (lambda e, rest=g["rest"]: {**rest, "train.epochs": e})
        else:
            overrides, at = dict(g["rest"]), (lambda e, rest=g["rest"]: dict(rest))
        bases.append({"overrides": overrides, "id": _setting_id(overrides),
                      "epochs": g["epochs"], "at": at})
    return bases


def _label(overrides: Mapping[str, Any]) -> str:
    return ", ".join(f"{k.split('.', 1)[1]}={v}" for k, v in overrides.items()) or "params"


def _line(split: str, overrides: Mapping, row: str, seed: int, train_seed: int, epochs: int,
          metrics: Mapping, selected: bool = False) -> dict:
    return {"split": split, "setting": _setting_id(overrides), "row": row, "seed": seed,
            "train_seed": train_seed, "epochs": epochs,
            "overrides": json.dumps(dict(overrides), sort_keys=True), "selected": selected,
            **{k: v for k, v in _scalars(metrics).items() if k not in _NOT_SUMMARISED + ("epoch",)}}


def _progress(items: list, desc: str, progress: bool):
    from tqdm.auto import tqdm
    return tqdm(items, desc=desc, disable=not progress, leave=False)


def _metric_keys(per_row: Mapping[str, list[dict]]) -> list[str]:
    first = per_row["initial"][0]
    skip = set(_NOT_SUMMARISED) | {"epoch", "loss", "lr", "steps", "mean_raw_weight"}
    return [k for k in first if k not in skip]


def _aggregate(per_row: Mapping[str, list[dict]], scfg: StudyConfig) -> dict:
    from .stats import paired, summarize
    keys = _metric_keys(per_row)
    rows = {row: {k: summarize([r[k] for r in recs], f"{row} {k}") for k in keys}
            for row, recs in per_row.items()}
    pairs = {f"{a}-{b}": {k: paired([r[k] for r in per_row[a]], [r[k] for r in per_row[b]],
                                    f"{a}-{b} {k}") for k in keys} for a, b in PAIRS}
    return {"rows": rows, "paired": pairs,
            "per_seed": {row: [{k: r[k] for k in keys} for r in recs] for row, recs in per_row.items()}}


def _write_csv(path: Path, lines: list[dict]) -> None:
    cols: list[str] = []
    for ln in lines:
        cols += [k for k in ln if k not in cols]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    writer.writerows(lines)
    with atomic_write(path, "w") as fh:
        fh.write(buf.getvalue())


def save_study(out: str | Path, dest: str | Path, stem: str = "study") -> list[Path]:
    """Copy a finished study's ``study.json`` and ``runs.csv`` to ``dest`` as
    ``<stem>.json`` and ``<stem>_runs.csv`` (atomic); return the paths."""
    out, dest = Path(out), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for src, name in ((out / STUDY_FILE, f"{stem}.json"), (out / RUNS_FILE, f"{stem}_runs.csv")):
        if not src.is_file():
            raise ValueError(f"{src} does not exist: {out} is not a finished study")
        with atomic_write(dest / name, "w") as fh:
            fh.write(src.read_text())
        written.append(dest / name)
    return written


def summary_table(result: Mapping[str, Any], metrics: Sequence[str] = ("recall@1", "nmi")) -> str:
    """Markdown: each row's mean [95% CI], then the paired differences with p."""
    def ci(s):
        return f"{s['mean']:.2f} [{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]" if s["ci95"] else \
            f"{s['mean']:.2f}"
    lines = ["| row | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for row, m in result["rows"].items():
        lines.append(f"| {row} | " + " | ".join(ci(m[k]) for k in metrics) + " |")
    for pair, m in result["paired"].items():
        cells = []
        for k in metrics:
            p = m[k]["p"]
            cells.append(ci(m[k]) + (f", p {p:.3f}" if p is not None else ""))
        lines.append(f"| {pair} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
