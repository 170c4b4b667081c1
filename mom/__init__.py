"""mom: Mining on Manifolds (Iscen et al., CVPR 2018), a reproducible companion.

One shape for every stage, ``stage(data, cfg, *, device=..., progress=...)``, with the
stage's config dataclass second::

    feats = mom.embed(train_ds, cfg.embed)              # (N, D) descriptors
    pools = mom.mine(feats, cfg.mining)                 # P+ / P- (and the Euclidean baseline)
    result = mom.fit(cfg, train_ds, pools)              # the model, trained on the MoM pools
    metrics = mom.evaluate(test_emb, test_labels, cfg.eval)

The public names are re-exported here; each lives in the module named after its
concept (see docs/design.md).
"""
from .config import (DataConfig, EmbedConfig, EvalConfig, MiningConfig, RunConfig,
                     TrainConfig, load_params)

from .version import __version__


def __getattr__(name):
    # Lazy: importing torch costs seconds, so mining-only users never pay for it, and
    # scipy + faiss (mining) most of a second, so `mom --help` does not either.
    # No module shares a name with these functions (extraction is mom.extract, training
    # from a config mom.finetune, the metrics mom.metrics, the study mom.studies), so an
    # imported submodule never replaces one of them.
    if name in ("mine", "Pools"):
        from . import mining
        return getattr(mining, name)
    if name == "embed":
        from .extract import embed
        return embed
    if name == "Whitening":
        from .whitening import Whitening
        return Whitening
    if name == "fit":
        from .finetune import fit
        return fit
    if name == "evaluate":
        from .metrics import evaluate_embeddings
        return evaluate_embeddings
    if name == "run":
        from .pipeline import run
        return run
    if name == "build_splits":
        from .datasets.splits import build_splits
        return build_splits
    if name in ("study", "StudyConfig", "load_study"):
        from . import studies
        return getattr(studies, name)
    raise AttributeError(f"module 'mom' has no attribute {name!r}")


__all__ = ["DataConfig", "EmbedConfig", "EvalConfig", "MiningConfig", "RunConfig",
           "TrainConfig", "load_params", "embed", "Whitening", "mine", "Pools", "fit",
           "evaluate", "build_splits", "run", "study", "StudyConfig", "load_study"]
