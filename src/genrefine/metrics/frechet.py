"""Frechet distance between Gaussian fits of two samples (the FID formula, in any features).

.. math::
    d_F^2(\\mathcal N(\\mu_1, \\Sigma_1), \\mathcal N(\\mu_2, \\Sigma_2))
      = \\lVert \\mu_1 - \\mu_2 \\rVert^2
      + \\operatorname{Tr}\\big(\\Sigma_1 + \\Sigma_2 - 2 (\\Sigma_1 \\Sigma_2)^{1/2}\\big),

the squared 2-Wasserstein distance between the two Gaussians (Dowson & Landau 1982;
Heusel et al. 2017 compute it in Inception features and call it FID). genrefine computes it
in the features of a network trained on the data itself (:class:`FeatureNet`), or in raw
coordinates for tabular data.

The trace of the matrix square root is computed without the non-symmetric product: with
``R = Σ1^{1/2}`` (symmetric, by eigendecomposition), ``Σ1 Σ2 = R (R Σ2 R) R^{-1}`` is similar
to the symmetric positive semi-definite ``R Σ2 R``, so ``Tr (Σ1 Σ2)^{1/2} = Σ_i sqrt(λ_i)``
over the eigenvalues ``λ_i >= 0`` of ``R Σ2 R``. Two ``eigh`` calls, no complex parts, no
iterative ``sqrtm`` (which loses accuracy and returns complex noise on singular covariances,
e.g. always-black pixels).
"""

from __future__ import annotations

import numpy as np

from genrefine.validation import check_array, check_weights

__all__ = ["frechet_distance", "gaussian_fit", "gaussian_frechet"]


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues
    below zero by rounding are clipped to zero)."""
    lam, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(lam, 0.0, None))) @ v.T


def gaussian_fit(x, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of ``x`` (shape ``(n, d)``), float64.

    Unweighted: the unbiased covariance (``ddof = 1``, as ``np.cov`` and the FID code).
    With ``weights`` (normalised to ``a``, sum 1): ``mu = Σ a_i x_i`` and the unbiased
    reliability-weighted covariance ``Σ a_i (x_i - mu)(x_i - mu)^T / (1 - Σ a_i^2)``, which
    reduces to the unweighted one for equal weights.
    """
    x = np.asarray(check_array(x, name="x", min_rows=2), dtype=np.float64)
    if weights is None:
        a = np.full(len(x), 1.0 / len(x))
    else:
        a = np.asarray(check_weights(weights, name="weights", n=len(x)), dtype=np.float64)
        a = a / a.sum()
    mu = a @ x
    xc = x - mu
    denom = 1.0 - float(np.sum(a**2))
    if denom <= 0:
        raise ValueError("weights: all the mass is on one point, the covariance is undefined")
    return mu, (xc * a[:, None]).T @ xc / denom


def gaussian_frechet(mu1, cov1, mu2, cov2) -> float:
    """``|mu1 - mu2|^2 + Tr(cov1 + cov2 - 2 (cov1 cov2)^{1/2})`` for PSD ``cov1, cov2`` (d x d).

    The trace of the square root is the sum of square roots of the eigenvalues of
    ``cov1^{1/2} cov2 cov1^{1/2}`` (see the module docstring). The result is clamped at 0
    against rounding.

    Example:
        >>> gaussian_frechet(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2))  # 2 + 2 (2-1)^2
        4.0
    """
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    c1, c2 = np.asarray(cov1, dtype=np.float64), np.asarray(cov2, dtype=np.float64)
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or c1.shape != (d, d) or c2.shape != (d, d):
        raise ValueError(f"gaussian_frechet: expected means (d,) and covariances (d, d), got "
                         f"{mu1.shape}, {c1.shape}, {mu2.shape}, {c2.shape}")
    r = _psd_sqrt(c1)
    m = r @ c2 @ r
    lam = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = float(np.sum(np.sqrt(np.clip(lam, 0.0, None))))
    value = float(np.sum((mu1 - mu2) ** 2) + np.trace(c1) + np.trace(c2) - 2.0 * tr_sqrt)
    return max(value, 0.0)


def frechet_distance(x, y, weights_x=None, weights_y=None) -> float:
    """Frechet distance between Gaussian fits of two samples (shapes ``(n, d)``, ``(m, d)``).

    ``gaussian_frechet(*gaussian_fit(x, weights_x), *gaussian_fit(y, weights_y))``: squared
    units of the coordinates (FID convention: no square root). Biased upwards at finite
    ``n`` (two samples of one law score ``~ Tr Σ`` terms of order ``d / n``), which is why
    :func:`genrefine.metrics.score_suite` reports it beside its truth-against-truth floor.
    Cost ``O(n d^2 + d^3)``: features of tens to a few hundred dimensions.
    """
    x = check_array(x, name="x", min_rows=2)
    y = check_array(y, name="y", min_rows=2, dim=x.shape[1])
    return gaussian_frechet(*gaussian_fit(x, weights_x), *gaussian_fit(y, weights_y))
