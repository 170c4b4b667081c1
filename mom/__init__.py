"""mom: Mining on Manifolds (Iscen et al., CVPR 2018), a reproducible companion.

The public names are re-exported here; each lives in the module named after
its concept (see docs/design.md).
"""
from .config import (DataConfig, EmbedConfig, EvalConfig, MiningConfig, RunConfig,
                     TrainConfig, load_params)

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy: importing torch costs seconds, so mining-only users never pay for it, and
    # scipy + faiss (mining) most of a second, so `mom --help` does not either.
    # (The extraction module is mom.extract so that mom.embed stays this function.)
    if name in ("mine", "Pools"):
        from . import mining
        return getattr(mining, name)
    if name == "embed":
        from .extract import embed
        return embed
    if name == "run":
        from .pipeline import run
        return run
    if name in ("study", "StudyConfig", "load_study"):
        # the module is mom.studies, so that mom.study stays this function
        from . import studies
        return getattr(studies, name)
    raise AttributeError(f"module 'mom' has no attribute {name!r}")


__all__ = ["DataConfig", "EmbedConfig", "EvalConfig", "MiningConfig", "RunConfig",
           "TrainConfig", "load_params", "Pools", "mine", "embed", "run", "study",
           "StudyConfig", "load_study"]
