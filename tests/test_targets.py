"""The pulled-back latent target: capped where the classifier extrapolates; resample-move HMC
(one chain per sample, adapt on a subset) reproduces a known target."""

import math

import torch

from genrefine.generators import RealNVPGenerator
from genrefine.samplers.base import LatentTarget
from genrefine.samplers.hmc import HMCSampler
from genrefine.weights import DensityRatioClassifier, latent_target
from genrefine.weights.classifier import soft_cap


def test_soft_cap_is_a_smooth_upper_bound():
    lw = torch.linspace(-10, 30, 401)
    c = soft_cap(lw, 2.0)
    assert (c <= 2.0).all() and torch.allclose(c[lw < -3], lw[lw < -3], atol=0.01)
    assert (c[1:] >= c[:-1]).all()
    # weights up to half the cap (the largest training weight) are left as they are
    below = lw <= 2.0 - math.log(2.0)
    assert torch.allclose(c[below], lw[below], atol=1e-3)


def test_latent_target_is_capped_beyond_the_training_range():
    torch.manual_seed(0)
    gen = RealNVPGenerator(2, transforms=1, hidden=(8,)).freeze()
    clf = DensityRatioClassifier(2, hidden=8, layers=1)
    with torch.no_grad():  # a logit that grows linearly without bound
        clf.net[-1].weight.fill_(1.0)
    clf.log_weight_max.fill_(1.0)
    t = latent_target(gen, clf, cap_factor=2.0)
    assert math.isclose(t.bound, 2 * math.e, rel_tol=1e-6)
    z = torch.randn(1000, 2) * 50
    assert (t.log_weight(z) <= 1.0 + math.log(2.0) + 1e-6).all()
    assert latent_target(gen, clf, cap_factor=None).bound is None


def test_resample_move_hmc_recovers_gaussian_moments():
    torch.manual_seed(0)
    a = torch.tensor([1.0, -0.5])
    prior = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(2), torch.ones(2)), 1)
    target = LatentTarget(prior, lambda z: z @ a - 0.5 * a @ a)  # q = N(a, I)
    s = HMCSampler(target, n_chains=20_000, adapt_chains=500, burn_in=30, thin=2, sir_pool_size=200_000, progress=False)
    z = s.sample(20_000).detach()
    assert torch.allclose(z.mean(0), a, atol=0.04), z.mean(0)
    assert torch.allclose(torch.cov(z.T), torch.eye(2), atol=0.06)
    assert s.diagnostics["n_chains"] == 20_000 and 0.5 < s.diagnostics["acceptance_rate"] < 0.95
