"""Classifier weights between two known Gaussians match the true density ratio."""

import numpy as np
import pytest
import torch

from genrefine.samplers.base import weight_diagnostics
from genrefine.weights import DensityRatioClassifier

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("n_data,n_gen", [(30_000, 20_000), (15_000, 30_000)])
def test_classifier_recovers_gaussian_density_ratio(n_data, n_gen):
    # unequal sizes test the class-ratio term; the second case is the quick preset's
    # twice as many generated samples as data rows
    rng = np.random.default_rng(0)
    mu = np.array([0.7, -0.3])
    data = rng.normal(size=(n_data, 2)) + mu          # p_data = N(mu, I)
    gen = rng.normal(size=(n_gen, 2))                 # p_g = N(0, I)
    clf = DensityRatioClassifier(2, hidden=32, layers=2).fit(data, gen, epochs=25, batch_size=500, lr=3e-3, progress=False)
    x = rng.normal(size=(5000, 2)) * 0.8 + mu / 2  # where both densities have mass
    true_logw = x @ mu - 0.5 * mu @ mu
    est = clf.log_weight(torch.as_tensor(x, dtype=torch.float32)).detach().numpy()
    assert np.corrcoef(est, true_logw)[0, 1] > 0.98
    assert np.abs(est - true_logw).mean() < 0.12
    # self-normalisation: E_g[w] = 1
    w = clf.weight(torch.as_tensor(gen[:10_000], dtype=torch.float32))
    assert abs(w.mean().item() - 1.0) < 0.05


def test_weight_diagnostics_counts_nonfinite():
    d = weight_diagnostics(torch.tensor([1.0, 1.0, float("nan"), float("inf"), 0.0, 2.0]))
    assert d["non_finite"] == 2 and d["zeros"] == 1 and d["max"] == 2.0
    assert abs(d["ess_fraction"] - 16 / (4 * 6)) < 1e-9
