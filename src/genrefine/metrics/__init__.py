"""Scores for generated samples (flat functional API, numpy arrays or torch tensors in).

Binned 2-D scores as in the LaSeR paper (Sec. 4.2), with a ``"prob"`` and a ``"paper"``
convention (see :mod:`genrefine.metrics.histogram` and docs/laser_scoring_conventions.md):

- :func:`hist_jsd`, :func:`hist_emd` -- Jensen-Shannon divergence and earth mover's
  distance between 2-D histograms (optional sample weights, e.g. DCTR).
- :func:`marginal_jsd` -- mean JSD of the 1-D histograms of each coordinate (any dimension).
- :func:`score_with_error` -- a score together with its finite-sample floor.
- :func:`hist2d`, :func:`make_edges`, :func:`data_range`, :func:`resolve_range`,
  :func:`bin_centers`, :data:`PAPER_RANGES`, :data:`PAPER_BINS` -- histogram helpers.

Sample-based distances (:mod:`genrefine.metrics.distances`):

- :func:`exact_emd` -- exact Wasserstein-1 between point sets (Euclidean ground cost).
- :func:`energy_distance` -- multivariate energy distance (V-statistic).
- :func:`precision_recall` -- k-NN precision and recall (k = 3).

Any dimension (:mod:`~genrefine.metrics.c2st`, :mod:`~genrefine.metrics.frechet`,
:mod:`~genrefine.metrics.features`, :mod:`~genrefine.metrics.suite`):

- :func:`c2st_auc`, :func:`roc_auc` -- classifier two-sample test, held-out ROC AUC.
- :func:`frechet_distance`, :func:`gaussian_frechet`, :func:`gaussian_fit` -- Frechet
  distance between Gaussian fits (FID formula, any features).
- :class:`FeatureNet` -- a small CNN trained on the images themselves (classifier with
  labels, autoencoder without) whose ``features(x)`` feed the scores above.
- :func:`score_suite` -- every score that fits the dimension, each with its truth-against-
  truth floor; :func:`rank_methods` -- methods ordered by one score.
"""

from genrefine.metrics.c2st import c2st_auc, roc_auc
from genrefine.metrics.distances import energy_distance, exact_emd
from genrefine.metrics.features import FeatureNet
from genrefine.metrics.frechet import frechet_distance, gaussian_fit, gaussian_frechet
from genrefine.metrics.histogram import (
    PAPER_BINS,
    PAPER_JSD_EPS,
    PAPER_RANGES,
    bin_centers,
    data_range,
    hist2d,
    hist_emd,
    hist_jsd,
    make_edges,
    marginal_jsd,
    resolve_range,
    score_with_error,
)
from genrefine.metrics.precision_recall import precision_recall
from genrefine.metrics.suite import DEFAULT_SIZES, SCORE_DIRECTIONS, rank_methods, score_suite

__all__ = [
    "DEFAULT_SIZES",
    "PAPER_BINS",
    "PAPER_JSD_EPS",
    "PAPER_RANGES",
    "SCORE_DIRECTIONS",
    "bin_centers",
    "c2st_auc",
    "data_range",
    "energy_distance",
    "exact_emd",
    "FeatureNet",
    "frechet_distance",
    "gaussian_fit",
    "gaussian_frechet",
    "hist2d",
    "hist_emd",
    "hist_jsd",
    "make_edges",
    "marginal_jsd",
    "precision_recall",
    "rank_methods",
    "resolve_range",
    "roc_auc",
    "score_suite",
    "score_with_error",
]
