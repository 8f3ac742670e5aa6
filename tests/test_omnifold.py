"""OmniFold latent weights (weights/omnifold.py), the weighted classifier they rest on, and the
black-box simulator route through the run, on cases with known answers."""

import math

import numpy as np
import pytest
import torch

import genrefine
from genrefine.data.simulators import SIMULATORS, simulate_truth, simulator
from genrefine.generators.adapters import as_generator
from genrefine.methods import check_method
from genrefine.weights.classifier import DensityRatioClassifier
from genrefine.weights.omnifold import OmniFold, pullback_spread

SMEAR = 0.5          # x = z + SMEAR * eps
MU, S = 1.0, 0.7     # truth latent N(MU, S^2); base latent N(0, 1)


def _smeared(seed: int = 1):
    return as_generator(lambda z, rng: z + SMEAR * rng.normal(size=z.shape), latent_dim=1, stochastic=True,
                        seed=seed)


def _truth(n: int, seed: int = 5) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    z = MU + S * rng.normal(size=(n, 1))
    return torch.tensor(z + SMEAR * rng.normal(size=(n, 1)), dtype=torch.float32)


def _moments(of: OmniFold, n: int = 200_000) -> tuple[float, float]:
    """Mean and standard deviation of z under p(z) ν(z)."""
    z = torch.randn(n, 1, generator=torch.Generator().manual_seed(3))
    w = of.weight(z).double()
    zz = z[:, 0].double()
    m = float((w * zz).sum() / w.sum())
    return m, float(((w * (zz - m) ** 2).sum() / w.sum()).sqrt())


def test_weighted_classifier_learns_the_weighted_ratio():
    # data N(0,1) rows weighted by exp(a x) are N(a, 1): the ratio to N(0,1) is exp(a x - a^2/2)
    torch.manual_seed(0)
    a, n = 0.8, 20_000
    xd, xg = torch.randn(n, 1), torch.randn(n, 1)
    clf = DensityRatioClassifier(1, hidden=32, layers=3).fit(xd, xg, epochs=30, batch_size=1000, progress=False,
                                                             data_weight=torch.exp(a * xd[:, 0]))
    grid = torch.linspace(-1.5, 1.5, 7)[:, None]
    torch.testing.assert_close(clf.log_weight(grid), a * grid[:, 0] - a * a / 2, atol=0.12, rtol=0)
    assert clf.diagnostics_["auc"] > 0.6  # the weighted classes differ; unweighted they would not


def test_paired_split_holds_out_the_same_rows():
    from genrefine.weights.classifier import stratified_split

    td, vd, tg, vg = stratified_split(100, 100, 0.2, 0, paired=True)
    assert np.array_equal(td, tg) and np.array_equal(vd, vg) and len(vd) == 20
    with pytest.raises(ValueError, match="as many rows"):
        stratified_split(100, 90, 0.2, 0, paired=True)


def test_deterministic_generator_one_iteration_is_the_pull_back():
    # g(z) = z: the pull-back w(g(z)) is the latent ratio N(z; MU, S^2) / N(z; 0, 1) itself
    torch.manual_seed(0)
    gen = as_generator(lambda z: z, latent_dim=1)
    rng = np.random.default_rng(2)
    data = torch.tensor(MU + S * rng.normal(size=(20_000, 1)), dtype=torch.float32)
    of = OmniFold(1, (1,), iterations=1).fit(gen, data, progress=False)
    z_gen = gen.sample(20_000)
    pull = DensityRatioClassifier(1, hidden=64, layers=4).fit(data, z_gen, epochs=30, progress=False)
    grid = torch.linspace(-1.0, 2.0, 13)[:, None]
    exact = -(grid[:, 0] - MU) ** 2 / (2 * S * S) - math.log(S) + grid[:, 0] ** 2 / 2
    torch.testing.assert_close(of.log_weight(grid), pull.log_weight(gen(grid)), atol=0.2, rtol=0)
    torch.testing.assert_close(of.log_weight(grid), exact, atol=0.2, rtol=0)


def test_gaussian_smearing_unfolds_to_the_analytic_latent_weight():
    # z ~ N(0,1), x = z + 0.5 eps; data from z ~ N(1, 0.7^2). EM's first step (the direct
    # pull-back, one iteration) moves the latent mean only to MU / (1 + SMEAR^2) = 0.8; the
    # iterations unfold it to the truth N(1, 0.7^2), whose weight is analytic.
    torch.manual_seed(0)
    data = _truth(20_000)
    one = OmniFold(1, (1,), iterations=1).fit(_smeared(), data, progress=False)
    mean1, _ = _moments(one)
    assert abs(mean1 - MU / (1 + SMEAR ** 2)) < 0.06
    torch.manual_seed(0)
    of = OmniFold(1, (1,), iterations=4).fit(_smeared(), data, progress=False)
    mean, std = _moments(of)
    assert abs(mean - MU) < 0.06 and abs(std - S) < 0.06
    grid = torch.linspace(-0.5, 2.0, 11)[:, None]
    exact = -(grid[:, 0] - MU) ** 2 / (2 * S * S) - math.log(S) + grid[:, 0] ** 2 / 2
    torch.testing.assert_close(of.log_weight(grid), exact, atol=0.25, rtol=0)
    its = of.diagnostics_["iterations"]
    assert len(its) == 4 and its[0]["pull"]["auc"] > its[-1]["pull"]["auc"]  # the data become indistinguishable
    target = of.target(_smeared().prior)
    assert target.differentiable and target.bound is not None


def test_pullback_spread_tells_noise_from_signal():
    torch.manual_seed(0)
    clf = DensityRatioClassifier(1, hidden=16, layers=2).fit(_truth(5000), _smeared().sample(5000), epochs=10,
                                                             progress=False)
    deterministic = pullback_spread(as_generator(lambda z: z + 0.0, latent_dim=1), clf, n=200)
    noise_only = pullback_spread(as_generator(lambda z, rng: rng.normal(size=z.shape), latent_dim=1,
                                              stochastic=True), clf, n=200)
    assert deterministic["noise_fraction"] == pytest.approx(0.0, abs=1e-9)
    assert noise_only["noise_fraction"] > 0.8
    assert 0.05 < pullback_spread(_smeared(), clf, n=500)["noise_fraction"] < 0.8


def test_methods_on_a_stochastic_generator():
    sim = _smeared()
    for name in ("rejection", "laser", "omnifold", "rejection-omnifold", "hmc-omnifold", "ddls-omnifold",
                 "laser-omnifold", "laser-flow-omnifold"):
        check_method(sim, name)
    with pytest.raises(ValueError) as e:
        check_method(sim, "hmc")
    assert "hmc-omnifold" in str(e.value) and "\n" not in str(e.value)


def test_simulator_refined_through_the_front_door(tmp_path):
    # the detector toy: the OmniFold-refined simulator is closer to the truth than the base
    torch.manual_seed(0)
    name = "detector"
    gen = as_generator(simulator(name), latent_dim=SIMULATORS[name].latent_dim, stochastic=True, seed=1)
    x = simulate_truth(name, 8000, seed=1)
    settings = {"omnifold": {"iterations": 2, "epochs": 10}, "classifier": {"epochs": 10}}
    with pytest.warns(UserWarning, match="not a function of z"):
        report = genrefine.compare(gen, x, methods=["rejection", "rejection-omnifold"], settings=settings,
                                   n_samples=1600, progress=False, out=str(tmp_path / "run"))
    base, of = report.scores["base"], report.scores["rejection-omnifold"]
    assert of["energy"].value < 0.5 * base["energy"].value
    assert report.diagnostics["pullback_spread"]["noise_fraction"] > 0.1
    assert len(report.diagnostics["omnifold_weights"]["iterations"]) == 2
    # the saved weights load back: the latents rejection kept carry more weight than the prior's
    # (E_q[nu] = E_p[nu^2] / E_p[nu] >= E_p[nu] for q ∝ p nu)
    loaded = genrefine.api.load_omnifold(str(tmp_path / "run" / "models" / "omnifold_weights"))
    kept = torch.as_tensor(np.load(tmp_path / "run" / "latents" / "rejection-omnifold.npy"))
    prior = torch.as_tensor(np.load(tmp_path / "run" / "latents" / "base.npy"))
    assert float(loaded.weight(kept).mean()) > 1.2 * float(loaded.weight(prior).mean())
