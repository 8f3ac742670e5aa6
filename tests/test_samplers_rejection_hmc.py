"""Rejection sampling and HMC on latent targets whose reweighted distribution q is known.

Every statistical assertion uses a tolerance of a few Monte Carlo standard errors, so a
sampler with the wrong stationary distribution fails it.
"""

import json
import math
import warnings

import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal

from genrefine.samplers.base import LatentTarget
from genrefine.samplers.hmc import HMCSampler, chain_ess, leapfrog
from genrefine.samplers.rejection import LatentRejectionSampler

HALF_NORMAL_MEAN = math.sqrt(2 / math.pi)


pytestmark = pytest.mark.usefixtures("one_thread")

HALF_NORMAL_VAR = 1 - 2 / math.pi


def std_normal(d: int = 2):
    return Independent(Normal(torch.zeros(d), torch.ones(d)), 1)


def target_with_density(log_q, d: int = 2, **kw) -> LatentTarget:
    """A target on a standard normal prior whose q has (unnormalised) log density ``log_q``."""
    prior = std_normal(d)
    return LatentTarget(prior, lambda z: log_q(z) - prior.log_prob(z), **kw)


def half_space_target(**kw) -> LatentTarget:
    """w(z) = 1[z_0 > 0]: q is half-normal in z_0 and standard normal in z_1."""
    return LatentTarget(std_normal(), lambda z: torch.where(z[:, 0] > 0, 0.0, -math.inf), **kw)


def assert_moments(z, mean, cov, mean_tol, cov_tol):
    mean = torch.as_tensor(mean, dtype=torch.float64)
    cov = torch.as_tensor(cov, dtype=torch.float64)
    z = z.double()
    assert torch.isfinite(z).all()
    assert (z.mean(0) - mean).abs().max() < mean_tol, z.mean(0)
    assert (torch.cov(z.T) - cov).abs().max() < cov_tol, torch.cov(z.T)


# --- rejection -----------------------------------------------------------------------------


def test_rejection_half_normal_with_estimated_bound():
    torch.manual_seed(0)
    sampler = LatentRejectionSampler(half_space_target())
    n = 20_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a correct bound must not trigger the bias warning
        z = sampler.sample(n)
    d = sampler.diagnostics
    assert z.shape == (n, 2) and z.dtype == torch.float32
    assert (z[:, 0] > 0).all()
    se = math.sqrt(HALF_NORMAL_VAR / n)
    assert_moments(z, [HALF_NORMAL_MEAN, 0.0], [[HALF_NORMAL_VAR, 0.0], [0.0, 1.0]], 4 * se * 2, 0.04)
    assert abs(z[:, 0].mean() - HALF_NORMAL_MEAN) < 4 * se
    assert d["bound_estimated"] and d["bound"] == pytest.approx(1.1, rel=1e-5)
    assert d["exceed_fraction"] == 0.0
    # acceptance = E_p[w] / M = 0.5 / 1.1, binomial standard error over the proposals
    p = 0.5 / 1.1
    assert abs(d["acceptance_rate"] - p) < 4 * math.sqrt(p * (1 - p) / d["proposals"])
    json.dumps(d)


@pytest.mark.parametrize("bound", [1.0, None])
def test_rejection_gaussian_weight(bound):
    """w(z) = exp(-c|z|²/2) on N(0, I): q = N(0, I/(1+c)), acceptance (1+c)^(-d/2) / M."""
    c, n = 3.0, 20_000
    torch.manual_seed(1)
    target = LatentTarget(std_normal(), lambda z: -0.5 * c * (z * z).sum(-1), bound=bound)
    sampler = LatentRejectionSampler(target)
    z = sampler.sample(n)
    d = sampler.diagnostics
    var = 1 / (1 + c)
    assert_moments(z, [0.0, 0.0], [[var, 0.0], [0.0, var]], 4 * math.sqrt(var / n), 4 * math.sqrt(2 / n) * var)
    assert d["bound_estimated"] is (bound is None)
    p = (1 + c) ** -1 / d["bound"]
    assert abs(d["acceptance_rate"] - p) < 4 * math.sqrt(p * (1 - p) / d["proposals"])


def test_rejection_tilted_weight_unbounded():
    """w(z) = exp(a·z) is unbounded; with the estimated bound q = N(a, I) is still matched."""
    a = torch.tensor([0.8, -0.5])
    n = 20_000
    torch.manual_seed(2)
    sampler = LatentRejectionSampler(LatentTarget(std_normal(), lambda z: z @ a))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a handful of tail proposals may exceed the bound
        z = sampler.sample(n)
    assert sampler.diagnostics["exceed_fraction"] < 1e-4
    assert_moments(z, a, torch.eye(2), 4 / math.sqrt(n), 4 * math.sqrt(2 / n))


def test_rejection_too_small_bound_warns():
    torch.manual_seed(3)
    sampler = LatentRejectionSampler(half_space_target(), bound=0.5)
    with pytest.warns(UserWarning, match="above the bound"):
        z = sampler.sample(1000)
    assert sampler.diagnostics["exceed_fraction"] == pytest.approx(0.5, abs=0.05)
    assert (z[:, 0] > 0).all()


def test_rejection_treats_nan_weights_as_zero():
    torch.manual_seed(12)
    target = LatentTarget(std_normal(), lambda z: torch.where(z[:, 0] > 0, 0.0, math.nan))
    sampler = LatentRejectionSampler(target, pilot_size=10_000)
    z = sampler.sample(2000)
    d = sampler.diagnostics
    assert (z[:, 0] > 0).all() and d["exceed_fraction"] == 0
    assert d["non_finite"] / d["proposals"] == pytest.approx(0.5, abs=0.03)


def test_rejection_bad_inputs():
    zero = LatentTarget(std_normal(), lambda z: torch.full((len(z),), -math.inf))
    nan = LatentTarget(std_normal(), lambda z: torch.full((len(z),), math.nan))
    with pytest.raises(ValueError, match="zero or non-finite"):
        LatentRejectionSampler(zero, pilot_size=1000).sample(10)
    with pytest.raises(ValueError, match="zero or non-finite"):
        LatentRejectionSampler(zero, bound=1.0).sample(10)
    with pytest.raises(ValueError, match="zero or non-finite"):
        LatentRejectionSampler(nan, pilot_size=1000).sample(10)
    tiny = LatentTarget(std_normal(), lambda z: torch.full((len(z),), math.log(1e-7)), bound=1.0)
    with pytest.raises(ValueError, match="max_rounds"):
        LatentRejectionSampler(tiny, batch_size=1000, max_rounds=3).sample(10)
    with pytest.raises(ValueError, match="n must be"):
        LatentRejectionSampler(half_space_target()).sample(0)
    with pytest.raises(ValueError, match="safety"):
        LatentRejectionSampler(half_space_target(), safety=0.5)
    with pytest.raises(ValueError, match="bound"):
        LatentRejectionSampler(half_space_target(), bound=-1.0)


# --- leapfrog ------------------------------------------------------------------------------

SIGMA = torch.tensor([1.0, 0.5], dtype=torch.float64)


def gaussian_grad(z):
    return -z / SIGMA**2


def gaussian_log_prob_and_grad(z):
    return -0.5 * (z * z / SIGMA**2).sum(-1), gaussian_grad(z)


def gaussian_energy(z, p):
    return 0.5 * (z * z / SIGMA**2).sum(-1) + 0.5 * (p * p).sum(-1)


def test_leapfrog_energy_error_is_second_order():
    torch.manual_seed(4)
    z0 = torch.randn(512, 2, dtype=torch.float64) * SIGMA
    p0 = torch.randn(512, 2, dtype=torch.float64)
    h0 = gaussian_energy(z0, p0)
    rms = []
    for eps in (0.1, 0.05, 0.025):  # same integration time T = 1
        z, p, lp, g = leapfrog(z0, p0, gaussian_log_prob_and_grad, eps, round(1 / eps))
        assert torch.allclose(g, gaussian_grad(z)) and torch.allclose(lp, gaussian_log_prob_and_grad(z)[0])
        rms.append((gaussian_energy(z, p) - h0).pow(2).mean().sqrt().item())
    assert rms[1] < 0.02
    for coarse, fine in zip(rms, rms[1:]):
        assert 0.2 < fine / coarse < 0.3  # halving ε divides the error by 4


def test_leapfrog_is_reversible_with_per_chain_steps():
    def banana(z):  # log q = -z0²/2 - (z1 - z0²)²: non-linear forces
        r = z[:, 1] - z[:, 0] ** 2
        return -0.5 * z[:, 0] ** 2 - r**2, torch.stack([-z[:, 0] + 4 * z[:, 0] * r, -2 * r], -1)

    torch.manual_seed(5)
    z0 = torch.randn(64, 2, dtype=torch.float64)
    p0 = torch.randn(64, 2, dtype=torch.float64)
    eps = torch.linspace(0.01, 0.05, 64, dtype=torch.float64)
    z1, p1, _, _ = leapfrog(z0, p0, banana, eps, 25)
    z2, p2, _, _ = leapfrog(z1, -p1, banana, eps, 25)
    assert (z1 - z0).abs().max() > 0.1
    assert torch.allclose(z2, z0, atol=1e-10) and torch.allclose(-p2, p0, atol=1e-10)
    # a per-chain step equals running each chain alone with its scalar step
    zs, ps, _, _ = leapfrog(z0[:1], p0[:1], banana, float(eps[0]), 25)
    assert torch.allclose(zs, z1[:1]) and torch.allclose(ps, p1[:1])


def test_chain_ess_of_known_processes():
    torch.manual_seed(6)
    n, m = 400, 200
    iid = torch.randn(n, m, 1)
    assert chain_ess(iid).item() == pytest.approx(n * m, rel=0.1)
    rho = 0.5  # AR(1): integrated autocorrelation time (1 + ρ) / (1 - ρ) = 3
    x = torch.empty(n, m, 1)
    x[0] = torch.randn(m, 1) / math.sqrt(1 - rho**2)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + torch.randn(m, 1)
    assert chain_ess(x).item() == pytest.approx(n * m / 3, rel=0.1)


# --- HMC -----------------------------------------------------------------------------------


def assert_chain_expectation(x, expected, n_chains, n_se=4.5):
    """|mean of x - expected| < n_se Monte Carlo standard errors, each column's standard
    error from its own multi-chain ESS; x is a sampler output (draw-major rows) mapped to
    the quantities of interest, shape ``(n, k)``."""
    x = x.double()
    draws = x[: len(x) // n_chains * n_chains].reshape(-1, n_chains, x.shape[1])
    se = x.std(0) / chain_ess(draws).sqrt()
    err = (x.mean(0) - torch.as_tensor(expected, dtype=torch.float64)).abs()
    assert (err < n_se * se).all(), (err, se)


MU = torch.tensor([0.5, -1.0])
COV = 0.5 * torch.tensor([[1.0, 0.8], [0.8, 1.0]])


@pytest.mark.parametrize("init", ["sir", "prior"])
def test_hmc_correlated_gaussian(init):
    """q = N(μ, Σ) with correlation 0.8: mean and covariance within a few standard errors."""
    torch.manual_seed(7)
    q = MultivariateNormal(MU, COV)
    sampler = HMCSampler(target_with_density(q.log_prob), n_chains=500, init=init, progress=False)
    n = 20_001
    z = sampler.sample(n)
    d = sampler.diagnostics
    assert z.shape == (n, 2) and z.dtype == torch.float32
    assert d["draws_per_chain"] == 41 and d["n_chains"] == 500
    assert 0.6 < d["acceptance_rate"] < 0.9
    assert d["divergences"] == 0
    assert d["ess_min"] > 0.2 * n
    c = z - MU
    moments = torch.stack([z[:, 0], z[:, 1], c[:, 0] ** 2, c[:, 1] ** 2, c[:, 0] * c[:, 1]], 1)
    assert_chain_expectation(moments, [MU[0], MU[1], COV[0, 0], COV[1, 1], COV[0, 1]], 500)
    assert_moments(z, MU, COV, 0.03, 0.04)  # and in absolute terms
    assert d["gradient_evaluations"] == d["gradient_calls"] * 500
    json.dumps(d)


def test_hmc_sir_init_recovers_masses_of_separated_modes():
    """Two modes 12 σ apart (HMC never crosses): the 0.7 / 0.3 split comes from the SIR starts."""
    torch.manual_seed(8)
    centres = torch.tensor([[-2.5, 0.0], [2.5, 0.0]])
    sd, mass = 0.4, torch.tensor([0.7, 0.3])

    def log_q(z):
        comp = Normal(centres, sd).log_prob(z.unsqueeze(1)).sum(-1)  # (n, 2)
        return torch.logsumexp(comp + mass.log(), -1)

    sampler = HMCSampler(target_with_density(log_q), n_chains=1000, sir_pool_size=400_000, progress=False)
    z = sampler.sample(20_000)
    left = z[:, 0] < 0
    # chains stay in their mode: the chain split is the estimate (binomial SE 0.015, SIR pool noise smaller)
    assert float(left.double().mean()) == pytest.approx(0.7, abs=0.05)
    for k, side in enumerate([left, ~left]):
        assert (z[side].mean(0) - centres[k]).abs().max() < 0.05
        assert (z[side].std(0) - sd).abs().max() < 0.04
    assert 0.6 < sampler.diagnostics["acceptance_rate"] < 0.9


@pytest.mark.parametrize(
    "log_weight, mean, var",
    [
        (lambda z: torch.where(z[:, 0] > 0, 0.0, -math.inf), HALF_NORMAL_MEAN, HALF_NORMAL_VAR),  # w = 0 region
        (lambda z: torch.log(z[:, 0]), math.sqrt(math.pi / 2), (4 - math.pi) / 2),  # NaN region: Rayleigh
    ],
    ids=["half-normal", "rayleigh"],
)
def test_hmc_rejects_trajectories_into_zero_or_nan_weight(log_weight, mean, var):
    torch.manual_seed(9)
    sampler = HMCSampler(LatentTarget(std_normal(), log_weight), n_chains=500, progress=False)
    n = 20_000
    z = sampler.sample(n)
    assert torch.isfinite(z).all() and (z[:, 0] > 0).all()
    x = z[:, :1].double()
    assert_chain_expectation(torch.cat([x, (x - mean) ** 2], 1), [mean, var], 500)
    assert sampler.diagnostics["divergences"] > 0  # trajectories that left the support were rejected


def test_hmc_adaptation_survives_a_first_step_beyond_the_model():
    """Dual averaging's first update jumps to about 10 ε_0; on a model that is NaN beyond
    |z| = 5 that step sends every trajectory out. The adaptation shrinks ε again and the run
    samples N(0, I) (it used to stop at step 2)."""
    torch.manual_seed(4)
    target = LatentTarget(std_normal(), lambda z: torch.where(z.abs().amax(-1) < 5, 0.0, math.nan) + 0 * z[:, 0])
    sampler = HMCSampler(target, n_chains=1000, progress=False)
    z = sampler.sample(20_000)
    assert sampler.diagnostics["non_finite_proposals"] > 0  # the early steps did leave the model's range
    assert (z.mean(0).abs() < 0.05).all() and ((z.var(0) - 1).abs() < 0.08).all(), (z.mean(0), z.var(0))


@pytest.mark.parametrize("target_accept", [0.6, 0.85])
def test_hmc_step_size_adaptation_hits_target_acceptance(target_accept):
    torch.manual_seed(11)
    target = LatentTarget(std_normal(20), lambda z: -(z * z).sum(-1))  # q = N(0, I/3) in 20-D
    sampler = HMCSampler(target, n_chains=500, target_accept=target_accept, progress=False)
    z = sampler.sample(20_000)
    # the realised rate also varies with the random trajectory lengths of the 40 kept iterations
    assert sampler.diagnostics["acceptance_rate"] == pytest.approx(target_accept, abs=0.1)
    assert (z.var(0).mean() - 1 / 3).abs() < 0.02


def test_hmc_bad_inputs():
    zero = LatentTarget(std_normal(), lambda z: torch.full((len(z),), -math.inf) + 0 * z[:, 0])
    with pytest.raises(ValueError, match="zero or non-finite"):
        HMCSampler(zero, n_chains=10, sir_pool_size=1000, progress=False).sample(10)
    with pytest.raises(ValueError, match="w\\(z\\) = 0"):
        HMCSampler(zero, n_chains=10, init="prior", progress=False).sample(10)
    with pytest.raises(ValueError, match="differentiable"):
        HMCSampler(LatentTarget(std_normal(), lambda z: 0 * z[:, 0], differentiable=False))
    with pytest.raises(ValueError, match="init"):
        HMCSampler(half_space_target(), init="uniform")
    with pytest.raises(ValueError, match="n must be"):
        HMCSampler(half_space_target(), progress=False).sample(0)


def test_hmc_paper_preset_runs():
    sampler = HMCSampler.paper(half_space_target())
    assert (sampler.n_chains, sampler.step_size, sampler.n_leapfrog, sampler.burn_in) == (100, 0.004, 50, 3000)
    assert not sampler.adapt_step_size
    torch.manual_seed(10)
    sampler = HMCSampler.paper(half_space_target(), burn_in=5, progress=False)
    z = sampler.sample(250)
    assert z.shape == (250, 2) and (z[:, 0] > 0).all()
    d = sampler.diagnostics
    assert d["step_size"]["mean"] == pytest.approx(0.004, rel=1e-6) and d["acceptance_rate"] > 0.85


def test_probe_bound_tightens_a_loose_cap_without_changing_the_samples():
    # w(z) = 1 + 0.5 tanh(z_1) <= 1.5: under the cap m = 3 rejection accepts E[w] / 3 = 1/3; the
    # probe's bound (1.1 x the largest w seen, < 1.65) accepts about 0.6 of the same proposals,
    # and E_q[z_1] = E_p[z_1 w] / E_p[w] = 0.5 E[z tanh z] (about 0.303) either way
    from genrefine.samplers.rejection import LatentRejectionSampler, probe_bound

    prior = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(2), torch.ones(2)), 1)
    target = LatentTarget(prior=prior, log_weight=lambda z: torch.log1p(0.5 * torch.tanh(z[:, 0])), bound=3.0)
    bound = probe_bound(target, 3.0)
    assert 1.5 <= bound <= 1.65
    assert probe_bound(target, 1.2) == 1.2  # a cap below the weights stays the bound
    z_ref = torch.randn(2_000_000, 1)
    exact = float((z_ref[:, 0] * 0.5 * torch.tanh(z_ref[:, 0])).mean())
    torch.manual_seed(3)
    sampler = LatentRejectionSampler(target, bound=bound, progress=False)
    z = sampler.sample(200_000)
    assert abs(float(z[:, 0].mean()) - exact) < 0.01
    assert sampler.diagnostics["acceptance_rate"] > 0.55 and sampler.diagnostics["n_exceeding"] == 0


def test_practical_bound_keeps_a_usable_cap_and_tightens_a_useless_one():
    import math

    from genrefine.samplers.base import LatentTarget
    from genrefine.samplers.rejection import LatentRejectionSampler, practical_bound

    prior = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(1), torch.ones(1)), 1)

    def log_w(z):  # w = 2 on z > 0, 0.5 below: mean 1.25, max 2
        return torch.where(z[:, 0] > 0, math.log(2.0), math.log(0.5))

    usable = LatentTarget(prior=prior, log_weight=log_w, bound=100.0)  # acceptance 1.25 / 100
    assert practical_bound(usable).bound == 100.0
    useless = LatentTarget(prior=prior, log_weight=log_w, bound=1e6)  # acceptance 1.25e-6
    tight = practical_bound(useless)
    assert tight.bound == pytest.approx(2.2)
    torch.manual_seed(0)
    z = LatentRejectionSampler(tight, progress=False).sample(20_000)
    assert (z[:, 0] > 0).float().mean().item() == pytest.approx(0.8, abs=0.015)  # 2 / (2 + 0.5)


def test_sharpened_target_is_the_capped_power_of_the_weights():
    """w = e^z on N(0, 1): the sharpened target p(z) min(w, c)^2 with c the weights' 90% quantile
    (c = e^1.2816) has a mean found by quadrature; rejection under its exact bound (1, the
    weights divided by c^2) draws it; a power that would overflow c^power in float64 still works."""
    from genrefine.samplers.rejection import sharpened

    target = LatentTarget(std_normal(1), lambda z: z[:, 0])
    sharp = sharpened(target, power=2.0, quantile=0.9)
    cap = -10.0 - float(sharp.log_weight(torch.full((1, 1), -10.0))) / 2  # log w'(z) = 2 (min(z, cap) - cap)
    assert cap == pytest.approx(1.2815516, abs=0.02)  # the probe's 90% quantile
    assert sharp.bound == pytest.approx(1.0, abs=1e-3)  # min(w, c)^2 / c^2 <= 1, exactly
    grid = torch.linspace(-8.0, 12.0, 200_001, dtype=torch.float64)
    dens = torch.exp(-0.5 * grid ** 2 + 2 * grid.clamp(max=cap))
    mean = float((grid * dens).sum() / dens.sum())
    torch.manual_seed(2)
    z = LatentRejectionSampler(sharp, progress=False).sample(50_000)
    assert float(z.mean()) == pytest.approx(mean, abs=0.02), (float(z.mean()), mean)
    assert abs(mean - 2.0) > 0.5 and abs(mean - 1.0) > 0.1  # neither the uncapped w^2 (2.0) nor w (1.0)
    with pytest.raises(ValueError, match="power"):
        sharpened(target, power=0.5)
    huge = sharpened(LatentTarget(std_normal(1), lambda z: 100 * z[:, 0]), power=400.0, quantile=0.9)
    assert huge.bound == pytest.approx(1.0, abs=1e-3) and float(huge.log_weight(torch.zeros(1, 1))) < 0
