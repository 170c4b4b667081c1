"""The file formats of the authors' release (MATLAB mining, Python training).

The release exchanges two kinds of data, both read and written here:

* **Descriptors**: a MAT-file such as ``googlenet_rmac_ms_pcaw512_CUB.mat`` holding a
  variable ``V`` of shape D x N, one L2-normalised *column* per image. Files come as
  MATLAB v5 (read with ``scipy.io.loadmat``) or v7.3 (HDF5 behind a 512-byte
  userblock, read with ``h5py``). MATLAB stores arrays column-major, so in HDF5 a D x N
  array is a dataset of shape (N, D): h5py's view is already one row per image, while
  loadmat's (D, N) is transposed. :func:`load_mat_features` returns (N, D) float32 from
  either; the version is detected from the file's bytes, not its name.

* **Pools**: the five text files written by the release's ``mom_CUB.m``, line ``i`` of
  each belonging to anchor ``i``::

      anchors.txt   one 1-based image index per line
      pos.txt       P+ of the anchor: 1-based indices joined by ", "
      neg.txt       P- of the anchor, the same way
      posw.txt      the weights of P+ (manifold similarity), "%.6f" joined by ", "
      negw.txt      one "%.6f" value per P- member

  In memory (:class:`mom.mining.Pools`) every index is 0-based; on disk 1-based.

Choices where our pools and the release differ, all visible in the files:

* ``negw.txt``: the release writes the manifold similarity f(r)_j of each negative
  there, and its training ignores it (the weighted triplet loss multiplies by the
  positive's weight only). Our pools keep no negative weights: a negative is by
  construction outside the anchor's top-k- manifold neighbours, where the truncated
  diffusion computes no value. :func:`save_release` therefore writes ``0.000000`` for
  every negative ("not a manifold neighbour", which is also how :mod:`mom.mining`
  treats f <= 0), so the file has the release's shape and a consumer that reads it as a
  similarity is not misled. :func:`load_release` checks ``negw.txt`` when present
  (same line count, one value per negative) and then drops it; it may be absent.
* Everything else a ``Pools`` holds goes beside the five files, which stay exactly the
  release's: ``mom.json`` (method, number of skipped anchors, the MiningConfig, whether
  there is a baseline) and, when the pools have a Euclidean baseline, the same files
  under ``euclidean/`` (read back only when ``mom.json`` says so). A folder without
  ``mom.json`` (a real release) loads as ``method="mom"``, ``n_skipped=0``, no baseline
  and the default ``MiningConfig`` (the paper's values, the release's CUB settings;
  docs/method.md §16). The stationary vector is not saved. Each file is written
  atomically, the folder is not.
* Indices are joined by ", " as ``mom_CUB.m`` writes them; on reading, any spaces
  around the commas, CRLF line ends and trailing blank lines are accepted. An anchor
  with an empty pool (the release never writes one, ``mine`` skips them) is an empty
  line.

:func:`compare_pools` compares two sets of pools anchor by anchor (Jaccard index of
P+ and of P-, Spearman correlation of the weights of the shared P+ members) and
:func:`format_comparison` prints the result as a table; :func:`load_pools` reads
either a ``.npz`` written by ``Pools.save`` or a release folder.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .config import MiningConfig
from .io import atomic_write

__all__ = ["load_mat_features", "save_release", "load_release", "load_pools", "is_release_dir",
           "compare_pools", "format_comparison", "RELEASE_FILES"]

RELEASE_FILES = ("anchors.txt", "pos.txt", "neg.txt", "posw.txt", "negw.txt")
META_FILE = "mom.json"  # ours, beside the release's files
BASELINE_DIR = "euclidean"
_SEP = ", "  # mom_CUB.m: fprintf(fid, '%d, ', ...)
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_INT = re.compile(r"[+-]?[0-9]+")


# ---------------------------------------------------------------- descriptors
def _mat_version(path: Path) -> str:
    """"7.3" (HDF5 superblock at 0, 512, 1024 or 2048), "5" (v5 header), else ValueError."""
    with open(path, "rb") as fh:
        head = fh.read(2056)
    if any(head[o:o + 8] == _HDF5_SIGNATURE for o in (0, 512, 1024, 2048)):
        return "7.3"
    if len(head) >= 128 and head[126:128] in (b"IM", b"MI"):
        order = "little" if head[126:128] == b"IM" else "big"
        if int.from_bytes(head[124:126], order) == 0x0100:
            return "5"
    raise ValueError(f"{str(path)!r} is neither a MATLAB v5 nor a v7.3 (HDF5) MAT-file")


def _features_array(x, path: Path, var: str, layout: str) -> np.ndarray:
    """Check a loaded MATLAB numeric matrix; (N, D) float32 from ``layout`` "DxN"/"NxD"."""
    if x.dtype.kind not in "fiu":
        raise ValueError(f"{str(path)!r}: variable {var!r} is not a real numeric array "
                         f"(dtype {x.dtype})")
    if x.ndim != 2:
        raise ValueError(f"{str(path)!r}: variable {var!r} is not 2-D (D x N): shape "
                         f"{x.shape if layout == 'DxN' else x.shape[::-1]} in MATLAB order")
    if x.size == 0:
        raise ValueError(f"{str(path)!r}: variable {var!r} is empty")
    x = x.T if layout == "DxN" else x
    return np.ascontiguousarray(x, dtype=np.float32)


def load_mat_features(path, var: str = "V") -> np.ndarray:
    """Descriptors from a MAT-file (v5 or v7.3) as (N, D) float32, one row per image.

    ``var`` names a D x N MATLAB matrix (a column per image, as the release's
    ``googlenet_rmac_ms_pcaw512_CUB.mat``). No normalisation is checked or applied
    here (``mom.knn.check_features`` does that). A missing variable, one that is not
    a 2-D real matrix, or a file of neither format raises ValueError naming the file.
    Example: ``x = load_mat_features("googlenet_rmac_ms_pcaw512_CUB.mat")``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MAT-file {str(path)!r} does not exist")
    if _mat_version(path) == "7.3":
        import h5py
        with h5py.File(path, "r") as f:
            if var not in f or not isinstance(f[var], h5py.Dataset):
                names = sorted(k for k in f.keys() if not k.startswith("#"))
                raise ValueError(f"{str(path)!r}: no matrix variable {var!r} "
                                 f"(has: {', '.join(names) or 'none'})")
            ds = f[var]
            cls = ds.attrs.get("MATLAB_class", b"")
            cls = cls.decode() if isinstance(cls, bytes) else str(cls)
            if cls in ("char", "logical", "cell", "struct") or "MATLAB_empty" in ds.attrs:
                raise ValueError(f"{str(path)!r}: variable {var!r} is not a numeric matrix "
                                 f"(MATLAB class {cls or 'unknown'}"
                                 f"{', empty' if 'MATLAB_empty' in ds.attrs else ''})")
            if ds.dtype.names:  # complex numbers are a compound of real and imag
                raise ValueError(f"{str(path)!r}: variable {var!r} is not a real numeric array")
            return _features_array(ds[()], path, var, layout="NxD")
    import scipy.io
    import scipy.sparse
    names = [name for name, _, _ in scipy.io.whosmat(path)]
    if var not in names:
        raise ValueError(f"{str(path)!r}: no variable {var!r} (has: {', '.join(names) or 'none'})")
    x = scipy.io.loadmat(path, variable_names=[var])[var]
    if scipy.sparse.issparse(x):
        raise ValueError(f"{str(path)!r}: variable {var!r} is a sparse matrix, "
                         "expected a dense D x N one")
    return _features_array(np.asarray(x), path, var, layout="DxN")


# ---------------------------------------------------------------- pools: write
def _ints_line(ids) -> str:
    return _SEP.join(str(int(i) + 1) for i in ids) + "\n"


def _floats_line(values) -> str:
    return _SEP.join(f"{float(v):.6f}" for v in values) + "\n"


def _write_text(path: Path, lines) -> None:
    with atomic_write(path, "w") as fh:
        fh.writelines(lines)


def save_release(pools, directory) -> Path:
    """Write ``pools`` as the release's five text files into ``directory`` (created).

    1-based indices, weights ``%.6f``, ``negw.txt`` all zeros (see the module
    docstring), plus ``mom.json`` and the baseline under ``euclidean/`` when present.
    Every file is written atomically. Returns the directory as a Path, so that
    ``load_release(save_release(p, d))`` round-trips (weights to 6 decimals).
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"save_release: {str(directory)!r} exists and is not a folder")
    directory.mkdir(parents=True, exist_ok=True)
    anchors = np.asarray(pools.anchors, np.int64)
    if anchors.size and anchors.min() < 0:
        raise ValueError("save_release: negative anchor index in the pools")
    _write_text(directory / "anchors.txt", (f"{int(a) + 1}\n" for a in anchors))
    _write_text(directory / "pos.txt", (_ints_line(p) for p in pools.positives))
    _write_text(directory / "neg.txt", (_ints_line(n) for n in pools.negatives))
    _write_text(directory / "posw.txt", (_floats_line(w) for w in pools.positive_weights))
    _write_text(directory / "negw.txt", (_floats_line(np.zeros(len(n))) for n in pools.negatives))
    meta = {"format": "mom release pools (1-based text files of the authors' release)",
            "method": pools.method, "n_skipped": int(pools.n_skipped),
            "config": asdict(pools.config), "has_baseline": pools.baseline is not None,
            "negw": "zeros: negative weights are not kept by mom (see mom.release)"}
    with atomic_write(directory / META_FILE, "w") as fh:
        fh.write(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    if pools.baseline is not None:
        save_release(pools.baseline, directory / BASELINE_DIR)
    return directory


# ---------------------------------------------------------------- pools: read
def is_release_dir(path) -> bool:
    """True when ``path`` is a folder holding ``anchors.txt``."""
    return Path(path).is_dir() and (Path(path) / "anchors.txt").is_file()


def _read_lines(path: Path, n: int | None = None) -> list[str]:
    """Lines of a text file; beyond the first ``n`` only blank ones are allowed (dropped)."""
    if not path.is_file():
        raise ValueError(f"{str(path)!r} does not exist (a release folder holds "
                         f"{', '.join(RELEASE_FILES[:4])} and optionally negw.txt)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not a text file: {exc}") from exc
    keep = 0 if n is None else n
    while len(lines) > keep and not lines[-1].strip():
        lines.pop()
    return lines


def _parse_ints(line: str, path: Path, lineno: int) -> list[int]:
    out = []
    for tok in (line.split(",") if line.strip() else []):
        tok = tok.strip()
        if not _INT.fullmatch(tok):
            raise ValueError(f"{str(path)!r} line {lineno}: {tok!r} is not an integer index")
        value = int(tok)
        if value < 1:
            raise ValueError(f"{str(path)!r} line {lineno}: index {value} < 1 (indices are 1-based)")
        out.append(value - 1)
    return out


def _parse_floats(line: str, path: Path, lineno: int) -> list[float]:
    out = []
    for tok in (line.split(",") if line.strip() else []):
        tok = tok.strip()
        try:
            value = float(tok)
        except ValueError:
            raise ValueError(f"{str(path)!r} line {lineno}: {tok!r} is not a number") from None
        if not np.isfinite(value):
            raise ValueError(f"{str(path)!r} line {lineno}: weight {tok!r} is not finite")
        out.append(value)
    return out


def _read_pool_pair(directory: Path, ids_name: str, w_name: str, n: int, required: bool):
    """Per-anchor id lists from ``ids_name`` and, if present/required, weights from ``w_name``."""
    ids_path, w_path = directory / ids_name, directory / w_name
    ids_lines = _read_lines(ids_path, n)
    anchors_path = directory / "anchors.txt"
    if len(ids_lines) != n:
        raise ValueError(f"{str(ids_path)!r}: {len(ids_lines)} lines but {str(anchors_path)!r} has "
                         f"{n} anchors (line {min(len(ids_lines), n) + 1} has no counterpart)")
    ids = [_parse_ints(line, ids_path, k) for k, line in enumerate(ids_lines, 1)]
    if not required and not w_path.is_file():
        return ids, None
    w_lines = _read_lines(w_path, n)
    if len(w_lines) != n:
        raise ValueError(f"{str(w_path)!r}: {len(w_lines)} lines but {str(anchors_path)!r} has "
                         f"{n} anchors (line {min(len(w_lines), n) + 1} has no counterpart)")
    weights = []
    for k, (line, members) in enumerate(zip(w_lines, ids), 1):
        w = _parse_floats(line, w_path, k)
        if len(w) != len(members):
            raise ValueError(f"{str(w_path)!r} line {k}: {len(w)} weights but {str(ids_path)!r} "
                             f"line {k} has {len(members)} indices")
        weights.append(w)
    return ids, weights


def _ragged(lists, dtype):
    offsets = np.zeros(len(lists) + 1, np.int64)
    offsets[1:] = np.cumsum([len(x) for x in lists])
    flat = np.fromiter((v for x in lists for v in x), dtype=dtype, count=int(offsets[-1]))
    return offsets, flat


def load_release(directory):
    """Read pools from a release folder (``anchors.txt``, ``pos.txt``, ``neg.txt``,
    ``posw.txt``, optional ``negw.txt``) into a 0-based :class:`mom.mining.Pools`.

    ``mom.json`` and ``euclidean/`` are used when present (written by
    :func:`save_release`); a real release folder loads with ``method="mom"``,
    ``n_skipped=0`` and the default MiningConfig. A line count that differs from
    ``anchors.txt``, a non-integer or < 1 index, a duplicate anchor, or a weights line
    whose length differs from its pool's raises ValueError naming file and line.
    Example: ``pools = load_release("data/")`` after the release's ``mom_CUB.m``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"release folder {str(directory)!r} does not exist or is not a folder")
    return _load_release_dir(directory, method=None)


def _load_release_dir(directory: Path, method: str | None):
    from .mining import Pools
    anchors_path = directory / "anchors.txt"
    anchors, seen = [], {}
    for k, line in enumerate(_read_lines(anchors_path), 1):
        ids = _parse_ints(line, anchors_path, k)
        if len(ids) != 1:
            raise ValueError(f"{str(anchors_path)!r} line {k}: expected one anchor index, got "
                             f"{len(ids)} ({line.strip()!r})")
        if ids[0] in seen:
            raise ValueError(f"{str(anchors_path)!r} line {k}: anchor {ids[0] + 1} already on "
                             f"line {seen[ids[0]]}")
        seen[ids[0]] = k
        anchors.append(ids[0])
    n = len(anchors)
    pos, posw = _read_pool_pair(directory, "pos.txt", "posw.txt", n, required=True)
    neg, _ = _read_pool_pair(directory, "neg.txt", "negw.txt", n, required=False)
    meta = _read_meta(directory / META_FILE)
    method = method or meta.get("method", "mom")
    try:
        cfg = MiningConfig(**meta["config"]) if "config" in meta else MiningConfig()
        n_skipped = int(meta.get("n_skipped", 0))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{str(directory / META_FILE)!r}: not written by save_release ({exc})") from exc
    po, pi = _ragged(pos, np.int64)
    _, pw = _ragged(posw, np.float32)
    no, ni = _ragged(neg, np.int64)
    baseline = None
    if meta.get("has_baseline") and method != "euclidean":
        baseline = _load_release_dir(directory / BASELINE_DIR, method="euclidean")
    return Pools(np.asarray(anchors, np.int64), po, pi, pw, no, ni, n_skipped=n_skipped,
                 method=method, config=cfg, baseline=baseline)


def _read_meta(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"{str(path)!r}: expected a JSON object")
    return meta


def load_pools(path):
    """Pools from a release folder (a directory with ``anchors.txt``) or a ``.npz``
    written by ``Pools.save``; anything else raises ValueError naming ``path``."""
    from .mining import Pools
    path = Path(path)
    if path.is_dir():
        if not is_release_dir(path):
            raise ValueError(f"{str(path)!r} is a folder without anchors.txt: not a release folder")
        return load_release(path)
    if not path.is_file():
        raise ValueError(f"pools {str(path)!r} do not exist (expected a .npz or a release folder)")
    return Pools.load(path)


# ---------------------------------------------------------------- comparison
def _members(off, flat, rows) -> tuple[np.ndarray, np.ndarray]:
    """(pair index, member) of every member of the chosen CSR rows, pair i for rows[i]."""
    off, rows = np.asarray(off, np.int64), np.asarray(rows, np.int64)
    sizes = off[rows + 1] - off[rows]
    pair = np.repeat(np.arange(rows.size, dtype=np.int64), sizes)
    start = np.repeat(off[rows] - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
    return pair, np.asarray(flat, np.int64)[start + np.arange(pair.size)]


def _jaccard(a_off, a_ids, b_off, b_ids, rows_a, rows_b) -> np.ndarray:
    """Per pair of rows (rows_a[i] of a, rows_b[i] of b): |A & B| / |A | B| (1 when both empty)."""
    m = len(rows_a)
    pa, ma = _members(a_off, a_ids, rows_a)
    pb, mb = _members(b_off, b_ids, rows_b)
    width = max(int(max(ma.max(initial=0), mb.max(initial=0))) + 1, 1)
    ka, kb = np.unique(pa * width + ma), np.unique(pb * width + mb)  # sets: one key per member
    inter = np.bincount(np.intersect1d(ka, kb, assume_unique=True) // width, minlength=m)
    union = np.bincount(ka // width, minlength=m) + np.bincount(kb // width, minlength=m) - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN for < 2 values or a constant side."""
    if x.size < 2:
        return float("nan")
    from scipy.stats import rankdata
    rx, ry = rankdata(x) - (x.size + 1) / 2, rankdata(y) - (y.size + 1) / 2
    den = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    return float((rx * ry).sum() / den) if den > 0 else float("nan")


def _nanmean(v) -> float:
    v = np.asarray(v, float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")


def compare_pools(a, b) -> dict:
    """Compare two sets of pools anchor by anchor (e.g. ours against the release's).

    For each anchor present in both (``anchors``, sorted, 0-based): ``jaccard_pos`` and
    ``jaccard_neg`` (|A & B| / |A | B| of the member sets, 1 when both are empty) and
    ``spearman_pos_weights`` (Spearman correlation of the weights that ``a`` and ``b``
    give the P+ members they share; NaN with fewer than two shared members or constant
    weights), with ``n_common_pos`` the number of shared members. Means over anchors
    (NaN-aware) are ``*_mean``; ``only_a``/``only_b`` are the anchors in one set only.
    """
    ia = {int(x): i for i, x in enumerate(a.anchors)}
    ib = {int(x): i for i, x in enumerate(b.anchors)}
    common = np.array(sorted(ia.keys() & ib.keys()), np.int64)
    rows_a = np.array([ia[int(x)] for x in common], np.int64)
    rows_b = np.array([ib[int(x)] for x in common], np.int64)
    jp = _jaccard(a.pos_offsets, a.pos_ids, b.pos_offsets, b.pos_ids, rows_a, rows_b)
    jn = _jaccard(a.neg_offsets, a.neg_ids, b.neg_offsets, b.neg_ids, rows_a, rows_b)
    rho = np.full(common.size, np.nan)
    n_shared = np.zeros(common.size, np.int64)
    for i, (ra, rb) in enumerate(zip(rows_a, rows_b)):
        pa, wa = a.positives[ra], a.positive_weights[ra]
        pb, wb = b.positives[rb], b.positive_weights[rb]
        shared, xa, xb = np.intersect1d(pa, pb, assume_unique=False, return_indices=True)
        n_shared[i] = shared.size
        rho[i] = _spearman(np.asarray(wa, float)[xa], np.asarray(wb, float)[xb])
    only_a = np.array(sorted(ia.keys() - ib.keys()), np.int64)
    only_b = np.array(sorted(ib.keys() - ia.keys()), np.int64)
    return {"anchors": common, "n_common": int(common.size),
            "only_a": only_a, "only_b": only_b,
            "n_only_a": int(only_a.size), "n_only_b": int(only_b.size),
            "jaccard_pos": jp, "jaccard_neg": jn, "spearman_pos_weights": rho,
            "n_common_pos": n_shared,
            "jaccard_pos_mean": _nanmean(jp), "jaccard_neg_mean": _nanmean(jn),
            "spearman_pos_weights_mean": _nanmean(rho),
            "n_spearman": int(np.isfinite(rho).sum())}


def format_comparison(result: dict, names: tuple[str, str] = ("A", "B")) -> str:
    """A text table of :func:`compare_pools`' result: mean, median, min, max per measure."""
    def row(label, values, note=""):
        v = np.asarray(values, float)
        v = v[np.isfinite(v)]
        if v.size == 0:
            return f"{label:<22}{'-':>8}{'-':>8}{'-':>8}{'-':>8}  {note}".rstrip()
        return (f"{label:<22}{v.mean():8.3f}{np.median(v):8.3f}{v.min():8.3f}{v.max():8.3f}"
                f"  {note}").rstrip()

    a, b = names
    lines = [f"pools {a} vs {b}: {result['n_common']} common anchors, "
             f"{result['n_only_a']} only in {a}, {result['n_only_b']} only in {b}",
             f"{'':<22}{'mean':>8}{'median':>8}{'min':>8}{'max':>8}",
             row("P+ Jaccard", result["jaccard_pos"]),
             row("P- Jaccard", result["jaccard_neg"]),
             row("P+ weights Spearman", result["spearman_pos_weights"],
                 f"({result['n_spearman']} anchors with >= 2 shared P+ members)")]
    return "\n".join(lines)
