"""Frozen, typed configuration for every stage, and the parameter files.

Each stage has one small frozen dataclass. Every paper hyperparameter is a
field with the paper's value (docs/method.md §16) as its default, so nothing is
hidden inside a function. ``RunConfig`` groups the stages; it is what the parameter
files ``params/{smoke,default,paper}.yaml`` hold and what is saved beside
every result.

Every field is checked when a config is built (``__post_init__``): its type
(``Literal`` annotations list the allowed names), its range, and for
``device`` and ``trainable`` its syntax. A wrong value raises ValueError naming
``Class.field`` and what is allowed, before any work starts.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import numbers
import os
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, get_args, get_origin, get_type_hints

import yaml

__all__ = [
    "DataConfig",
    "EmbedConfig",
    "MiningConfig",
    "TrainConfig",
    "EvalConfig",
    "RowsConfig",
    "RunConfig",
    "ROW_NAMES",
    "NEUTRAL",
    "PARAMS_DIR",
    "load_params",
    "apply_overrides",
    "config_to_dict",
    "config_from_dict",
    "choices",
]

# the names an enum-like field accepts (the modules that implement them hold the same
# tuples: datasets.DATASETS, backbones.BACKBONES, pooling.POOLINGS, knn.INDEXES, ...)
DatasetName = Literal["fashion_mnist", "omniglot", "cub200", "roxford5k", "rparis6k", "folder"]
FashionSource = Literal["bundled", "full"]
BackboneName = Literal["efficientnet_lite0", "googlenet", "resnet50", "googlenet_caffe", "vgg16"]
PoolingName = Literal["gap", "mac", "gem", "rmac"]
Solver = Literal["cg", "exact"]
CgDtype = Literal["float32", "float64"]
CgBackend = Literal["torch", "numpy"]
AnchorChoice = Literal["all", "stationary", "random"]
KnnIndex = Literal["flat", "ivf", "hnsw"]
PoolKind = Literal["mom", "euclidean"]
Auto = Literal["auto"]
GuardName = Literal["none", "holdout"]
LossName = Literal["triplet", "contrastive"]
HeadInit = Literal["pca", "random"]
TupleWeights = Literal["raw", "mean1"]


@dataclass(frozen=True)
class DataConfig:
    """Which images: ``dataset`` is one of ``omniglot`` and ``fashion_mnist`` (both
    bundled, offline), ``cub200``, ``roxford5k``, ``rparis6k``, ``folder``."""

    dataset: DatasetName = "fashion_mnist"
    # None: the bundled set for fashion_mnist and omniglot; required otherwise (omniglot:
    # another Omniglot .zip or folder in the same layout)
    root: str | None = None
    # fashion_mnist only: "bundled" (ships with the package) or "full" (IDX files)
    source: FashionSource = "bundled"
    # images per class taken from the source (None = all): exactly that many for
    # fashion_mnist and omniglot (at most 20 there), at most that many for cub200 and folder
    per_class: int | None = None
    # fashion_mnist only: the classes of the train split, a subset of 0-4 (None = all
    # five); the test split stays classes 5-9
    classes: tuple[int, ...] | None = None
    download: bool = False
    # retrieval datasets only: an image folder of unlabeled training images
    # (default: mine and train on the searched database itself)
    train_root: str | None = None

    def __post_init__(self):
        _validate(self)


@dataclass(frozen=True)
class EmbedConfig:
    """Descriptor extraction (docs/method.md §2)."""

    backbone: BackboneName = "efficientnet_lite0"
    weights: str | None = None  # a local weights file; None = the backbone's default
    pooling: PoolingName = "gap"  # gap | mac | gem | rmac
    gem_p: float = 3.0
    rmac_levels: int = 3
    scales: tuple[float, ...] = (1.0,)  # multi-scale: image_size * s, summed then L2
    image_size: int = 64
    whitening: bool = False  # PCA-whitening learned on the training split
    whiten_dim: int | None = None
    batch_size: int = 128
    num_workers: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps

    def __post_init__(self):
        _validate(self)


@dataclass(frozen=True)
class MiningConfig:
    """Graph, diffusion, anchors and pools (docs/method.md §3-§6)."""

    k_graph: int = 30  # kNN including the point itself
    # read the graph's k from its communities, k_graph being the cap (mom/depths.py,
    # docs/method.md §6b): for collections whose classes may be smaller than k_graph
    adapt_k_graph: bool = False
    gamma: float = 3.0
    alpha: float = 0.99
    cg_iterations: int = 20
    cg_tol: float = 1e-10
    solver: Solver = "cg"  # "cg" (truncated, faithful) | "exact" (sparse direct solve)
    cg_dtype: CgDtype = "float32"  # CG working precision: float32 (half the memory traffic) | float64 (as the release)
    cg_backend: CgBackend = "torch"  # block CG kernels: torch (CPU or CUDA, faster) | numpy (scipy.sparse)
    # pool depths: a number, or "auto" = derived from the unlabeled graph (mom/depths.py,
    # docs/method.md §6a); k_neg is capped at ceil(N/2)
    k_pos: int | Auto = 50
    k_neg: int | Auto = 100
    pool_size: int = 50
    anchors: AnchorChoice = "all"  # all | stationary | random
    n_anchors: int = 1500
    power_iterations: int = 1000
    knn_index: KnnIndex = "flat"  # flat (exact) | ivf | hnsw
    knn_nprobe: int = 8  # ivf: lists searched per row
    knn_nlist: int | None = None  # ivf: lists (None: about 2 sqrt(N), mom/knn.py default_nlist)
    block_size: int = 1024  # anchors per block right-hand side
    seed: int = 0

    def __post_init__(self):
        _validate(self)


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning on mined tuples (docs/method.md §7-§10)."""

    pools: PoolKind = "mom"  # mom | euclidean (the baseline, same code path)
    loss: LossName = "triplet"  # triplet | contrastive (docs/method.md §8)
    margin: float = 0.5
    n_negatives: int = 1  # negatives per tuple (contrastive uses 5)
    hard_negatives: int = 10  # negative drawn among this many nearest P- members
    embedding_dim: int = 64
    # pooling of the trained network; None = the mining descriptor's (embed.pooling
    # and embed.scales). The paper trains GoogLeNet + average pooling ("gap") at
    # image_size while mining used multi-scale R-MAC (docs/method.md §9): set "gap" there.
    pooling: PoolingName | None = None
    head_init: HeadInit = "pca"  # pca (label-free, from training features) | random
    trainable: str = "all"  # all | head | last:K (last K backbone blocks + head)
    freeze_bn: bool = True  # keep BN statistics frozen (docs/method.md §15)
    epochs: int = 100
    batch_size: int = 42
    # tuples per epoch: None = one per training image; an integer = that many; a number
    # in (0, 1) = that fraction of the training images (at least one batch)
    tuples_per_epoch: int | float | None = None
    lr: float = 0.01
    momentum: float = 0.9
    dampening: float = 0.9
    weight_decay: float = 5e-4
    lr_step_epoch: int = 50
    lr_gamma: float = 0.1
    # positive weights w+ in the loss: "raw" = f(r)_j as the release (mean ~0.1 for MoM,
    # 1 for the Euclidean baseline); "mean1" = each epoch's weights rescaled to mean 1,
    # so that one learning rate means the same step for both pool sources
    weights: TupleWeights = "raw"
    image_size: int = 64  # train crop size (paper: 227)
    augment: bool = True  # RandomResizedCrop + horizontal flip
    seed: int = 8
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    num_workers: int = 0
    amp: bool = False  # mixed precision (float16 autocast + grad scaling), CUDA only
    # tuples per forward/backward pass: None = the whole batch at once; a smaller number
    # accumulates the batch's gradient over micro-batches (the same step, less memory:
    # the activations of micro_batch tuples; needs freeze_bn, docs/method.md §9)
    micro_batch: int | None = None
    # label-free safeguard (mom/guard.py, docs/method.md §10a): "holdout" keeps
    # guard_fraction of the anchors out of training and returns the epoch whose
    # tuple loss on them is lowest (the untrained network included); "none": the last epoch
    guard: GuardName = "none"
    guard_fraction: float = 0.1

    def __post_init__(self):
        _validate(self)
        if self.micro_batch is not None and not self.freeze_bn:
            raise ValueError(f"TrainConfig.micro_batch: {self.micro_batch} needs freeze_bn true "
                             "(micro-batches would change the batch-norm statistics of a step)")

    def epoch_tuples(self, n: int) -> int:
        """Tuples per epoch for ``n`` training images (``tuples_per_epoch`` resolved)."""
        t = self.tuples_per_epoch
        if t is None:
            return n
        if isinstance(t, float):  # a fraction of the images, at least one batch
            return max(self.batch_size, round(t * n))
        return t


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation protocol (docs/method.md §11)."""

    ks: tuple[int, ...] = (1, 2, 4, 8)
    nmi_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)

    def __post_init__(self):
        _validate(self)


ROW_NAMES = ("euclidean", "mom")  # the trained rows of a run (pipeline.METHODS)
# train fields a row may not set for itself: the study sets pools and seed, both rows
# start from one initial model (the architecture fields), and how a stage runs is not
# part of a setting
_ROW_FIXED = ("pools", "seed", "embedding_dim", "head_init", "pooling", "image_size",
              "device", "num_workers")
# dataclass field metadata: ``field(..., metadata={NEUTRAL: value})`` declares the value
# at which the field changes nothing (the behaviour from before it existed). Cache keys
# (mom.pipeline.stage_key over the sections) leave such a field out while it holds that
# value, so adding a field never moves the keys of existing results.
NEUTRAL = "neutral"


@dataclass(frozen=True)
class RowsConfig:
    """Each trained row's own training settings (docs/method.md §10b): ``train`` fields
    set for that row only, on top of the ``train`` section, e.g. the learning rate and
    length its study selected on validation classes. Empty: both rows train with the
    ``train`` section as it is.

    In a parameter file: ``rows: {euclidean: {lr: 0.01}, mom: {lr: 0.03, epochs: 2}}``.
    Held as sorted ``((field, value), ...)`` pairs (hashable, saved as a mapping).
    """

    euclidean: tuple[tuple[str, Any], ...] = ()
    mom: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self):
        names = {f.name for f in fields(TrainConfig)}
        for row in ROW_NAMES:
            value = getattr(self, row)
            where = f"RowsConfig.{row}"
            if value is None:
                value = ()
            if isinstance(value, Mapping):
                value = tuple(value.items())
            if not isinstance(value, (tuple, list)) or not all(
                    isinstance(p, (tuple, list)) and len(p) == 2 for p in value):
                raise ValueError(f"{where}: expected a mapping of train fields, got {value!r}")
            pairs = {}
            for key, v in value:
                key = str(key).removeprefix("train.")
                if key not in names:
                    raise ValueError(f"{where}: {key!r} is not a train field; known: "
                                     f"{sorted(names - set(_ROW_FIXED))}")
                if key in _ROW_FIXED:
                    raise ValueError(f"{where}: {key!r} cannot differ between the rows "
                                     f"(fixed for both: {', '.join(_ROW_FIXED)})")
                if key in pairs:
                    raise ValueError(f"{where}: {key!r} is given twice")
                try:  # the field's own type and range
                    pairs[key] = getattr(TrainConfig(**{key: _coerce(TrainConfig, key, v)}), key)
                except ValueError as exc:
                    raise ValueError(f"{where}: {exc}") from None
            object.__setattr__(self, row, tuple(sorted(pairs.items())))

    def of(self, row: str) -> dict[str, Any]:
        """The train fields ``row`` sets for itself (``{}``: none)."""
        if row not in ROW_NAMES:
            raise ValueError(f"unknown row {row!r}: use one of {ROW_NAMES}")
        return dict(getattr(self, row))


@dataclass(frozen=True)
class RunConfig:
    """Everything one end-to-end run needs; saved beside its results."""

    name: str = "default"
    data: DataConfig = field(default_factory=DataConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    mining: MiningConfig = field(default_factory=MiningConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    rows: RowsConfig = field(default_factory=RowsConfig, metadata={NEUTRAL: RowsConfig()})

    def __post_init__(self):
        _validate(self)
        for row in ROW_NAMES:  # a row's setting must make a valid train section
            try:
                self.row_train(row)
            except ValueError as exc:
                raise ValueError(f"rows.{row}: {exc}") from None

    def row_train(self, row: str, **changes: Any) -> TrainConfig:
        """The train section that row ``row`` ("euclidean" or "mom") trains with: ``train``
        with ``pools=row`` and the row's own fields of ``rows``, then ``changes`` (train
        fields set last, e.g. a shorter run's ``epochs``)."""
        return replace(self.train, pools=row, **{**self.rows.of(row), **changes})


_SECTION_CLASSES = {
    "data": DataConfig,
    "embed": EmbedConfig,
    "mining": MiningConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
    "rows": RowsConfig,
}

PARAMS_DIR = Path(__file__).resolve().parent / "params"


# ---------------------------------------------------------------- field checks
# (text, test) of the numbers a field accepts; a tuple field's rule applies to each
# element. Every int/float field has a rule (tests/test_config.py checks that).
_Rule = tuple[str, Callable[[Any], bool]]
_POSITIVE: _Rule = ("> 0", lambda v: v > 0)
_NON_NEGATIVE: _Rule = (">= 0", lambda v: v >= 0)
_AT_LEAST_1: _Rule = (">= 1", lambda v: v >= 1)
_IMAGE_SIZE: _Rule = (">= 8 (the smallest image the transforms accept)", lambda v: v >= 8)
_RULES: dict[str, dict[str, _Rule]] = {
    "DataConfig": {"per_class": _AT_LEAST_1,
                   "classes": ("a training class id 0-4", lambda v: 0 <= v <= 4)},
    "EmbedConfig": {"gem_p": _POSITIVE, "rmac_levels": _AT_LEAST_1, "scales": _POSITIVE,
                    "image_size": _IMAGE_SIZE, "whiten_dim": _AT_LEAST_1,
                    "batch_size": _AT_LEAST_1, "num_workers": _NON_NEGATIVE},
    "MiningConfig": {"k_graph": (">= 2 (the point itself and a neighbour)", lambda v: v >= 2),
                     "gamma": _POSITIVE, "alpha": ("strictly between 0 and 1", lambda v: 0 < v < 1),
                     "cg_iterations": _AT_LEAST_1, "cg_tol": _NON_NEGATIVE, "k_pos": _AT_LEAST_1,
                     "k_neg": _AT_LEAST_1, "pool_size": _AT_LEAST_1, "n_anchors": _AT_LEAST_1,
                     "power_iterations": _AT_LEAST_1, "block_size": _AT_LEAST_1,
                     "knn_nprobe": _AT_LEAST_1, "knn_nlist": _AT_LEAST_1,
                     "seed": _NON_NEGATIVE},
    "TrainConfig": {"margin": _NON_NEGATIVE, "n_negatives": _AT_LEAST_1,
                    "hard_negatives": _AT_LEAST_1, "embedding_dim": _AT_LEAST_1,
                    "epochs": _AT_LEAST_1, "batch_size": _AT_LEAST_1,
                    "tuples_per_epoch": (">= 1 (a count) or a fraction in (0, 1)",
                                         lambda v: v >= 1 if isinstance(v, int) else 0 < v < 1),
                    "guard_fraction": ("strictly between 0 and 0.5", lambda v: 0 < v < 0.5),
                    "lr": _POSITIVE,
                    "momentum": ("in [0, 1)", lambda v: 0 <= v < 1),
                    "dampening": ("in [0, 1]", lambda v: 0 <= v <= 1),
                    "weight_decay": _NON_NEGATIVE, "lr_step_epoch": _AT_LEAST_1,
                    "lr_gamma": _POSITIVE, "image_size": _IMAGE_SIZE, "seed": _NON_NEGATIVE,
                    "num_workers": _NON_NEGATIVE, "micro_batch": _AT_LEAST_1},
    "EvalConfig": {"ks": _AT_LEAST_1, "nmi_seeds": _NON_NEGATIVE},
}
# string fields with a syntax rather than a list of names: (pattern, what it accepts)
_PATTERNS: dict[str, tuple[re.Pattern, str]] = {
    "device": (re.compile(r"auto|cpu|mps|cuda(:\d+)?"), "auto, cpu, cuda, cuda:N or mps"),
    "trainable": (re.compile(r"all|head|last:\d+"), "all, head or last:K (K a whole number)"),
}


@functools.lru_cache(maxsize=None)
def _hints(cls) -> dict[str, Any]:
    # the annotations are strings (from __future__ import annotations): evaluate them once
    return get_type_hints(cls)


def choices(cls, name: str) -> tuple[str, ...] | None:
    """The names field ``name`` of config class ``cls`` accepts, or None when it is
    not an enum-like (``Literal``) field. ``choices(MiningConfig, "anchors")``."""
    hint = _hints(cls)[name]
    if get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in get_args(hint) if a is not type(None))
    return get_args(hint) if get_origin(hint) is Literal else None


def _conform(where: str, hint: Any, value: Any) -> Any:
    """``value`` checked against the type ``hint`` (ints/floats/tuples normalised); else ValueError."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (typing.Union, types.UnionType):  # X | None, int | Literal["auto"], ...
        if value is None and type(None) in args:
            return None
        alts = [a for a in args if a is not type(None)]
        errors = []
        for alt in alts:
            try:
                return _conform(where, alt, value)
            except ValueError as exc:
                errors.append(str(exc).removeprefix(where + ": expected "))
        if len(alts) == 1:
            raise ValueError(f"{where}: expected {errors[0]}")
        others = " or ".join(e.split(", got ")[0] for e in errors[1:])
        raise ValueError(f"{where}: expected {errors[0]} (or {others})")
    if origin is Literal:
        if not isinstance(value, str) or value not in args:
            raise ValueError(f"{where}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        if not value:
            raise ValueError(f"{where}: must not be empty")
        return tuple(_conform(f"{where}[{i}]", args[0], v) for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool) and type(value).__name__ != "bool_":  # numpy.bool_
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return bool(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(hint, type) and not isinstance(value, hint):  # RunConfig's sections
        raise ValueError(f"{where}: expected a {hint.__name__}, got {type(value).__name__}")
    return value


def _validate(cfg) -> None:
    """Check (and normalise: list -> tuple, path -> str, numpy scalar -> Python) every
    field of a config dataclass; raise ValueError naming ``Class.field``."""
    cls = type(cfg)
    rules = _RULES.get(cls.__name__, {})
    for f in fields(cfg):
        where = f"{cls.__name__}.{f.name}"
        value = getattr(cfg, f.name)
        if f.name == "device" and not isinstance(value, str) and hasattr(value, "type"):
            value = str(value)  # a torch.device
        value = _conform(where, _hints(cls)[f.name], value)
        if isinstance(value, (int, float, tuple)) and not isinstance(value, bool) and f.name in rules:
            text, test = rules[f.name]
            for i, v in enumerate(value if isinstance(value, tuple) else (value,)):
                if not test(v):
                    at = f"{where}[{i}]" if isinstance(value, tuple) else where
                    raise ValueError(f"{at}: must be {text}, got {v!r}")
        if value is not None and f.name in _PATTERNS:
            pattern, text = _PATTERNS[f.name]
            if not pattern.fullmatch(value):
                raise ValueError(f"{where}: expected {text}, got {value!r}")
        if value is not getattr(cfg, f.name):
            object.__setattr__(cfg, f.name, value)  # frozen: normalised once, here


def parse_bool(text: str) -> bool:
    """"true"/"false" (also 1/0, yes/no, any case) -> bool; anything else: ValueError."""
    low = text.lower()
    if low not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"expected a boolean (true/false), got {text!r}")
    return low in ("true", "1", "yes")


def _coerce(cls, name: str, value: Any) -> Any:
    """Turn a YAML/CLI value into the type the field declares; a value that cannot be
    converted raises ValueError naming ``Class.field`` (range checks: ``__post_init__``)."""
    default = {f.name: f for f in fields(cls)}[name].default
    where = f"{cls.__name__}.{name}"
    if isinstance(value, str) and value in _literal_names(cls, name):
        return value  # k_pos: auto
    if isinstance(default, tuple):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]  # eval.ks=4 means (4,)
        if isinstance(value, (list, tuple)):
            if not default:
                return tuple(value)
            return tuple(_convert(f"{where}[{i}]", type(default[0]), v) for i, v in enumerate(value))
        return value
    if isinstance(default, bool):
        if isinstance(value, str):
            try:
                return parse_bool(value)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
        return bool(value) if isinstance(value, (int, float)) else value
    if isinstance(default, (int, float)) and isinstance(value, (int, float, str)) \
            and not isinstance(value, bool):
        return _convert(where, type(default), value)
    if isinstance(value, str) and value.lower() in ("none", "null"):
        return None
    return value


def _convert(where: str, kind: type, value: Any) -> Any:
    if kind is int and isinstance(value, float):
        return value  # 2.5 -> "expected an integer" from __post_init__, not a silent 2
    try:
        return kind(value)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number" if kind is float else kind.__name__
        raise ValueError(f"{where}: expected {what}, got {value!r}") from None


def _literal_names(cls, name: str) -> tuple:
    """Every name a ``Literal`` alternative of field ``name`` accepts (``int | Literal["auto"]``)."""
    hint = _hints(cls)[name]
    args = get_args(hint) if get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return tuple(v for a in args if get_origin(a) is Literal for v in get_args(a))


def _takes_text(cls, name: str) -> bool:
    """Whether field ``name`` holds a string (possibly optional or one of a few names)."""
    hint = _hints(cls)[name]
    args = get_args(hint) if get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return any(a is str or get_origin(a) is Literal for a in args)


def _section_from_dict(cls, values: Mapping[str, Any] | None, where: str):
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
    try:
        return cls(**{k: _coerce(cls, k, v) for k, v in values.items()})
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def config_from_dict(d: Mapping[str, Any], where: str = "config") -> RunConfig:
    """Build a RunConfig from a nested mapping (as read from YAML or JSON)."""
    d = dict(d)
    unknown = sorted(set(d) - set(_SECTION_CLASSES) - {"name"})
    if unknown:
        raise ValueError(f"{where}: unknown section(s) {unknown}; known: {sorted(_SECTION_CLASSES)}")
    kwargs: dict[str, Any] = {"name": str(d.get("name", "custom"))}
    for sec, cls in _SECTION_CLASSES.items():
        kwargs[sec] = _section_from_dict(cls, d.get(sec), f"{where} [{sec}]")
    return RunConfig(**kwargs)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-JSON dict of any config dataclass (tuples become lists; a ``RowsConfig``
    becomes ``{row: {field: value}}``)."""
    d = asdict(cfg)
    if isinstance(cfg, RowsConfig):
        d = {row: cfg.of(row) for row in ROW_NAMES}
    elif isinstance(cfg, RunConfig):
        d["rows"] = {row: cfg.rows.of(row) for row in ROW_NAMES}
    return json.loads(json.dumps(d))


def key_dict(cfg: RunConfig) -> dict[str, Any]:
    """``config_to_dict(cfg)`` without the fields at their declared ``NEUTRAL`` value, in
    every section and at the top: what a hash of a whole configuration should cover."""
    d = config_to_dict(cfg)
    for name in neutral_fields(cfg):
        d.pop(name)
    for sec in _SECTION_CLASSES:
        for name in neutral_fields(getattr(cfg, sec)):
            d[sec].pop(name)
    return d


def neutral_fields(cfg: Any) -> tuple[str, ...]:
    """The fields of config dataclass ``cfg`` that hold their declared ``NEUTRAL`` value
    (left out of cache keys: see ``NEUTRAL``)."""
    return tuple(f.name for f in fields(cfg)
                 if NEUTRAL in f.metadata and getattr(cfg, f.name) == f.metadata[NEUTRAL])


def load_params(name_or_path: str | Path) -> RunConfig:
    """Load ``smoke``/``default``/``paper`` (bundled) or a YAML file path."""
    p = Path(name_or_path)
    if not p.suffix and not p.is_file():
        p = PARAMS_DIR / f"{name_or_path}.yaml"
    if not p.is_file():
        avail = sorted(q.stem for q in PARAMS_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"parameter file {str(name_or_path)!r} not found; bundled: {avail}")
    with open(p) as fh:
        try:
            d = yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{p}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{p}: expected a mapping at the top level")
    d.setdefault("name", p.stem)
    return config_from_dict(d, where=str(p))


def apply_overrides(cfg: RunConfig, overrides: list[str] | Mapping[str, Any]) -> RunConfig:
    """Apply ``section.field=value`` overrides, e.g. ``["train.epochs=2"]``."""
    items = overrides.items() if isinstance(overrides, Mapping) else (
        _split_override(o) for o in overrides
    )
    for key, value in items:
        if "." not in key:
            raise ValueError(f"override {key!r}: expected section.field=value")
        sec, name = key.split(".", 1)
        if sec not in _SECTION_CLASSES:
            raise ValueError(f"override {key!r}: unknown section {sec!r}")
        cls = _SECTION_CLASSES[sec]
        if name not in {f.name for f in fields(cls)}:
            raise ValueError(f"override {key!r}: {cls.__name__} has no field {name!r}")
        if isinstance(value, str) and value.strip():
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError as exc:
                raise ValueError(f"override {key!r}: {value!r} is not a YAML value "
                                 f"({' '.join(str(exc).split())})") from None
            # a string field keeps the text as typed: data.root=2024 is a folder, not a number
            value = value.strip() if _takes_text(cls, name) and isinstance(parsed, (bool, int, float)) \
                else parsed
        section = getattr(cfg, sec)
        try:  # a value of the wrong type or out of range fails here, naming the key
            cfg = replace(cfg, **{sec: replace(section, **{name: _coerce(cls, name, value)})})
        except ValueError as exc:
            raise ValueError(f"override {key!r}: {exc}") from None
    return cfg


def _split_override(o: str) -> tuple[str, str]:
    if "=" not in o:
        raise ValueError(f"override {o!r}: expected section.field=value")
    k, v = o.split("=", 1)
    return k.strip(), v


