"""Atomic file writes, JSON/NPZ helpers, hashes and environment records.

Every file the package writes goes through :func:`atomic_write`: the bytes land
in a temporary file in the target's directory and replace the target only once
they are complete and flushed, so an interrupted run never leaves a truncated
result behind.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = ["atomic_write", "remove_stale_temps", "save_json", "load_json", "save_npy", "save_npz",
           "load_npz", "file_digests", "sha256_file", "env_info"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Yield a file object on a temp file beside ``path``; on success fsync and
    ``os.replace`` it onto ``path``; on any exception remove the temp file and
    re-raise (OSErrors such as a full disk are re-raised naming ``path``).

    Example::

        with atomic_write("out.json", "w") as fh:
            fh.write("{}")
    """
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"atomic_write({path}): mode must be 'w', 'wt' or 'wb', got {mode!r}")
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"atomic_write: directory {str(directory)!r} of {str(path)!r} does not exist")
    prefix, suffix = _temp_affixes(path)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    try:
        kwargs = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        raise OSError(exc.errno, f"writing {str(path)!r} failed: {exc.strerror or exc}") from exc
    except BaseException:
        _remove_quietly(tmp)
        raise


def _temp_affixes(path: Path) -> tuple[str, str]:
    """(prefix, suffix) of the temp files :func:`atomic_write` writes beside ``path``."""
    return f".{path.name}.", ".tmp"


def remove_stale_temps(path: str | os.PathLike) -> None:
    """Delete the temp files :func:`atomic_write` left beside ``path`` when the process
    writing it was killed (no ``finally`` ran); ``path`` itself is untouched."""
    path = Path(path)
    prefix, suffix = _temp_affixes(path)
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*{glob.escape(suffix)}"):
        tmp.unlink(missing_ok=True)


def _remove_quietly(tmp: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(tmp)


def _json_default(obj: Any) -> Any:
    # numpy scalars/arrays and paths appear in results; write them as plain JSON
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def _strict(obj: Any) -> Any:
    # strict JSON has no NaN/Infinity: a missing number (e.g. a metric the paper
    # did not report) is written as null rather than as an unreadable token
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if isinstance(obj, (np.generic, np.ndarray)):
        return _strict(_json_default(obj))
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def save_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as strict JSON (indent 2, sorted keys, NaN/inf as null) atomically."""
    text = json.dumps(_strict(obj), indent=2, sort_keys=True, default=_json_default,
                      allow_nan=False)
    with atomic_write(path, "w") as fh:
        fh.write(text + "\n")


def load_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a malformed file raises ValueError naming it."""
    with open(path, encoding="utf-8") as fh:
        try:
            return json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{str(path)!r} is not valid JSON: {exc}") from exc


def save_npy(path: str | os.PathLike, array: Any) -> None:
    """Write one array as ``.npy`` atomically (``path`` is used as is)."""
    with atomic_write(path, "wb") as fh:
        np.save(fh, np.asarray(array))


def save_npz(path: str | os.PathLike, **arrays: Any) -> None:
    """Write arrays to an uncompressed ``.npz`` atomically (``path`` is used as is)."""
    with atomic_write(path, "wb") as fh:
        np.savez(fh, **arrays)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` into a dict (no pickles allowed)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def file_digests(path: str | os.PathLike, algorithms: tuple[str, ...] = ("md5", "sha256"),
                 chunk: int = 1 << 20) -> dict[str, str]:
    """Hex digests of a file's bytes, ``{algorithm: hex}``, in one read."""
    hashes = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            for h in hashes.values():
                h.update(block)
    return {name: h.hexdigest() for name, h in hashes.items()}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    return file_digests(path, ("sha256",))["sha256"]


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except Exception:  # not installed or broken: record absence, do not fail
        return None
    return getattr(mod, "__version__", None)


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def env_info() -> dict[str, Any]:
    """Versions of python, torch, numpy, faiss, mom and the git commit (None if unknown)."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": _version("torch"),
        "numpy": np.__version__,
        "faiss": _version("faiss"),
        "mom": _version("mom"),
        "git_commit": _git_commit(),
    }
