"""Frozen, typed configuration for every stage, and the parameter files.

Each stage has one small frozen dataclass. Every paper hyperparameter is a
field with the paper's value (SPEC.md) as its default, so nothing is hidden
inside a function. ``RunConfig`` groups the stages; it is what the parameter
files ``params/{smoke,default,paper}.yaml`` hold and what is saved beside
every result.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = [
    "DataConfig",
    "EmbedConfig",
    "MiningConfig",
    "TrainConfig",
    "EvalConfig",
    "RunConfig",
    "PARAMS_DIR",
    "load_params",
    "apply_overrides",
    "config_to_dict",
    "config_from_dict",
]


@dataclass(frozen=True)
class DataConfig:
    """Which images: ``dataset`` is one of ``fashion_mnist`` (offline default),
    ``cub200``, ``roxford5k``, ``rparis6k``, ``folder``."""

    dataset: str = "fashion_mnist"
    root: str | None = None  # None: bundled subset for fashion_mnist; required otherwise
    # fashion_mnist only: "bundled" (ships with the package) or "full" (IDX files)
    source: str = "bundled"
    # fashion_mnist only: images per class taken from the source (None = all)
    per_class: int | None = None
    download: bool = False
    # retrieval datasets only: an image folder of unlabeled training images
    # (default: mine and train on the searched database itself)
    train_root: str | None = None


@dataclass(frozen=True)
class EmbedConfig:
    """Descriptor extraction (SPEC section 2)."""

    backbone: str = "efficientnet_lite0"
    weights: str | None = None  # a local weights file; None = the backbone's default
    pooling: str = "gap"  # gap | mac | gem | rmac
    gem_p: float = 3.0
    rmac_levels: int = 3
    scales: tuple[float, ...] = (1.0,)  # multi-scale: image_size * s, summed then L2
    image_size: int = 64
    whitening: bool = False  # PCA-whitening learned on the training split
    whiten_dim: int | None = None
    batch_size: int = 128
    num_workers: int = 0
    device: str = "auto"


@dataclass(frozen=True)
class MiningConfig:
    """Graph, diffusion, anchors and pools (SPEC sections 3-6)."""

    k_graph: int = 30  # kNN including the point itself
    gamma: float = 3.0
    alpha: float = 0.99
    cg_iterations: int = 20
    cg_tol: float = 1e-10
    solver: str = "cg"  # "cg" (truncated, faithful) | "exact" (sparse direct solve)
    cg_dtype: str = "float32"  # CG working precision: float32 (half the memory traffic) | float64 (as the release)
    cg_backend: str = "torch"  # block CG kernels: torch (CPU or CUDA, faster) | numpy (scipy.sparse)
    k_pos: int = 50
    k_neg: int = 100  # capped at ceil(N/2)
    pool_size: int = 50
    anchors: str = "all"  # all | stationary | random
    n_anchors: int = 1500
    power_iterations: int = 1000
    knn_index: str = "flat"  # flat (exact) | ivf | hnsw
    block_size: int = 1024  # anchors per block right-hand side
    seed: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning on mined tuples (SPEC sections 7-8)."""

    pools: str = "mom"  # mom | euclidean (the baseline, same code path)
    loss: str = "triplet"  # triplet (SPEC 7) | contrastive (SPEC 8)
    margin: float = 0.5
    n_negatives: int = 1  # negatives per tuple (contrastive uses 5)
    hard_negatives: int = 10  # negative drawn among this many nearest P- members
    embedding_dim: int = 64
    # pooling of the trained network; None = the mining descriptor's (embed.pooling
    # and embed.scales). SPEC 7 trains GoogLeNet + average pooling ("gap") at
    # image_size while mining used multi-scale R-MAC: set "gap" there.
    pooling: str | None = None
    head_init: str = "pca"  # pca (label-free, from training features) | random
    trainable: str = "all"  # all | head | last:K (last K backbone blocks + head)
    freeze_bn: bool = True  # keep BN statistics frozen (SPEC 11)
    epochs: int = 100
    batch_size: int = 42
    tuples_per_epoch: int | None = None  # None = number of training images
    lr: float = 0.01
    momentum: float = 0.9
    dampening: float = 0.9
    weight_decay: float = 5e-4
    lr_step_epoch: int = 50
    lr_gamma: float = 0.1
    # positive weights w+ in the loss: "raw" = f(r)_j as the release (mean ~0.1 for MoM,
    # 1 for the Euclidean baseline); "mean1" = each epoch's weights rescaled to mean 1,
    # so that one learning rate means the same step for both pool sources
    weights: str = "raw"
    image_size: int = 64  # train crop size (paper: 227)
    augment: bool = True  # RandomResizedCrop + horizontal flip
    seed: int = 8
    device: str = "auto"
    num_workers: int = 0
    amp: bool = False  # mixed precision (float16 autocast + grad scaling), CUDA only


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation protocol (SPEC section 9)."""

    ks: tuple[int, ...] = (1, 2, 4, 8)
    nmi_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class RunConfig:
    """Everything one end-to-end run needs; saved beside its results."""

    name: str = "default"
    data: DataConfig = field(default_factory=DataConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    mining: MiningConfig = field(default_factory=MiningConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


_SECTION_CLASSES = {
    "data": DataConfig,
    "embed": EmbedConfig,
    "mining": MiningConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
}

PARAMS_DIR = Path(__file__).resolve().parent / "params"


def parse_bool(text: str) -> bool:
    """"true"/"false" (also 1/0, yes/no, any case) -> bool; anything else: ValueError."""
    low = text.lower()
    if low not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"expected a boolean (true/false), got {text!r}")
    return low in ("true", "1", "yes")


def _coerce(cls, name: str, value: Any) -> Any:
    """Turn a YAML/CLI value into the type the field declares."""
    default = {f.name: f for f in fields(cls)}[name].default
    if isinstance(default, tuple) and isinstance(value, (list, tuple)):
        return tuple(type(default[0])(v) if default else v for v in value)
    if isinstance(default, bool):
        if isinstance(value, str):
            try:
                return parse_bool(value)
            except ValueError as exc:
                raise ValueError(f"{cls.__name__}.{name}: {exc}") from None
        return bool(value)
    if isinstance(default, float) and isinstance(value, (int, float, str)):
        return float(value)
    if isinstance(default, int) and isinstance(value, (int, str)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.lower() in ("none", "null"):
        return None
    return value


def _section_from_dict(cls, values: Mapping[str, Any] | None, where: str):
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
    return cls(**{k: _coerce(cls, k, v) for k, v in values.items()})


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
    """Plain-JSON dict of any config dataclass (tuples become lists)."""
    return json.loads(json.dumps(asdict(cfg)))


def load_params(name_or_path: str | Path) -> RunConfig:
    """Load ``smoke``/``default``/``paper`` (bundled) or a YAML file path."""
    p = Path(name_or_path)
    if not p.suffix and not p.is_file():
        p = PARAMS_DIR / f"{name_or_path}.yaml"
    if not p.is_file():
        avail = sorted(q.stem for q in PARAMS_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"parameter file {str(name_or_path)!r} not found; bundled: {avail}")
    with open(p) as fh:
        d = yaml.safe_load(fh) or {}
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
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip() else value
        section = getattr(cfg, sec)
        cfg = replace(cfg, **{sec: replace(section, **{name: _coerce(cls, name, value)})})
    return cfg


def _split_override(o: str) -> tuple[str, str]:
    if "=" not in o:
        raise ValueError(f"override {o!r}: expected section.field=value")
    k, v = o.split("=", 1)
    return k.strip(), v


# dataclasses.replace is the way to derive a variant; re-exported for notebooks
derive = dataclasses.replace
