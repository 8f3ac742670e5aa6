"""Scores for generated samples (flat functional API, numpy arrays or torch tensors in).

Binned 2-D scores as in the LaSeR paper (Sec. 4.2), with a ``"prob"`` and a ``"paper"``
convention (see :mod:`genrefine.metrics.histogram` and docs/laser_scoring_conventions.md):

- :func:`hist_jsd`, :func:`hist_emd` -- Jensen-Shannon divergence and earth mover's
  distance between 2-D histograms (optional sample weights, e.g. DCTR).
- :func:`score_with_error` -- a score together with its finite-sample floor.
- :func:`hist2d`, :func:`make_edges`, :func:`data_range`, :func:`resolve_range`,
  :func:`bin_centers`, :data:`PAPER_RANGES`, :data:`PAPER_BINS` -- histogram helpers.

Sample-based distances (:mod:`genrefine.metrics.distances`):

- :func:`exact_emd` -- exact Wasserstein-1 between point sets (Euclidean ground cost).
- :func:`energy_distance` -- multivariate energy distance (V-statistic).
"""

from genrefine.metrics.distances import energy_distance, exact_emd
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
    resolve_range,
    score_with_error,
)

__all__ = [
    "PAPER_BINS",
    "PAPER_JSD_EPS",
    "PAPER_RANGES",
    "bin_centers",
    "data_range",
    "energy_distance",
    "exact_emd",
    "hist2d",
    "hist_emd",
    "hist_jsd",
    "make_edges",
    "resolve_range",
    "score_with_error",
]
