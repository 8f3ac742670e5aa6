"""Latent reweighting samplers and baselines on cases with known answers.

Targets are reweightings of a standard normal prior whose result is known in closed form:
a Gaussian bump ``w(z) = exp(-|z - mu|^2 / 2)`` (bounded by 1) turns N(0, I) into
N(mu / 2, I / 2); the exponential tilt ``w(z) = exp(mu.z - |mu|^2 / 2)`` (unbounded, mean 1)
turns it into N(mu, I). Tolerances are a few Monte Carlo standard errors.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal

from genrefine.generators.base import Generator
from genrefine.metrics.precision_recall import mean_interval, precision_recall
from genrefine.samplers.base import LatentTarget
from genrefine.samplers.dot import DOTSampler, dot_objective
from genrefine.samplers.latent_ga import LatentGradientAscent, gradient_ascent, radial_projection
from genrefine.samplers.ratio import DRSSampler, MHSampler, SIRSampler
from genrefine.samplers.rejection import LatentRejectionSampler

MU = torch.tensor([1.0, -0.5])


pytestmark = pytest.mark.usefixtures("one_thread")


def prior(d=2):
    return Independent(Normal(torch.zeros(d), torch.ones(d)), 1)


def bump_target(**kw):
    return LatentTarget(prior(), lambda z: -0.5 * (z - MU).pow(2).sum(-1), bound=1.0, **kw)


def tilt_target():
    return LatentTarget(prior(), lambda z: z @ MU - 0.5 * MU.pow(2).sum())


def check_gaussian(z, mean, var, n_se=5.0):
    n = len(z)
    assert torch.allclose(z.mean(0), mean, atol=n_se * math.sqrt(var / n)), (z.mean(0), mean)
    # the variance of a sample variance of a Gaussian is 2 var^2 / n
    assert torch.allclose(z.var(0), torch.full_like(mean, var), atol=n_se * var * math.sqrt(2 / n)), z.var(0)


def test_latent_rs_with_known_weights_reproduces_reweighted_moments():
    z = LatentRejectionSampler(bump_target()).sample(40_000)
    check_gaussian(z, MU / 2, 0.5)


def test_latent_rs_acceptance_is_mean_weight_over_bound():
    # E_p[exp(-|z-mu|^2/2)] = 2^{-d/2} exp(-|mu|^2/4) for d = 2
    s = LatentRejectionSampler(bump_target())
    s.sample(20_000)
    expect = 0.5 * math.exp(-MU.pow(2).sum().item() / 4)
    assert abs(s.diagnostics["acceptance_rate"] - expect) < 0.01


def test_sir_with_exact_ratios_reproduces_target():
    z = SIRSampler(tilt_target(), n_candidates=200).sample(8000)
    check_gaussian(z, MU, 1.0, n_se=6)


def test_sir_with_one_candidate_is_the_prior():
    z = SIRSampler(tilt_target(), n_candidates=1).sample(20_000)
    check_gaussian(z, torch.zeros(2), 1.0)


def test_mh_with_exact_ratios_reproduces_target():
    z = MHSampler(tilt_target(), chain_length=100).sample(8000)
    check_gaussian(z, MU, 1.0, n_se=6)
    short = MHSampler(tilt_target(), chain_length=5)
    short.sample(100)
    assert 0 < short.diagnostics["acceptance_rate"] < 1


def test_drs_without_shift_is_exact_rejection():
    s = DRSSampler(bump_target(), gamma_quantile=None, pilot_size=50_000)
    z = s.sample(20_000)
    check_gaussian(z, MU / 2, 0.5)


def test_drs_shift_raises_acceptance():
    exact = DRSSampler(bump_target(), gamma_quantile=None)
    exact.sample(5000)
    shifted = DRSSampler(bump_target(), gamma_quantile=0.5)
    shifted.sample(5000)
    assert shifted.diagnostics["acceptance_rate"] > exact.diagnostics["acceptance_rate"] + 0.1


def test_latent_ga_raises_weight_and_climbs_to_the_mode():
    target = bump_target()
    ga = LatentGradientAscent(target, n_steps=10, step_size=0.5)
    z = ga.sample(5000)
    assert ga.diagnostics["mean_weight_after"] > ga.diagnostics["mean_weight_before"] + 0.1
    # gradient ascent on a Gaussian bump converges to its centre
    z = gradient_ascent(lambda v: target.log_weight(v).exp(), torch.zeros(10, 2), 500, 0.5)
    assert torch.allclose(z, MU.expand(10, 2), atol=1e-3)


def test_latent_rs_ga_starts_from_accepted_points():
    s = LatentGradientAscent(bump_target(), n_steps=0, step_size=0.1, rejection=True)
    z = s.sample(20_000)
    check_gaussian(z, MU / 2, 0.5)  # no steps: exactly latentRS
    assert s.name == "latentrsga" and 0 < s.diagnostics["acceptance_rate"] < 1


def test_radial_projection_removes_the_radial_component():
    z, g = torch.randn(100, 64), torch.randn(100, 64)
    p = radial_projection(g, z)
    assert torch.allclose((p * z).sum(-1), torch.zeros(100), atol=1e-4)
    ga = LatentGradientAscent(LatentTarget(prior(64), lambda v: -0.5 * (v - 1).pow(2).sum(-1)), n_steps=3, step_size=0.1)
    assert ga.project  # automatic for a 64-d standard normal prior


class Identity(Generator):
    def forward(self, z):
        return z


class Linear(nn.Module):
    """A linear critic D(x) = x_1 (slope 1 everywhere)."""

    def forward(self, x):
        return x[:, 0]


def test_dot_k_eff_of_a_linear_critic_is_its_slope():
    dot = DOTSampler(Identity(2, 2).freeze(), Linear(), n_steps=1)
    assert 0.95 < dot.k_eff <= 1.0 + 1e-6


def test_dot_steps_lower_the_dot_loss_and_climb_the_critic():
    gen = Identity(2, 2).freeze()
    # with k_eff = 0.5 the critic's pull (|grad D| / k = 2) beats the transport cost (slope 1)
    dot = DOTSampler(gen, Linear(), n_steps=10, step_size=0.05, k_eff=0.5)
    z = dot.sample(2000)
    d = dot.diagnostics
    assert d["objective_after"] < d["objective_before"] - 0.3
    z0 = torch.zeros(1, 2)
    assert float(dot_objective(gen, Linear(), z0, z0, 1.0)) == pytest.approx(math.sqrt(2) * 1e-3, rel=1e-3)
    # every point moved the same distance along x_1 (0.05 per step, less the transport pull)
    assert z[:, 0].mean() > 0.25


def test_samplers_refuse_all_zero_weights():
    dead = LatentTarget(prior(), lambda z: torch.full((len(z),), -math.inf), bound=1.0)
    for s in (SIRSampler(dead), MHSampler(dead), DRSSampler(dead), LatentRejectionSampler(dead, pilot_size=1000)):
        with pytest.raises(ValueError, match="zero"):
            s.sample(10)


def test_precision_recall_known_cases():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(2000, 2))
    p, r = precision_recall(real, rng.normal(size=(2000, 2)))
    assert p > 0.9 and r > 0.9
    p, r = precision_recall(real, rng.normal(size=(2000, 2)) + 100)
    assert p == 0 and r == 0
    # fake covering only the right half of the real distribution: precise, half the recall
    half = rng.normal(size=(6000, 2))
    half = half[half[:, 0] > 0][:2000]
    p, r = precision_recall(real, half)
    assert p > 0.9 and 0.4 < r < 0.65


def test_mean_interval_is_student_t():
    v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    out = mean_interval(v, 0.97)
    from scipy import stats

    assert out["mean"] == 5.5
    assert out["interval"] == pytest.approx(stats.t.ppf(0.985, 9) * np.std(v, ddof=1) / math.sqrt(10))


class Shift:
    """A stand-in for a gradient-step sampler: prior draws moved by ``n_steps * step_size``
    along the first axis."""

    def __init__(self, n_steps, step_size):
        self.shift = n_steps * step_size

    def sample(self, n):
        z = torch.randn(n, 2)
        z[:, 0] += self.shift
        return z


@pytest.mark.parametrize("data_shift, expect", [(-0.5, (0, 0.01)), (1.0, (10, 0.1))])
def test_step_grid_keeps_no_ascent_when_steps_hurt_and_the_right_pair_when_they_help(data_shift, expect):
    from genrefine.reweighting import select_by_val_emd

    torch.manual_seed(5)
    x_val = (torch.randn(800, 2) + torch.tensor([data_shift, 0.0])).numpy()
    sel = select_by_val_emd(Shift, Identity(2, 2).freeze(), x_val, (0, 2, 5, 10, 50), (0.01, 0.05, 0.1))
    assert (sel["n_steps"], sel["step_size"]) == expect
    assert sum(g["n_steps"] == 0 for g in sel["grid"]) == 1  # ε is not varied without steps
    assert len(sel["grid"]) == 1 + 4 * 3
