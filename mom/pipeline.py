"""The whole method in one call: embed -> mine -> train -> evaluate.

``run`` evaluates three rows on the test split: the *initial* model (the
training architecture before any update), the *euclidean* baseline (trained on
Euclidean pools) and *mom* (trained on manifold pools), all from the same
features, anchors and seed. Each stage is one call into its module; this file
only orders them and records what they return.

Each stage (:data:`STAGES`) leaves a record ``stages/<name>.json`` beside its files,
keyed by a hash of exactly what its output depends on, so that ``run`` into the
same folder again reuses every stage whose inputs did not change and continues a
training killed mid-way from its checkpoint (``resume=False``: recompute all).

Label-free rule: training-split labels reach nothing but
:func:`mom.mining.pool_diagnostics` (reported, never used to choose). Test
labels reach nothing but the evaluator.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from .config import RunConfig, config_to_dict
from .datasets.splits import build_splits  # the split policy (mom/datasets/splits.py)
from .io import env_info, load_json, remove_stale_temps, save_json, save_npy, save_npz
from .memory import process_peak_mb

__all__ = ["run", "check_config", "embed_split", "embed_with_model", "evaluate_model",
           "format_results", "load_model", "stage_key", "METHODS", "STAGES", "STAGES_DIR", "INITIAL"]

log = logging.getLogger(__name__)

METHODS = ("euclidean", "mom")  # trained rows, in the order they run
_NEEDS_ROOT = ("cub200", "roxford5k", "rparis6k", "folder")


def check_config(cfg: RunConfig) -> None:
    """Raise ValueError for a configuration that cannot run, before any work."""
    if cfg.data.dataset in _NEEDS_ROOT and not cfg.data.root:
        raise ValueError(f"data.root is required for dataset {cfg.data.dataset!r} "
                         f"(params {cfg.name!r}): pass --data-root DIR or --set data.root=DIR")
    if cfg.data.root and not Path(cfg.data.root).exists():
        raise ValueError(f"data.root {cfg.data.root!r} does not exist")
    if cfg.data.classes is not None:
        if cfg.data.dataset != "fashion_mnist":
            raise ValueError(f"data.classes picks Fashion-MNIST's training classes; dataset "
                             f"{cfg.data.dataset!r} takes its classes from its own files")
        if len(set(cfg.data.classes)) != len(cfg.data.classes):
            raise ValueError(f"data.classes {list(cfg.data.classes)} repeats a class")
    if cfg.train.pools not in METHODS:
        raise ValueError(f"train.pools must be one of {METHODS}, got {cfg.train.pools!r}")


def _check_sizes(cfg: RunConfig, n: int, name: str) -> None:
    """The parameters that depend on the number of training images, before embedding them."""
    m = cfg.mining
    if n <= m.k_graph:
        raise ValueError(f"the training split ({name}) has {n} images, too few for "
                         f"mining.k_graph={m.k_graph} (the kNN graph needs more images than k)")
    if m.k_pos != "auto" and m.k_pos > n:
        raise ValueError(f"mining.k_pos={m.k_pos} exceeds the {n} images of the training split ({name})")
    for row in METHODS:
        t = cfg.row_train(row)
        n_tuples = t.epoch_tuples(n)
        if n_tuples < t.batch_size:
            source = "train.tuples_per_epoch" if t.tuples_per_epoch else "one per training image"
            raise ValueError(f"{n_tuples} tuples per epoch ({source}) give no full batch of "
                             f"train.batch_size={t.batch_size} (the {row} row)")


def embed_split(cfg: RunConfig, dataset, cache_dir=None, progress=True, desc="embed",
                whiten_on=None) -> tuple[np.ndarray, np.ndarray]:
    """(mining descriptors (N, D), raw pooled descriptors (N, C)) of ``dataset``.

    With ``embed.whitening`` the mining descriptors are the raw ones PCA-whitened by a
    :class:`mom.whitening.Whitening` fitted on the raw descriptors of ``whiten_on``, the
    training split (default: ``dataset`` itself, which must then be the training split;
    docs/method.md §2); the raw ones initialise the PCA head.
    """
    from .extract import embed
    from .whitening import Whitening
    raw_cfg = dataclasses.replace(cfg.embed, whitening=False)
    raw = np.asarray(embed(dataset, raw_cfg, cache_dir=cache_dir, progress=progress, desc=desc),
                     dtype=np.float32)
    if not cfg.embed.whitening:
        return raw, raw
    fit_on = raw if whiten_on is None else np.asarray(
        embed(whiten_on, raw_cfg, cache_dir=cache_dir, progress=progress,
              desc=desc + " (training split, for the whitening)"), dtype=np.float32)
    whitening = Whitening.fit(fit_on, cfg.embed.whiten_dim)
    return np.asarray(whitening.apply(raw), dtype=np.float32), raw


def head_features(cfg: RunConfig, dataset, raw: np.ndarray, cache_dir=None,
                  progress=True, desc="embed (head init)") -> np.ndarray:
    """(N, C) descriptors that initialise the PCA head: the network's own pooling.

    They are the raw mining descriptors unless ``train.pooling`` differs
    (docs/method.md §9: mining by multi-scale R-MAC, training GoogLeNet with average pooling).
    """
    from .extract import embed
    from .model import network_embed_config
    net = network_embed_config(cfg.embed, cfg.train)
    if net == dataclasses.replace(cfg.embed, whitening=False):
        return raw
    return np.asarray(embed(dataset, net, cache_dir=cache_dir, progress=progress, desc=desc),
                      dtype=np.float32)


def embed_with_model(model, dataset, cfg: RunConfig, progress=True, desc="embed") -> np.ndarray:
    """Embeddings of ``dataset`` by a training-architecture model, test transform. (N, d)"""
    from .extract import extract, make_transform
    transform = make_transform(model.backbone.meta, cfg.train.image_size, train=False)
    return extract(model, dataset, transform, device=cfg.train.device,
                   batch_size=cfg.embed.batch_size, num_workers=cfg.embed.num_workers,
                   progress=progress, desc=desc)


def evaluate_model(model, dataset, cfg: RunConfig, progress=True,
                   desc="embed test") -> tuple[dict, np.ndarray]:
    """(metrics, embeddings) of ``model`` on a labelled ``dataset``.

    A retrieval benchmark (:func:`mom.datasets.factory.load_benchmark`) is scored by
    mAP of its queries against its database; the database embeddings are returned.
    """
    from .metrics import evaluate_embeddings
    if hasattr(dataset, "gnd"):
        from .retrieval import evaluate_retrieval
        return evaluate_retrieval(
            lambda ds: embed_with_model(model, ds, cfg, progress=progress, desc=desc + (
                " queries" if ds is dataset.queries else " database")), dataset)
    emb = embed_with_model(model, dataset, cfg, progress=progress, desc=desc)  # (N, d)
    return evaluate_embeddings(emb, np.asarray(dataset.labels), cfg.eval), emb


def load_model(path: str | Path, device: str = "cpu"):
    """A trained model from the ``model.pt`` that :func:`mom.train.train` writes."""
    import torch

    from .config import EmbedConfig, TrainConfig, config_from_dict
    from .device import resolve_device
    from .train import WEIGHTS, build_model
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    ck = torch.load(path, map_location="cpu", weights_only=False)  # our own file
    if not isinstance(ck, dict) or "state_dict" not in ck or "train_config" not in ck:
        raise ValueError(f"{str(path)!r} is not a model.pt written by mom.train")
    sections = config_from_dict({"embed": ck["embed_config"], "train": ck["train_config"]},
                                where=str(path))
    embed_cfg: EmbedConfig = sections.embed
    train_cfg: TrainConfig = dataclasses.replace(sections.train, head_init="random")
    model = build_model(embed_cfg, train_cfg)  # weights replaced just below
    model.load_state_dict(ck["state_dict"])
    return model.to(resolve_device(device)).eval()


def _check_finite(name: str, metrics: dict) -> None:
    bad = {k: v for k, v in metrics.items()
           if isinstance(v, (int, float)) and not math.isfinite(v)}
    if bad:
        raise ValueError(f"{name}: non-finite metrics {bad}")


# ----------------------------------------------------------------------------- stages
STAGES_DIR = "stages"  # a run folder's stage records: stages/<name>.json
# the stages of a run, in the order they run (results["reused"] names some of them)
STAGES = ("embed", "mine", "initial", "evaluate_initial",
          *(f"{step}_{m}" for m in METHODS for step in ("train", "evaluate")))
INITIAL = "initial.pt"  # the untrained model both rows start from (a model.pt, see load_model)
# fields that say how a stage runs, not what it computes: they may change between a
# run and its resumption (as mom.train allows for a checkpoint)
_HOW_FIELDS = ("device", "num_workers")
# the train fields that determine the initial model and its test embeddings
# (build_model, network_embed_config, embed_with_model); ``trainable`` only sets requires_grad
_MODEL_FIELDS = ("embedding_dim", "head_init", "pooling", "image_size")


def _section(section, drop: tuple[str, ...] = ()) -> dict:
    """A config section as a dict, without the fields that do not change results: how a
    stage runs, and fields at their declared neutral value (``mom.config.NEUTRAL``), so
    that a field added later leaves the keys of existing results where they were."""
    from .config import neutral_fields
    skip = _HOW_FIELDS + drop + neutral_fields(section)
    return {k: v for k, v in config_to_dict(section).items() if k not in skip}


def stage_key(*parts) -> str:
    """16 hex digits of SHA-256 over ``parts`` (as JSON) and the package version."""
    from .version import __version__
    blob = json.dumps({"mom": __version__, "parts": parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class _Stages:
    """The stage records of a run folder, ``stages/<name>.json``: ``{"stage", "key",
    "complete", "seconds", ...}``, the key a hash of everything the stage's output
    depends on (config sections, data fingerprints, the keys of the stages before).

    A record is written only after every file of its stage, and removed before any of
    them is rewritten: a complete record means that its files are those of its key,
    whatever was killed when.
    """

    def __init__(self, out: Path, resume: bool):
        self.dir, self.resume = out / STAGES_DIR, resume
        self.reused: list[str] = []
        # trainings continued from a checkpoint: {stage: {"from_epoch", "epochs"}}
        self.resumed: dict[str, dict[str, int]] = {}
        self.timings: dict[str, float] = {}
        self.peaks: dict[str, float] = {}

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def read(self, name: str) -> dict | None:
        """The record of ``name`` as written (complete or not), None if absent or unreadable."""
        try:
            rec = load_json(self.path(name))
        except (OSError, ValueError):
            return None
        return rec if isinstance(rec, dict) else None

    def reusable(self, name: str, key: str, files: list[Path]) -> dict | None:
        """The complete record of ``name`` when resuming, its key is ``key`` and every
        file exists (the stage is then counted as reused); else None."""
        if not self.resume:
            return None
        rec = self.read(name)
        if rec is None or rec.get("key") != key or rec.get("complete") is not True:
            return None
        missing = [str(p.relative_to(self.dir.parent)) for p in files if not p.is_file()]
        if missing:
            log.info("%s: recomputed, its record is there but not %s", name, missing)
            return None
        self.reused.append(name)
        self.timings[name] = rec.get("seconds", 0.0)
        if "peak_rss_mb" in rec:
            self.peaks[name] = rec["peak_rss_mb"]
        log.info("%s reused (%s, computed in %.1f s)", name,
                 self.path(name).relative_to(self.dir.parent), self.timings[name])
        return rec

    def start(self, name: str, files: list[Path], **marker) -> None:
        """Before rewriting any file of ``name``: drop its record (or replace it by an
        incomplete ``marker``) and the temp files a killed write left beside ``files``;
        the peak memory is reset so that ``finish`` reads this stage's own."""
        from .memory import reset_peak
        reset_peak()
        self.path(name).unlink(missing_ok=True)
        for p in files:
            remove_stale_temps(p)
        if marker:
            self.dir.mkdir(exist_ok=True)
            save_json(self.path(name), {"stage": name, "complete": False, **marker})

    def finish(self, name: str, key: str, t0: float, **data) -> dict:
        """Record ``name`` as complete (after its files); returns the record as read back."""
        from .memory import peak_mb, per_stage
        seconds = round(time.perf_counter() - t0, 2)
        peak = peak_mb()  # MiB: this stage's peak resident memory (Linux), else the process's
        self.dir.mkdir(exist_ok=True)
        save_json(self.path(name), {"stage": name, "key": key, "complete": True, "seconds": seconds,
                                    "peak_rss_mb": peak, "peak_per_stage": per_stage(), **data})
        self.timings[name] = seconds
        self.peaks[name] = peak
        log.info("%s done in %.1f s", name, seconds)
        return load_json(self.path(name))  # the same JSON values whether computed or reused


@dataclasses.dataclass
class _Run:
    """What every stage of one ``run`` reads."""
    cfg: RunConfig
    out: Path
    stages: _Stages
    train_ds: Any
    test_ds: Any
    progress: bool
    cache_dir: Any
    train_fp: str  # fingerprints of the training images and of what the rows are scored on
    test_fp: str
    test_db_fp: str = ""  # of the test images (retrieval: the database), as results.json names it
    # {(initial model key, image size): the training set's embedding by the initial model},
    # from the first row trained in this call: the next row starts from it (train's
    # start_embedding), instead of embedding the same images with the same weights again
    start_embeddings: dict = dataclasses.field(default_factory=dict)

    @property
    def retrieval(self) -> bool:
        return hasattr(self.test_ds, "gnd")


def _once(fn):
    """``fn()`` computed on the first call only."""
    cache = []

    def get():
        if not cache:
            cache.append(fn())
        return cache[0]
    return get


def _embed_stage(r: _Run) -> tuple[str, np.ndarray, np.ndarray]:
    """(key, mining descriptors (N, D), raw descriptors (N, C)) of the training images:
    ``features/train.npy`` (and ``features/train_raw.npy`` when whitening)."""
    cfg, name = r.cfg, "embed"
    key = stage_key(name, _section(cfg.data), _section(cfg.embed), r.train_fp)
    path, raw_path = r.out / "features" / "train.npy", r.out / "features" / "train_raw.npy"
    files = [path, raw_path] if cfg.embed.whitening else [path]
    if r.stages.reusable(name, key, files):
        features = np.load(path, allow_pickle=False)
        return key, features, np.load(raw_path, allow_pickle=False) if cfg.embed.whitening else features
    t0 = time.perf_counter()
    r.stages.start(name, files)
    features, raw = embed_split(cfg, r.train_ds, cache_dir=r.cache_dir, progress=r.progress,
                                desc="embed train")  # (N, D), (N, C)
    save_npy(path, features)
    if cfg.embed.whitening:
        save_npy(raw_path, raw)
    r.stages.finish(name, key, t0)
    return key, features, raw


def _mine_stage(r: _Run, embed_key: str, features: np.ndarray) -> tuple[str, Any, dict]:
    """(key, pools, scalar pool diagnostics): ``pools.npz`` (and ``pool_diagnostics.npz``)."""
    from .mining import Pools, mine, pool_diagnostics
    name = "mine"
    key = stage_key(name, embed_key, _section(r.cfg.mining))
    labels = np.asarray(r.train_ds.labels)
    labelled = bool(np.any(labels >= 0))  # unlabeled collections have no diagnostics
    path, diag_path = r.out / "pools.npz", r.out / "pool_diagnostics.npz"
    files = [path, diag_path] if labelled else [path]
    rec = r.stages.reusable(name, key, files)
    if rec:
        pools, diagnostics = Pools.load(path), rec["diagnostics"]
    else:
        t0 = time.perf_counter()
        r.stages.start(name, [path, diag_path])
        diag_path.unlink(missing_ok=True)  # an earlier run's, if this one has no labels
        pools = mine(features, r.cfg.mining, progress=r.progress)
        pools.save(path)
        # the only use of training labels: reported diagnostics, never a choice
        diagnostics = {}
        if labelled:
            diagnostics = pool_diagnostics(pools, features, labels)
            per_anchor = {k: np.asarray(v) for k, v in diagnostics.items() if np.ndim(v) > 0}
            save_npz(diag_path, **per_anchor)  # for the figures
            diagnostics = {k: v for k, v in diagnostics.items() if np.ndim(v) == 0}
        diagnostics = r.stages.finish(name, key, t0, diagnostics=diagnostics)["diagnostics"]
    log.info("mining: %d anchors, %d skipped", len(pools), pools.n_skipped)
    if pools.depths is not None and pools.depths.summary():
        log.info("mining %s", pools.depths.summary())
    return key, pools, diagnostics


def _load_weights(cfg: RunConfig, train_cfg, path: Path):
    """The model of ``path`` (a model.pt) in the architecture of ``cfg.embed`` and ``train_cfg``."""
    import torch

    from .train import build_model
    model = build_model(cfg.embed, dataclasses.replace(train_cfg, head_init="random"))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=False)["state_dict"])
    return model.eval()


def _save_weights(model, cfg: RunConfig, path: Path) -> None:
    """``model`` as a model.pt (what mom.train writes; :func:`load_model` reads it)."""
    import torch

    from .io import atomic_write
    meta = getattr(getattr(model, "backbone", None), "meta", None)
    with atomic_write(path, "wb") as fh:
        torch.save({"state_dict": model.state_dict(), "meta": meta,
                    "train_config": config_to_dict(cfg.train),
                    "embed_config": config_to_dict(cfg.embed)}, fh)


def _initial_stage(r: _Run, embed_key: str, raw: np.ndarray) -> tuple[str, Any]:
    """(key, a function returning the initial model): ``initial.pt``. Both trained rows
    start from exactly these weights, whether computed now or by an earlier run."""
    from .train import build_model
    cfg, name = r.cfg, "initial"
    key = stage_key(name, embed_key, {f: getattr(cfg.train, f) for f in _MODEL_FIELDS})
    path = r.out / INITIAL
    if r.stages.reusable(name, key, [path]):
        return key, _once(lambda: _load_weights(cfg, cfg.train, path))  # only if a stage needs it
    t0 = time.perf_counter()
    r.stages.start(name, [path])
    init = head_features(cfg, r.train_ds, raw, cache_dir=r.cache_dir, progress=r.progress,
                         desc="embed train (head init)")  # (N, C)
    model = build_model(cfg.embed, cfg.train, init_features=init)
    _save_weights(model, cfg, path)
    r.stages.finish(name, key, t0)
    return key, lambda: model


def _evaluate_row(r: _Run, row: str, model_key: str, get_model, initial: bool = False) -> dict:
    """The metrics of row ``row`` on the test split: ``features/test_<row>.npy``
    (and ``features/test_labels.npy``). ``initial``: the row's model is the initial network
    (its guard fell back to it), so its test embedding and metrics are the initial row's,
    copied instead of computed again."""
    name = f"evaluate_{row}"
    key = stage_key("evaluate", model_key, _section(r.cfg.eval), r.test_fp)
    path, labels_path = r.out / "features" / f"test_{row}.npy", r.out / "features" / "test_labels.npy"
    with_labels = row == "initial" and not r.retrieval  # the same labels for every row
    files = [path, labels_path] if with_labels else [path]
    rec = r.stages.reusable(name, key, files)
    if rec is None:
        t0 = time.perf_counter()
        r.stages.start(name, files)
        if initial:
            emb = np.load(r.out / "features" / "test_initial.npy")
            metrics = r.stages.read("evaluate_initial")["metrics"]
        else:
            metrics, emb = evaluate_model(get_model(), r.test_ds, r.cfg, progress=r.progress,
                                          desc=f"embed test ({row})")
        _check_finite(row, metrics)
        save_npy(path, emb)
        if with_labels:
            save_npy(labels_path, np.asarray(r.test_ds.labels))
        rec = r.stages.finish(name, key, t0, metrics=metrics, order=list(metrics))
    return {k: rec["metrics"][k] for k in rec["order"]}  # JSON sorts keys: the evaluator's order


def _train_row(r: _Run, method: str, mine_key: str, initial_key: str, pools,
               get_initial) -> tuple[str, list, Any]:
    """(key, history, a function returning the trained model) of the row trained on the
    ``method`` pools: the folder ``<method>/`` (checkpoint.pt, train.json, model.pt).

    A training killed mid-way continues from its last checkpoint when it was started
    from the same pools, initial model and settings (``epochs`` may have grown);
    otherwise the folder is emptied and the row trained afresh.
    """
    from .train import CHECKPOINT, LOG, WEIGHTS, train
    cfg, name = r.cfg, f"train_{method}"
    tcfg = cfg.row_train(method)  # the train section with the row's own settings
    # what a checkpoint of this row must have been started from; then the epochs
    resume_key = stage_key("train", mine_key, initial_key, _section(tcfg, drop=("epochs",)))
    key = stage_key("train", resume_key, tcfg.epochs)
    folder = r.out / method
    files = [folder / WEIGHTS, folder / LOG]
    rec = r.stages.reusable(name, key, files)
    if rec:
        return (key, rec["history"], rec.get("guard"),
                _once(lambda: _load_weights(cfg, tcfg, folder / WEIGHTS)))
    t0 = time.perf_counter()
    from_epoch = (_resumable_checkpoint(r, name, folder / CHECKPOINT, resume_key, tcfg)
                  if r.stages.resume else None)
    resume = from_epoch is not None
    if resume:
        r.stages.resumed[name] = {"from_epoch": from_epoch, "epochs": tcfg.epochs}
    r.stages.start(name, [folder / f for f in (CHECKPOINT, LOG, WEIGHTS)], resume_key=resume_key)
    if not resume:
        for f in (CHECKPOINT, LOG, WEIGHTS):
            (folder / f).unlink(missing_ok=True)
    folder.mkdir(exist_ok=True)
    model = copy.deepcopy(get_initial())  # train() seeds every RNG itself
    start = (initial_key, tcfg.image_size)
    result = train(model, r.train_ds, pools, tcfg, cfg.embed, out_dir=folder, resume=resume,
                   progress=r.progress, start_embedding=r.start_embeddings.get(start))
    if result.start_embedding is not None:
        r.start_embeddings[start] = result.start_embedding
    rec = r.stages.finish(name, key, t0, resume_key=resume_key, history=result.history,
                          guard=result.guard)
    if result.guard and result.guard.get("active"):
        log.info("guard (%s): held-out loss per epoch %s, kept epoch %d%s", method,
                 ", ".join(f"{v:.4f}" for v in result.guard["losses"]),
                 result.guard["kept_epoch"], " (fell back to the initial network)"
                 if result.guard["fell_back"] else "")
    return key, rec["history"], rec.get("guard"), lambda: result.model


def _resumable_checkpoint(r: _Run, name: str, path: Path, resume_key: str, tcfg) -> int | None:
    """The epoch of ``path`` when it is a checkpoint this row can continue from; None when
    the row restarts (the reason is logged)."""
    if not path.is_file():
        return None
    rec = r.stages.read(name)
    if rec is None or rec.get("resume_key") != resume_key:
        why = ("nothing records what it was trained from" if rec is None else
               "was trained from other pools, initial model or settings")
        log.info("%s: restarted, %s %s", name, path.relative_to(r.out), why)
        return None
    import torch

    from .train import _resumable_config
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)  # our own file
        written, epoch = ck["config"], int(ck["epoch"])
    except Exception as exc:  # a checkpoint that cannot be read is only a lost head start
        log.info("%s: restarted, %s is unreadable (%s)", name, path.relative_to(r.out), exc)
        return None
    now = _resumable_config(tcfg)
    if written != now:
        diff = sorted(k for k in set(written) | set(now) if written.get(k) != now.get(k))
        log.info("%s: restarted, %s was written with different settings %s", name,
                 path.relative_to(r.out), diff)
        return None
    if epoch > tcfg.epochs:
        log.info("%s: restarted, %s holds epoch %d, beyond train.epochs=%d", name,
                 path.relative_to(r.out), epoch, tcfg.epochs)
        return None
    log.info("%s: resuming from %s (epoch %d of %d)", name, path.relative_to(r.out), epoch, tcfg.epochs)
    return epoch


def run(cfg: RunConfig, out_dir, progress: bool = True, cache_dir=None, *,
        resume: bool = True) -> dict[str, Any]:
    """Run every stage and write ``out_dir/results.json``; return its content.

    Files: ``config.json``; ``features/`` (train descriptors, test embeddings of
    each row, test labels); ``pools.npz``; ``initial.pt`` (the untrained model);
    ``euclidean/`` and ``mom/`` (each training's checkpoint, ``train.json`` and
    ``model.pt``); ``stages/`` (one record per stage); ``results.json``.
    ``cache_dir`` (optional) caches the mining descriptors across runs, keyed
    by the embed config and the dataset fingerprint.

    ``resume`` (default): a stage whose record in ``out_dir/stages`` has the key of
    this configuration and data, and whose files are there, is reused instead of
    recomputed (the descriptors: data + embed; the pools: + mining; the initial
    model: + the train fields of the architecture; a trained row: + pools + train;
    an evaluation: + eval); a training killed mid-way continues from its
    checkpoint. The results are the same either way; ``results["reused"]`` names the
    reused stages, ``results["resumed"]`` the trainings continued from a checkpoint
    (``{stage: {"from_epoch", "epochs"}}``), and ``timings_s`` gives each stage's time when it was computed
    (``total``: this call). ``resume=False`` recomputes every stage.
    """
    check_config(cfg)  # before the heavy imports: bad input fails fast
    t_start = time.perf_counter()
    r = _open_run(cfg, Path(out_dir), progress, cache_dir, resume)
    embed_key, features, raw = _embed_stage(r)
    mine_key, pools, diagnostics = _mine_stage(r, embed_key, features)
    initial_key, get_initial = _initial_stage(r, embed_key, raw)
    results: dict[str, Any] = {"initial": _evaluate_row(r, "initial", initial_key, get_initial)}
    histories: dict[str, list] = {}
    guards: dict[str, Any] = {}
    for method in METHODS:
        train_key, histories[method], guards[method], get_model = _train_row(
            r, method, mine_key, initial_key, pools, get_initial)
        fell_back = bool((guards[method] or {}).get("fell_back"))
        results[method] = _evaluate_row(r, method, train_key, get_model, initial=fell_back)
        del get_model  # the trained model, once evaluated

    for name in ("initial", *METHODS):
        log.info("%-9s %s", name, _format_row(results[name]))
    reused = list(r.stages.reused)
    log.info("reused %d stage(s)%s", len(reused), f": {', '.join(reused)}" if reused else "")
    r.stages.timings["total"] = round(time.perf_counter() - t_start, 2)
    results.update(_run_record(r, pools, diagnostics, histories, guards))
    save_json(r.out / "results.json", results)
    return results


def kept_stages(out_dir) -> dict[str, Any]:
    """What a run folder holds of an unfinished run, for the line an interrupted
    ``mom run`` ends with: ``{"done": [finished stages, in order], "checkpoints":
    {training stage: the epoch its checkpoint holds, None if unreadable}}``; a rerun with
    the same configuration reuses the first and continues the second."""
    from .train import CHECKPOINT
    out = Path(out_dir)
    stages = _Stages(out, resume=True)
    done = [name for name in STAGES if (stages.read(name) or {}).get("complete") is True]
    checkpoints: dict[str, int | None] = {}
    for method in METHODS:
        name, path = f"train_{method}", out / method / CHECKPOINT
        if name in done or not path.is_file():
            continue
        import torch
        try:  # memory-mapped: only the epoch number is read
            checkpoints[name] = int(torch.load(path, map_location="cpu", weights_only=False,
                                               mmap=True)["epoch"])
        except Exception:  # noqa: BLE001 - a torn file: say so, do not fail the message
            checkpoints[name] = None
    return {"done": done, "checkpoints": checkpoints}


def _open_run(cfg: RunConfig, out: Path, progress: bool, cache_dir, resume: bool) -> "_Run":
    """The data step of :func:`run`: list both splits, check them before any heavy work,
    then create ``out`` (``config.json``; a stale ``results.json`` removed)."""
    t0 = time.perf_counter()
    train_ds, test_ds = build_splits(cfg)
    retrieval = hasattr(test_ds, "gnd")
    if not retrieval:
        classes = np.unique(np.asarray(test_ds.labels))
        # before any heavy work: Recall@K and NMI need labelled test images of 2+ classes
        unknown = classes.min(initial=0) < 0
        if len(classes) < 2 or unknown:
            what = "unknown labels" if unknown else f"{len(classes)} class(es)"
            raise ValueError(f"test split of {cfg.data.dataset!r} ({test_ds.name}) has {what}: "
                             "Recall@K and NMI need at least 2 labelled classes")
    _check_sizes(cfg, len(train_ds), train_ds.name)
    # the first file once the data are known to be usable: bad input leaves no folder behind
    (out / "features").mkdir(parents=True, exist_ok=True)
    (out / "results.json").unlink(missing_ok=True)  # rewritten once every stage agrees with cfg
    save_json(out / "config.json", config_to_dict(cfg))
    test_fp = (test_ds.database if retrieval else test_ds).fingerprint()
    r = _Run(cfg=cfg, out=out, stages=_Stages(out, resume), train_ds=train_ds, test_ds=test_ds,
             progress=progress, cache_dir=cache_dir, train_fp=train_ds.fingerprint(),
             test_fp=test_fp + (test_ds.queries.fingerprint() if retrieval else ""),
             test_db_fp=test_fp)
    r.stages.timings["data"] = round(time.perf_counter() - t0, 2)
    log.info("data done in %.1f s", r.stages.timings["data"])
    log.info("data: %d train images, %d test %s (%s)", len(train_ds),
             len(test_ds.queries) if retrieval else len(test_ds),
             "queries" if retrieval else "images", cfg.data.dataset)
    return r


def _run_record(r: "_Run", pools, diagnostics: dict, histories: dict, guards: dict) -> dict:
    """What ``results.json`` holds beside the rows' metrics."""
    retrieval = r.retrieval
    return {
        "config": config_to_dict(r.cfg),
        "pools": {"n_anchors": len(pools), "n_skipped": int(pools.n_skipped), **diagnostics,
                  "mean_pos_size": float(np.mean(pools.positives.sizes())),
                  "mean_neg_size": float(np.mean(pools.negatives.sizes())),
                  "depths": pools.depths.to_dict() if pools.depths is not None else None},
        "history": histories,
        "guard": guards,
        "data": {"train": len(r.train_ds),
                 "test": len(r.test_ds.queries) if retrieval else len(r.test_ds),
                 "train_fingerprint": r.train_fp,
                 "test_fingerprint": r.test_db_fp},
        "timings_s": r.stages.timings,
        "peak_rss_mb": {**r.stages.peaks, "process": process_peak_mb()},
        "reused": list(r.stages.reused),
        "resumed": dict(r.stages.resumed),
        "env": env_info(),
    }


def _format_row(metrics: dict) -> str:
    return "  ".join(f"{k} {v:.2f}" for k, v in metrics.items() if isinstance(v, (int, float)))


def format_results(results: dict) -> str:
    """A small text table of the three rows (for the CLI)."""
    rows = [r for r in ("initial", *METHODS) if r in results]
    keys = [k for k in results[rows[0]] if isinstance(results[rows[0]][k], (int, float))]
    lines = ["row        " + "  ".join(f"{k:>9}" for k in keys)]
    for r in rows:
        lines.append(f"{r:<10} " + "  ".join(f"{results[r][k]:9.2f}" for k in keys))
    return "\n".join(lines)
