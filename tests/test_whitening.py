"""PCA-whitening: decorrelates the training features; layer form agrees."""
import numpy as np
import pytest
import torch

from mom.whitening import apply_whitening, learn_whitening, pca


def _correlated(n=500, d=6, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) * np.array([5.0, 2.0, 1.0, 0.5, 0.2, 0.1])[:d]
    return (rng.normal(size=(n, d)) @ mix + 3.0).astype(np.float32)  # (N, D)


def test_whitened_training_features_have_identity_covariance():
    x = _correlated()
    mean, P = learn_whitening(x)
    assert mean.shape == (6,) and P.shape == (6, 6) and P.dtype == np.float32
    y = (x - mean) @ P.T  # before the L2 step
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(np.cov(y, rowvar=False, bias=True), np.eye(6), atol=2e-3)


def test_reduced_dim_keeps_the_leading_directions():
    x = _correlated()
    mean, P = learn_whitening(x, dim=2)
    y = (x - mean) @ P.T  # (N, 2)
    np.testing.assert_allclose(np.cov(y, rowvar=False, bias=True), np.eye(2), atol=2e-3)
    # the kept directions carry the most variance: unwhitened projections' variances
    var = ((x - mean) @ (P / np.linalg.norm(P, axis=1, keepdims=True)).T).var(axis=0)
    all_var = np.linalg.eigvalsh(np.cov(x, rowvar=False, bias=True))[::-1]
    np.testing.assert_allclose(var, all_var[:2], rtol=1e-3)


def test_apply_whitening_rows_unit():
    x = _correlated()
    mean, P = learn_whitening(x, dim=4)
    z = apply_whitening(x[:10], mean, P)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(z, (x[:10] - mean) @ P.T / np.linalg.norm(
        (x[:10] - mean) @ P.T, axis=1, keepdims=True), rtol=1e-4, atol=1e-5)


def test_whitening_rejects_bad_input():
    x = _correlated(n=5, d=6)
    with pytest.raises(ValueError, match="dim=5 must be in 1..4"):
        learn_whitening(x, dim=5)
    bad = _correlated()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        learn_whitening(bad)
    rank1 = np.outer(np.arange(10.0), np.ones(3))
    with pytest.raises(ValueError, match="carry variance"):
        learn_whitening(rank1, dim=2)
    mean, P = learn_whitening(_correlated(), dim=3)
    with pytest.raises(ValueError, match="P expects 6"):
        apply_whitening(np.ones((2, 5)), mean, P)


def test_pca_components_variances_and_signs():
    x = _correlated().astype(np.float64)
    mean, comps, var = pca(x, 3)
    assert mean.shape == (6,) and comps.shape == (3, 6) and var.shape == (3,)
    np.testing.assert_allclose(mean, x.mean(axis=0))
    np.testing.assert_allclose(comps @ comps.T, np.eye(3), atol=1e-12)  # orthonormal rows
    vals, vecs = np.linalg.eigh(np.cov(x, rowvar=False, bias=True))
    np.testing.assert_allclose(var, vals[::-1][:3], rtol=1e-10)  # descending, population variance
    np.testing.assert_allclose(np.abs(comps @ vecs[:, ::-1][:, :3]), np.eye(3), atol=1e-8)
    top = comps[np.arange(3), np.abs(comps).argmax(axis=1)]
    assert (top > 0).all()  # the largest loading of each component is positive
    mean_w, P = learn_whitening(x, dim=3)  # whitening uses the same directions and signs
    np.testing.assert_allclose(P, comps / np.sqrt(var)[:, None], rtol=1e-6)
    with pytest.raises(ValueError, match="dim=7"):
        pca(x, 7)


def test_fitted_whitening_is_the_pair_of_learn_and_apply():
    from mom.whitening import Whitening
    train, other = _correlated(seed=0), _correlated(n=50, seed=1)
    w = Whitening.fit(train, dim=4)
    mean, P = learn_whitening(train, dim=4)
    np.testing.assert_array_equal(w.mean, mean)
    np.testing.assert_array_equal(w.projection, P)
    np.testing.assert_array_equal(w.apply(other), apply_whitening(other, mean, P))
