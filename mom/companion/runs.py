"""End-to-end runs cached by configuration, and what a run folder holds.

The notebooks share runs: Table 1, the ablation, the galleries and the
inspector all need ``mom.pipeline.run`` for the same configuration. A run
folder is named after a hash of the whole configuration and the package
version, so a cached run is reused only for exactly the configuration that
made it; any other configuration gets a new folder. The code itself is not
part of the key (a batch must not split when someone commits mid-way): after
changing the code, delete the runs folder, or give ``reproduce`` a fresh
``out_dir`` (CI does).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RunConfig, config_from_dict, config_to_dict
from ..io import load_json

__all__ = ["config_key", "run_dir_for", "cached_run", "finished_runs", "load_run", "RunArtifacts"]


def config_key(cfg: RunConfig) -> str:
    """12 hex digits of SHA-256 over the configuration and the package version."""
    from ..config import key_dict  # fields at their neutral value leave the key unchanged
    from ..version import __version__
    blob = json.dumps({"config": key_dict(cfg), "mom": __version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def run_dir_for(cfg: RunConfig, runs_dir: str | Path) -> Path:
    """``runs_dir/<name>-<config_key>``: the folder a run of ``cfg`` lives in."""
    return Path(runs_dir) / f"{cfg.name}-{config_key(cfg)}"


def cached_run(cfg: RunConfig, runs_dir: str | Path, *, progress: bool = False) -> tuple[dict, Path]:
    """``(results, run_dir)``: the results of ``mom.pipeline.run(cfg)``, computed once.

    A finished run (``results.json`` whose recorded config equals ``cfg``) is
    loaded; otherwise the pipeline runs into the folder, reusing the stages an
    interrupted run of ``cfg`` finished there (``mom.pipeline.run`` resumes by
    default; a training continues from its checkpoint). Mining descriptors are
    cached in ``runs_dir/cache`` (keyed by the embed config and the data).
    """
    from ..pipeline import run
    out = run_dir_for(cfg, runs_dir)
    done = out / "results.json"
    if done.is_file():
        results = load_json(done)
        if results.get("config") == config_to_dict(cfg):
            return results, out
    cache = Path(runs_dir) / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    return run(cfg, out, progress=progress, cache_dir=cache), out


def finished_runs(runs_dir: str | Path) -> list[Path]:
    """Run folders directly under ``runs_dir`` that hold a ``results.json``, sorted."""
    return sorted(p.parent for p in Path(runs_dir).glob("*/results.json"))


@dataclass(frozen=True)
class RunArtifacts:
    """What a finished run folder holds, loaded: its results, config, training
    descriptors (N, D), pools (with the Euclidean baseline) and test embeddings."""

    run_dir: Path
    results: dict[str, Any]
    config: RunConfig
    features: np.ndarray
    pools: Any

    def test_embeddings(self, row: str) -> np.ndarray:
        """Test-split embeddings of ``row`` ("initial" | "euclidean" | "mom"). (N, d)"""
        path = self.run_dir / "features" / f"test_{row}.npy"
        if not path.is_file():
            raise ValueError(f"{path} does not exist: the run has no row {row!r}")
        return np.load(path, allow_pickle=False)


def load_run(run_dir: str | Path) -> RunArtifacts:
    """Load a finished ``mom.pipeline.run`` folder (results.json, features, pools)."""
    from ..mining import Pools
    run_dir = Path(run_dir)
    missing = [p for p in ("results.json", "features/train.npy", "pools.npz")
               if not (run_dir / p).is_file()]
    if missing:
        raise ValueError(f"{run_dir} is not a finished run folder: missing {missing}")
    results = load_json(run_dir / "results.json")
    return RunArtifacts(run_dir=run_dir, results=results,
                        config=config_from_dict(results["config"], where=str(run_dir / "results.json")),
                        features=np.load(run_dir / "features" / "train.npy", allow_pickle=False),
                        pools=Pools.load(run_dir / "pools.npz"))
