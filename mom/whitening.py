"""PCA, and PCA-whitening of descriptors learned on the training images (docs/method.md §2).

``pca`` is the package's one principal component analysis (also the PCA head of
``mom/model.py: pca_head`` and the 2-D projection of ``mom/companion/viz.py: project_2d``).
``learn_whitening`` returns ``(mean, P)`` with ``P`` of shape (d, D); applying
it is ``l2n((x - mean) @ P.T)``. ``Whitening`` holds one fitted pair: it is learned on
the training split only (``Whitening.fit``) and then applied to any split, so that
``mom.embed`` never learns a whitening from the images it embeds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["pca", "learn_whitening", "apply_whitening", "Whitening", "l2n_np"]


def l2n_np(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of (N, D) scaled to unit L2 norm, float32."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def pca(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``dim`` principal components of the rows of ``x`` (N, D), in float64.

    Returns ``mean`` (D,), ``components`` (dim, D) orthonormal rows ordered by
    variance, descending, and ``variances`` (dim,), the variance of the centred rows
    along each (population: singular value squared over N, the eigenvalues of
    ``cov(x, bias=True)``). Computed by the SVD of ``x - mean``. Signs are
    deterministic: in each component the entry of largest magnitude (the first such
    one) is positive. Projecting is ``(x - mean) @ components.T``.
    Raises ValueError unless ``x`` is a 2-D array and 1 <= dim <= min(N, D).
    """
    x = np.asarray(x, dtype=np.float64)  # (N, D)
    if x.ndim != 2:
        raise ValueError(f"pca: expected an (N, D) array, got shape {x.shape}")
    n, d_in = x.shape
    if not 1 <= dim <= min(n, d_in):
        raise ValueError(f"pca: dim={dim} must be in 1..min(N={n}, D={d_in})")
    mean = x.mean(axis=0)  # (D,)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)  # rows of vt: directions, by variance
    p = vt[:dim]  # (dim, D)
    p *= np.sign(p[np.arange(dim), np.abs(p).argmax(axis=1)])[:, None]  # deterministic signs
    return mean, p, s[:dim] ** 2 / n


def learn_whitening(features: np.ndarray, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """PCA-whitening of (N, D) ``features`` to ``dim`` dimensions.

    Returns ``mean`` (D,) and ``P`` (d, D) float32 whose rows are the top-d
    principal directions scaled by 1/sqrt(eigenvalue), so the whitened training
    features have identity covariance. ``dim=None`` keeps min(D, N - 1).
    Raises ValueError if ``dim`` exceeds the rank the data can support or the
    features are not finite.
    """
    x = np.asarray(features, dtype=np.float64)  # (N, D)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"learn_whitening: need (N >= 2, D) features, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("learn_whitening: features contain NaN or inf")
    n, d_in = x.shape
    d = min(d_in, n - 1) if dim is None else int(dim)
    if not 1 <= d <= min(d_in, n - 1):
        raise ValueError(f"learn_whitening: dim={dim} must be in 1..{min(d_in, n - 1)} "
                         f"for {n} features of dimension {d_in}")
    mean, vecs, vals = pca(x, d)  # (D,), (d, D), (d,) descending
    floor = max(vals[0], 1e-30) * 1e-9
    if vals[-1] <= floor:
        raise ValueError(f"learn_whitening: only {(vals > floor).sum()} directions carry variance; "
                         f"ask for dim <= that (got dim={d})")
    p = vecs / np.sqrt(vals)[:, None]  # (d, D)
    return mean.astype(np.float32), p.astype(np.float32)


def apply_whitening(x: np.ndarray, mean: np.ndarray, P: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, d): centre, project with ``P``, L2-normalise rows."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[1] != P.shape[1]:
        raise ValueError(f"apply_whitening: features have {x.shape[1]} dims, P expects {P.shape[1]}")
    return l2n_np((x - mean) @ P.T)


@dataclass(frozen=True, eq=False)
class Whitening:
    """A fitted PCA-whitening: ``mean`` (D,) and ``projection`` (d, D), float32.

    Example: ``w = Whitening.fit(train_raw, 512); mom.embed(test, cfg, whitening=w)``.
    """

    mean: np.ndarray
    projection: np.ndarray

    @classmethod
    def fit(cls, descriptors: np.ndarray, dim: int | None = None) -> "Whitening":
        """Learn it on the (N, D) raw training descriptors (:func:`learn_whitening`)."""
        return cls(*learn_whitening(descriptors, dim))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, d) whitened, rows L2-normalised (:func:`apply_whitening`)."""
        return apply_whitening(x, self.mean, self.projection)
