"""Degenerate weights are reported at once, with the numbers, never sampled from silently.

Rejection on a near-degenerate weight warns after its first batch (acceptance, proposals and
time the run needs) and refuses work beyond its budget; HMC warns on a start pool with an ESS
fraction below 1 % and raises, naming the step, on a target that turns NaN or lets chains run
off to infinity; SIR, MH and DRS report their weights' ESS and count NaN weights with a warning.
"""

import math
import re
import time
import warnings

import pytest
import torch
from torch.distributions import Independent, Normal

from genrefine.samplers.base import LatentTarget
from genrefine.samplers.diagnostics import LOW_ACCEPTANCE
from genrefine.samplers.hmc import HMCSampler
from genrefine.samplers.ratio import DRSSampler, MHSampler, SIRSampler
from genrefine.samplers.rejection import LatentRejectionSampler, accept_loop

pytestmark = pytest.mark.usefixtures("one_thread")

#: P(z_0 > 3.43) for z ~ N(0, I): the acceptance of rejection on w = 1[z_0 > 3.43] with M = 1
TAIL = 3.43
TAIL_MASS = 0.5 * math.erfc(TAIL / math.sqrt(2))  # 3.0e-4


def std_normal(d: int = 2):
    return Independent(Normal(torch.zeros(d), torch.ones(d)), 1)


def tail_target(t: float = TAIL) -> LatentTarget:
    return LatentTarget(std_normal(), lambda z: torch.where(z[:, 0] > t, 0.0, -math.inf), bound=1.0)


def acceptance_in(message: str) -> float:
    return float(re.search(r"acceptance ([0-9.e+-]+)", message).group(1))


def test_rejection_warns_within_seconds_with_the_acceptance():
    # 20k samples at acceptance 3e-4 would take ~7e7 proposals; the warning comes after the first batch
    sampler = LatentRejectionSampler(tail_target(), batch_size=200_000, progress=False)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="lower the bound") as caught:
            sampler.sample(20_000)
    assert time.perf_counter() - start < 2.0
    message = str(caught.value)
    assert "\n" not in message and "proposals/s" in message and "20000 samples need about" in message
    assert abs(acceptance_in(message) - TAIL_MASS) < 0.6 * TAIL_MASS  # 40k probe: ~12 accepted


def test_rejection_that_completes_records_its_low_acceptance():
    sampler = LatentRejectionSampler(tail_target(), batch_size=200_000, progress=False)
    with pytest.warns(UserWarning, match=r"acceptance [0-9.e-]+ \(\d+ of \d+ proposals kept\)"):
        z = sampler.sample(300)
    d = sampler.diagnostics
    assert (z[:, 0] > TAIL).all() and d["low_acceptance"]
    assert d["acceptance_rate"] < LOW_ACCEPTANCE
    assert abs(d["acceptance_rate"] - TAIL_MASS) < 4 * math.sqrt(TAIL_MASS / d["proposals"])
    assert 0 <= d["acceptance_probe"] < 0.01


def test_healthy_rejection_does_not_warn():
    sampler = LatentRejectionSampler(tail_target(0.0), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler.sample(5000)
    assert not sampler.diagnostics["low_acceptance"]


def test_rejection_refuses_work_beyond_its_budget_at_once():
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"more than max_proposals=1e\+06") as caught:
            LatentRejectionSampler(tail_target(), max_proposals=1e6, progress=False).sample(20_000)
        assert abs(acceptance_in(str(caught.value)) - TAIL_MASS) < 0.6 * TAIL_MASS
        # default budget: acceptance 1e-7 would need 2e11 proposals; refused after one batch
        with pytest.raises(ValueError, match="rejection: acceptance below"):
            LatentRejectionSampler(tail_target(5.2), progress=False).sample(20_000)
    assert time.perf_counter() - start < 3.0


def test_accept_loop_of_a_refiner_step_refuses_a_hopeless_rate():
    def draw(m):
        y = torch.randn(m, 2)
        return torch.full((m,), math.log(1e-7)), y

    with pytest.warns(UserWarning, match="acceptance below"):
        with pytest.raises(ValueError, match="max_rounds"):
            accept_loop(draw, 1000, rate=1e-7)
    (y,) = accept_loop(lambda m: (torch.zeros(m), torch.randn(m, 2)), 1000)
    assert y.shape == (1000, 2)


def test_rejection_counts_nan_weights_with_a_warning():
    target = LatentTarget(std_normal(), lambda z: torch.where(z[:, 0] > 0, 0.0, math.nan))
    sampler = LatentRejectionSampler(target, pilot_size=10_000, progress=False)
    with pytest.warns(UserWarning, match=r"rejection: \d+ of \d+ weights were NaN or \+inf"):
        sampler.sample(1000)
    assert sampler.diagnostics["non_finite"] > 0


# --- HMC --------------------------------------------------------------------------------------


def test_hmc_warns_when_the_start_pool_is_degenerate():
    # q = N((3, 0), 0.05² I) from a N(0, I) pool of 20k: a handful of points carry the mass
    target = LatentTarget(std_normal(), lambda z: -0.5 * ((z - torch.tensor([3.0, 0.0])) / 0.05).pow(2).sum(-1))
    sampler = HMCSampler(target, n_chains=50, burn_in=5, sir_pool_size=20_000, progress=False)
    with pytest.warns(UserWarning, match=r"HMC init='sir' \(\d+ distinct starts for 50 chains\): degenerate") as record:
        sampler.sample(100)
    ess = float(re.search(r"ESS fraction ([0-9.e+-]+)", str(record[0].message)).group(1))
    assert ess < 0.01 and ess == pytest.approx(sampler.diagnostics["init_weights"]["ess_fraction"], rel=0.05)


class TurnsNaN:
    """log w(z) = -|z|²/2 until ``after`` calls, NaN (the same shape, still differentiable) afterwards."""

    def __init__(self, after: int) -> None:
        self.after, self.calls = after, 0

    def __call__(self, z):
        self.calls += 1
        lw = -0.5 * (z * z).sum(-1)
        return lw if self.calls <= self.after else lw * math.nan


def test_hmc_raises_naming_the_step_when_the_target_turns_nan():
    sampler = HMCSampler(LatentTarget(std_normal(), TurnsNaN(40)), n_chains=200, sir_pool_size=10_000, progress=False)
    with pytest.raises(ValueError, match=r"HMC step (\d+): log q\(z\) or its gradient was NaN") as caught:
        sampler.sample(2000)
    step = int(re.search(r"HMC step (\d+)", str(caught.value)).group(1))
    assert 3 <= step <= 40  # 40 calls: the pool, the start, the step-size search, ~5 per step


def test_hmc_raises_when_a_start_has_a_nan_gradient():
    def log_weight(z):  # finite value, NaN gradient at every point (sqrt of 0 on the first axis)
        return torch.sqrt(z[:, 0] * 0.0)

    sampler = HMCSampler(LatentTarget(std_normal(), log_weight), n_chains=20, sir_pool_size=1000, progress=False)
    with pytest.raises(ValueError, match="HMC init: log q\\(z\\) or its gradient is NaN or inf at 20 of 20"):
        sampler.sample(20)


def test_hmc_refuses_chains_that_run_off_to_infinity():
    # w(z) = exp(|z|²/2 + 2|z|) makes q ∝ exp(2|z|), improper: a constant outward force that
    # leapfrog integrates exactly, so every move is accepted and the step size grows
    target = LatentTarget(std_normal(), lambda z: 0.5 * (z * z).sum(-1) + 2 * z.norm(dim=-1))
    sampler = HMCSampler(target, n_chains=100, sir_pool_size=10_000, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the start pool is degenerate too
        with pytest.raises(ValueError, match=r"HMC step \d+: the chains reached \|z\| = [0-9.e+]+ .*beyond 1000 prior"):
            sampler.sample(1000)


def test_hmc_with_nan_regions_but_finite_elsewhere_still_samples():
    """A NaN region is treated as w = 0 (divergences), never as a fault, while chains live."""
    sampler = HMCSampler(LatentTarget(std_normal(), lambda z: torch.log(z[:, 0])), n_chains=100, progress=False)
    z = sampler.sample(2000)
    d = sampler.diagnostics
    assert (z[:, 0] > 0).all() and d["non_finite_proposals"] > 0 and d["divergences"] > 0


# --- SIR, MH-GAN, DRS ---------------------------------------------------------------------------


def narrow_bump():
    return LatentTarget(std_normal(), lambda z: -0.5 * ((z - torch.tensor([2.5, 0.0])) / 0.05).pow(2).sum(-1))


@pytest.mark.parametrize("make", [lambda t: SIRSampler(t), lambda t: MHSampler(t, chain_length=3),
                                  lambda t: DRSSampler(t, pilot_size=20_000)], ids=["sir", "mhgan", "drs"])
def test_ratio_samplers_report_their_weights_and_warn_when_degenerate(make):
    sampler = make(narrow_bump())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampler.sample(2000)
    weights = sampler.diagnostics["weights"]
    assert weights["ess_fraction"] < 0.01
    assert any("degenerate weights: ESS fraction" in str(w.message) for w in caught)


@pytest.mark.parametrize("make", [SIRSampler, MHSampler, DRSSampler], ids=["sir", "mhgan", "drs"])
def test_ratio_samplers_count_nan_weights_with_a_warning(make):
    target = LatentTarget(std_normal(), lambda z: torch.where(z[:, 0] > 0, 0.0, math.nan))
    sampler = make(target)
    with pytest.warns(UserWarning, match=r"\d+ of \d+ weights were NaN or \+inf and count as w = 0"):
        sampler.sample(1000)
    assert sampler.diagnostics["non_finite"] > 0


def test_samplers_return_diagnostics_with_samples():
    z, d = SIRSampler(tail_target(0.0)).run(500)
    assert z.shape == (500, 2) and d["sampler"] == "sir" and d["n"] == 500 and d["seconds"] >= 0
