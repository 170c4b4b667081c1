"""Atomic file writes, JSON/NPZ helpers, hashes and environment records.

Every file the package writes goes through :func:`atomic_write`: the bytes land
in a temporary file in the target's directory and replace the target only once
they are complete and flushed, so an interrupted run never leaves a truncated
result behind. The file gets the permissions a plain ``open(path, "w")`` would
give it: an existing file's mode, else ``0o666 & ~umask``.
:func:`check_output_path` tells, before any work, whether a path can be written.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import math
import os
import platform
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = ["atomic_write", "check_output_path", "remove_stale_temps", "save_json", "load_json", "save_npy", "save_npz",
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
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)  # mode 0600
    try:
        os.fchmod(fd, _plain_write_mode(path))
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


def _umask() -> int:
    """The process umask (read without changing it where /proc tells it)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore
    os.umask(mask)
    return mask


def _plain_write_mode(path: Path) -> int:
    """The mode ``open(path, "w")`` leaves: an existing file's, else 0666 & ~umask."""
    try:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode):
            return stat.S_IMODE(st.st_mode)
    except OSError:
        pass
    return 0o666 & ~_umask()


def check_output_path(path: str | os.PathLike, kind: str = "file", what: str = "output") -> Path:
    """Refuse, before any work, an output ``path`` that cannot be written as a ``kind``.

    ``kind="file"``: ``path`` must not be a directory and its directory must exist
    (as :func:`atomic_write` needs). ``kind="dir"``: ``path`` must be a directory or
    not exist yet (it is created later, parents included). Either way no part of the
    path may be an existing file, and the folder that will hold the output must be
    writable. Returns ``Path(path)``; raises ValueError naming the path, after ``what``
    (e.g. the command-line flag, ``"--out"``). Creates nothing.
    """
    if kind not in ("file", "dir"):
        raise ValueError(f"check_output_path: kind must be 'file' or 'dir', got {kind!r}")
    p = Path(path)
    name = str(path)
    if not name:
        raise ValueError(f"{what}: the path is empty")
    if p.is_dir():
        if kind == "file":
            raise ValueError(f"{what} {name!r} is a directory; expected a file path")
        holder = p
    elif p.exists() or p.is_symlink():
        if kind == "dir":
            raise ValueError(f"{what} {name!r} exists and is not a directory; expected a folder")
        holder = p.parent
    else:
        holder = Path(os.path.abspath(p)).parent
        while not holder.exists():  # the nearest part of the path that exists
            holder = holder.parent
        if not holder.is_dir():
            raise ValueError(f"{what} {name!r}: {str(holder)!r} is a file, not a directory")
        if kind == "file" and holder != Path(os.path.abspath(p)).parent:
            parent = str(p.parent) if str(p.parent) else "."
            raise ValueError(f"{what} {name!r}: directory {parent!r} does not exist")
    if not os.access(holder, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {name!r}: directory {str(holder)!r} is not writable")
    return p


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
