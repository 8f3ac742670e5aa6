"""The weighted refiners reproduce a known reweighting, and refined generators compose,
save and load."""

import numpy as np
import pytest
import torch

from genrefine.api import load_generator, save_generator
from genrefine.generators import RealNVPGenerator
from genrefine.refine import RefinedGenerator
from genrefine.samplers.data_rejection import DataRejection
from genrefine.samplers.refiner_flow import RefinerFlow
from genrefine.samplers.refiner_gan import RefinerGAN
from genrefine.weights import DensityRatioClassifier

A = torch.tensor([1.0, -0.5])


def _weighted_latents(n=40_000):
    # p = N(0, I), w(z) = exp(a.z - |a|^2/2)  =>  q = p w = N(a, I)
    z = torch.randn(n, 2)
    return z, torch.exp(z @ A - 0.5 * A @ A)


def test_refiner_flow_learns_known_reweighting():
    z, w = _weighted_latents()
    phi = RefinerFlow(2, transforms=2, hidden=(32, 32)).fit(z, w, epochs=25, batch_size=1000, lr=3e-3, gamma=0.85,
                                                           progress=False)
    s = phi.sample(50_000)
    assert torch.allclose(s.mean(0), A, atol=0.06), s.mean(0)
    assert torch.allclose(torch.cov(s.T), torch.eye(2), atol=0.1)
    # the explicit density matches N(a, I)
    zz = torch.randn(2000, 2) + A
    true = torch.distributions.MultivariateNormal(A, torch.eye(2)).log_prob(zz)
    assert (phi.log_prob(zz) - true).abs().mean() < 0.08


def test_refiner_gan_learns_known_reweighting():
    z, w = _weighted_latents()
    phi = RefinerGAN(2, aux_dim=4, hidden=64, layers=3).fit(
        z, w, epochs=12, batch_size=500, lr=1e-3, n_critic=2, ema=0.99, disc_hidden=64, disc_layers=3, progress=False)
    s = phi.sample(50_000)
    assert torch.allclose(s.mean(0), A, atol=0.12), s.mean(0)
    assert torch.allclose(s.std(0), torch.ones(2), atol=0.15), s.std(0)
    # an untrained refiner starts at the identity: prior mean 0, far from a
    assert RefinerGAN(2).sample(20_000).mean(0).abs().max() < 0.05


def test_refined_generator_density_and_checkpoint(tmp_path):
    torch.manual_seed(1)
    base = RealNVPGenerator(2, transforms=2, hidden=(16,)).freeze()
    phi = RefinerFlow(2, transforms=1, hidden=(8,)).freeze()
    rg = RefinedGenerator(base, phi)
    assert rg.invertible and rg.latent_dim == 2 and rg.depth == 1
    # change of variables: log p(x) = log q_phi(z) + log|det dz/dx| checked against an autograd Jacobian
    x = rg.sample(5)
    lp = rg.log_prob(x)
    for i in range(5):
        jac = torch.autograd.functional.jacobian(lambda v: rg.inverse(v[None])[0], x[i])
        ref = phi.prior.log_prob(rg.inverse(x[i:i + 1]))[0] + torch.linalg.slogdet(jac)[1]
        assert abs(lp[i].item() - ref.item()) < 1e-3
    path = save_generator(RefinedGenerator(rg, RefinerGAN(2, hidden=8, layers=1)), str(tmp_path / "m"))
    loaded = load_generator(path)
    assert loaded.depth == 2 and isinstance(loaded.base, RefinedGenerator)
    y = loaded.prior.sample((7,))
    orig = RefinedGenerator(rg, RefinerGAN(2, hidden=8, layers=1))
    orig.load_state_dict(loaded.state_dict())
    torch.testing.assert_close(loaded(y), orig(y))


def test_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match="no saved model"):
        load_generator(str(tmp_path / "nothing"))
    base = RealNVPGenerator(2, transforms=1, hidden=(8,))
    path = save_generator(base, str(tmp_path / "b"))
    with pytest.raises(ValueError, match="expected 'refined'"):
        load_generator(path, family="refined")
    (tmp_path / "b" / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="unreadable weights"):
        load_generator(path)


class _KnownLogRatio(torch.nn.Module):
    """A 'discriminator' whose logit is the exact log density ratio log w(z) = log(0.2 + 1.8 σ(3 z1))."""

    def forward(self, z):
        return torch.log(0.2 + 1.8 * torch.sigmoid(3 * z[:, :1]))


def _known_w(z):
    return 0.2 + 1.8 * torch.sigmoid(3 * z[:, 0])


def test_refiner_rejection_step_reproduces_known_reweighting(tmp_path):
    # an untrained residual refiner is the identity (Φ(y) = y[:2]); with the exact log ratio as
    # its discriminator, the rejection step must turn N(0, I) into q ∝ N(0, I) w
    phi = RefinerGAN(2, aux_dim=4, hidden=8, layers=1, drs_hidden=32, drs_layers=3).freeze()
    assert not phi.rejects and phi.log_accept(torch.randn(5, 4)).abs().max() == 0
    phi.fit_rejection(_KnownLogRatio(), quantile=1.0, n=100_000, steps=800, progress=False)
    d = phi.drs_diagnostics_
    assert phi.rejects and d["student_corr"] > 0.995
    ref = torch.randn(2_000_000, 2)
    wr = _known_w(ref)
    true_mean = (wr[:, None] * ref).sum(0) / wr.sum()          # ≈ (0.62, 0) here
    y, z = phi.sample_with_latents(200_000)
    assert torch.allclose(z, y[:, :2])
    assert torch.allclose(z.mean(0), true_mean, atol=0.02), (z.mean(0), true_mean)
    assert abs(z[:, 0].std().item() - (((wr * (ref[:, 0] - true_mean[0]) ** 2).sum() / wr.sum()).sqrt().item())) < 0.02
    # bound at the largest logit: log sup w = log 2, and the acceptance is E[w] / e^b
    assert abs(d["bound"] - np.log(2.0)) < 0.25, d["bound"]  # the max logit overshoots by 0.06-0.14
    assert abs(d["acceptance_rate"] - (wr / np.exp(d["bound"])).mean().item()) < 0.02, d
    # the thinned prior's density: log_ratio is log w - log E[w] up to the student's error, and it
    # integrates to one under the proposal
    prior = phi.prior
    yy = torch.randn(100_000, 4)
    r = prior.log_ratio(yy).exp()
    assert abs(r.mean().item() - 1) < 0.02
    assert (prior.log_prob(yy) - prior.proposal.log_prob(yy) - (_known_w(yy).log() - wr.mean().log())).abs().mean() < 0.05
    # inside a refined generator: its prior is the thinned one, and it survives save / load
    base = RealNVPGenerator(2, transforms=1, hidden=(8,)).freeze()
    rg = RefinedGenerator(base, phi)
    assert torch.allclose(rg.base_latent(rg.prior.sample((100_000,))).mean(0), true_mean, atol=0.03)
    loaded = load_generator(save_generator(rg, str(tmp_path / "drs")))
    assert loaded.refiner.rejects
    torch.testing.assert_close(loaded.refiner.drs_state, phi.drs_state)
    yl, xl = loaded.sample_with_latents(100_000)
    assert torch.allclose(yl[:, :2].mean(0), true_mean, atol=0.03)
    torch.testing.assert_close(xl, base.generate(yl[:, :2]))


def test_saved_refined_generator_loads_in_a_fresh_interpreter(tmp_path):
    # load_generator alone must know every family a refined checkpoint nests (refined,
    # refiner_gan, refiner_flow), without the caller importing them first
    import subprocess
    import sys

    base = RealNVPGenerator(2, transforms=1, hidden=(8,)).freeze()
    inner = RefinedGenerator(base, RefinerFlow(2, transforms=1, hidden=(8,)).freeze())
    path = save_generator(RefinedGenerator(inner, RefinerGAN(2, hidden=8, layers=1, drs_hidden=8, drs_layers=1)),
                          str(tmp_path / "m"))
    code = f"from genrefine.api import load_generator; print(load_generator({path!r}).sample(5).shape)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and "torch.Size([5, 2])" in r.stdout, r.stderr


def test_rejection_step_refuses_bad_discriminators():
    phi = RefinerGAN(2, aux_dim=4, hidden=8, layers=1, drs_hidden=8, drs_layers=1).freeze()

    class NaNLogits(torch.nn.Module):
        def forward(self, z):
            return torch.full((len(z), 1), float("nan"))

    with pytest.raises(ValueError, match="non-finite logits"):
        phi.fit_rejection(NaNLogits(), n=1000, steps=5, progress=False)
    with pytest.raises(ValueError, match="quantile"):
        phi.fit_rejection(_KnownLogRatio(), quantile=0.0, n=1000, steps=5, progress=False)
    with pytest.raises(ValueError, match="no rejection step"):
        RefinerGAN(2, hidden=8, layers=1).fit_rejection(_KnownLogRatio(), progress=False)
    assert not phi.rejects  # a failed fit leaves plain sampling


class _KnownDataLogWeight(torch.nn.Module):
    """A 'classifier' whose log weight is the exact log ratio of a known reweighting in data space."""

    def log_weight(self, x):
        return _known_w(x).log()


def _refined_flow_with_known_reweighting(seed: int, n: int):
    """A small refined generator with an exact density (flow base and flow refiner), ``n`` of its
    samples, ``w = _known_w`` at them, and the mean of ρ w."""
    torch.manual_seed(seed)
    base = RealNVPGenerator(2, transforms=2, hidden=(8,)).freeze()
    rg = RefinedGenerator(base, RefinerFlow(2, transforms=1, hidden=(8,)).freeze())
    ref = rg.sample(n)
    wr = _known_w(ref)
    return base, rg, ref, wr, (wr[:, None] * ref).sum(0) / wr.sum()


def _assert_moments(x, true_mean, true_std, atol_std):
    """Samples ``x`` have the mean (to 0.02) and standard deviation (to ``atol_std``) of the target."""
    assert torch.allclose(x.mean(0), true_mean, atol=0.02), (x.mean(0), true_mean)
    assert torch.allclose(x.std(0), true_std, atol=atol_std), (x.std(0), true_std)


def _assert_normalised(prior, dim, tol):
    """A thinned prior's density ratio to its N(0, I) proposal integrates to one."""
    y = torch.randn(200_000, dim)
    assert abs(prior.log_ratio(y).exp().mean().item() - 1) < tol


def test_data_rejection_step_reproduces_known_reweighting(tmp_path):
    # a refined generator (flow base, flow refiner: it has an exact density) whose outputs are
    # thinned in data space by the exact log ratio of w(x) = 0.2 + 1.8 σ(3 x1): the accepted
    # samples must follow ρ(x) w(x) / E_ρ[w], whatever ρ is
    base, rg, ref, wr, true_mean = _refined_flow_with_known_reweighting(0, 1_000_000)
    true_std = ((wr[:, None] * (ref - true_mean) ** 2).sum(0) / wr.sum()).sqrt()
    assert (true_mean - ref.mean(0)).abs().max() > 0.2  # the reweighting moves the mean a long way
    step = DataRejection(2, hidden=32, layers=3).fit(_KnownDataLogWeight(), rg.sample(100_000), quantile=1.0,
                                                     steps=800, progress=False)
    d = step.diagnostics_
    assert d["student_corr"] > 0.995 and abs(d["acceptance_rate"] - (wr / np.exp(d["bound"])).mean().item()) < 0.02
    rg.data_rejection = step
    assert rg.rejects_data
    _assert_moments(rg.sample(200_000), true_mean, true_std, atol_std=0.02)
    # the thinned prior integrates to one under its proposal and gives the same distribution
    prior = rg.prior
    _assert_normalised(prior, 2, tol=0.02)
    assert torch.allclose(rg.generate(prior.sample((100_000,))).mean(0), true_mean, atol=0.03)
    # the exact density gains log a(x) - log Z: still normalised
    x_plain = RefinedGenerator(base, rg.refiner).sample(200_000)
    lp_plain = RefinedGenerator(base, rg.refiner).log_prob(x_plain)
    assert abs((rg.log_prob(x_plain) - lp_plain).exp().mean().item() - 1) < 0.02
    # saved and loaded, it rejects the same way
    loaded = load_generator(save_generator(rg, str(tmp_path / "dr")))
    assert loaded.rejects_data
    torch.testing.assert_close(loaded.data_rejection.state, step.state)
    assert torch.allclose(loaded.sample(200_000).mean(0), true_mean, atol=0.02)


def test_fit_data_rejection_learns_the_reweighting_from_data():
    # data drawn from ρ w (resampled refined samples): the step's own classifier, warm-started
    # from a copy of an (untrained) classifier, must find w
    _, rg, ref, wr, true_mean = _refined_flow_with_known_reweighting(1, 400_000)
    data = ref[torch.multinomial(wr, 30_000, replacement=True)]
    start = DensityRatioClassifier(2, 32, 3)
    rg.fit_data_rejection(data, classifier=start, epochs=8, hidden=32, layers=3, steps=800, quantile=0.99,
                          progress=False)
    assert rg.rejects_data and rg.data_rejection_diagnostics_["warm_start"]
    err = (rg.sample(100_000).mean(0) - true_mean).abs().max().item()
    plain_err = (ref.mean(0) - true_mean).abs().max().item()
    assert err < 0.2 * plain_err, (err, plain_err)
    assert not start.log_weight_max.isfinite()  # the caller's classifier is copied, not trained


class _CheckerLogWeight(torch.nn.Module):
    """A sharp-edged known log weight: +0.8 on the 'black' 2 x 2 squares of [-4, 4]^2, -0.8 on the
    'white' ones, with edges about 0.05 wide (a checkerboard's correction)."""

    def log_weight(self, x):
        return 0.8 * torch.tanh(20 * torch.sin(torch.pi * x[:, 0] / 2) * torch.sin(torch.pi * x[:, 1] / 2))


def test_data_rejection_default_distillation_learns_sharp_edges():
    # The student is distilled for the default number of steps; too few (3000, the old default)
    # smooths the edges: black-square mass 0.79-0.80 against 0.814, and 0.65-0.67 against 0.73
    # in the bands along the edges (measured over three seeds; 20,000 steps: errors <= 0.003 / 0.016)
    torch.manual_seed(0)
    step = DataRejection(2).fit(_CheckerLogWeight(), torch.rand(50_000, 2) * 8 - 4, quantile=1.0, progress=False)
    x = torch.rand(400_000, 2) * 8 - 4
    black = torch.sin(torch.pi * x[:, 0] / 2) * torch.sin(torch.pi * x[:, 1] / 2) > 0
    band = ((x / 2 - (x / 2).round()).abs() < 0.05).any(1)
    with torch.no_grad():
        w = _CheckerLogWeight().log_weight(x).exp()
        keep = torch.rand(len(x)).log() < step.log_accept(x)
    for where in (torch.ones_like(band), band):
        true = ((w * black)[where].sum() / w[where].sum()).item()
        got = black[where & keep].float().mean().item()
        assert abs(got - true) < (0.008 if where.all() else 0.03), (got, true)


def test_data_rejection_refuses_bad_input():
    class NaNWeights(torch.nn.Module):
        def log_weight(self, x):
            return torch.full((len(x),), float("nan"))

    step = DataRejection(2, hidden=8, layers=1)
    with pytest.raises(ValueError, match="non-finite log weights"):
        step.fit(NaNWeights(), torch.randn(100, 2), steps=5, progress=False)
    with pytest.raises(ValueError, match="quantile"):
        step.fit(_KnownDataLogWeight(), torch.randn(100, 2), quantile=1.5, steps=5, progress=False)
    with pytest.raises(ValueError, match="shape"):
        step.fit(_KnownDataLogWeight(), torch.randn(100, 3), steps=5, progress=False)
    assert not step.fitted and (step.log_accept(torch.randn(4, 2)) == 0).all()
    base = RealNVPGenerator(2, transforms=1, hidden=(8,)).freeze()
    with pytest.raises(ValueError, match="3-d points"):
        RefinedGenerator(base, RefinerFlow(2, transforms=1, hidden=(8,)), DataRejection(3))


class _FlatLogit(torch.nn.Module):
    """A 'discriminator' that finds nothing to correct: its latent step accepts everything."""

    def forward(self, z):
        return torch.zeros(len(z), 1)


def test_boost_moves_the_raising_part_of_the_data_step_into_the_latent_step(tmp_path):
    # a refined generator (random flow base, identity refiner with a latent step that accepts
    # all) thinned in data space by w(x) = 0.2 + 1.8 σ(3 x1) with the bound at the median:
    # that thins where w is low but never raises where it is high, so its samples miss ρ w.
    # fit_boost folds exp(max(0, s - b)) into the latent step: together the steps must give ρ w
    torch.manual_seed(3)
    base = RealNVPGenerator(2, transforms=2, hidden=(8,)).freeze()
    phi = RefinerGAN(2, aux_dim=4, hidden=8, layers=1, drs_hidden=32, drs_layers=3).freeze()
    phi.fit_rejection(_FlatLogit(), quantile=1.0, n=50_000, steps=200, progress=False)
    rg = RefinedGenerator(base, phi)
    ref = rg.sample(1_000_000)
    wr = _known_w(ref)
    true_mean = (wr[:, None] * ref).sum(0) / wr.sum()
    true_std = ((wr[:, None] * (ref - true_mean) ** 2).sum(0) / wr.sum()).sqrt()
    rg.data_rejection = DataRejection(2, hidden=32, layers=3).fit(_KnownDataLogWeight(), rg.sample(100_000),
                                                                  quantile=0.5, steps=800, progress=False)
    median_err = (rg.sample(200_000).mean(0) - true_mean).abs().max().item()
    assert median_err > 0.1, median_err  # thinning alone is biased here
    with pytest.raises(ValueError, match="min_acceptance"):
        rg.fit_boost(min_acceptance=1.0)
    rg.fit_boost(quantile=1.0, min_acceptance=0.0, n=100_000, steps=800, progress=False)
    d = rg.boost_diagnostics_
    assert d["student_corr"] > 0.99 and rg.refiner.rejects
    _assert_moments(rg.sample(200_000), true_mean, true_std, atol_std=0.03)
    # the acceptances: latent E[exp(max(0, s - b)) / e^B], data re-estimated on the new candidates
    _assert_normalised(rg.prior, 4, tol=0.03)
    assert abs(np.exp(rg.data_rejection.log_z) - d["data_acceptance_after"]) < 1e-6
    assert d["data_acceptance_after"] > rg.data_rejection.diagnostics_["acceptance_rate"]  # fewer low-w candidates now
    # saved and loaded, it samples the same way
    loaded = load_generator(save_generator(rg, str(tmp_path / "boost")))
    assert torch.allclose(loaded.sample(200_000).mean(0), true_mean, atol=0.02)
    # a floor on the latent acceptance lowers the bound: cheaper, and less of the raise is applied
    rg.fit_boost(quantile=1.0, min_acceptance=0.9, n=100_000, steps=400, progress=False)
    assert rg.boost_diagnostics_["acceptance_rate"] >= 0.89


def test_boost_refuses_what_it_cannot_do():
    base = RealNVPGenerator(2, transforms=1, hidden=(8,)).freeze()
    rg = RefinedGenerator(base, RefinerFlow(2, transforms=1, hidden=(8,)).freeze())
    with pytest.raises(ValueError, match="data rejection step"):
        rg.fit_boost()
    rg.data_rejection = DataRejection(2, hidden=8, layers=1).fit(_KnownDataLogWeight(), rg.sample(2000), steps=20,
                                                                 progress=False)
    with pytest.raises(ValueError, match="latent rejection step"):
        rg.fit_boost()


def test_refiner_flow_samples_in_two_passes_and_old_configs_load_as_they_were():
    import time

    from genrefine.samplers.refiner_flow import RefinerFlow

    flow = RefinerFlow(32, transforms=2, hidden=[16]).freeze()
    t0 = time.perf_counter()
    z = flow.sample(2000)
    assert time.perf_counter() - t0 < 5.0  # coupling: two passes per transform, not 32
    y = flow.inverse(z)
    assert torch.allclose(flow(y), z, atol=1e-4)
    old = RefinerFlow.from_config({"latent_dim": 3, "transforms": 2, "hidden": [8], "bins": 4})
    assert old.passes is None and RefinerFlow.from_config(old.config()).passes is None
    two = RefinerFlow(2, transforms=2, hidden=[8], bins=4)
    assert [p.shape for p in two.state_dict().values()] == [
        p.shape for p in RefinerFlow(2, transforms=2, hidden=[8], bins=4, passes=None).state_dict().values()]


def test_refiner_gan_in_six_dimensions_keeps_every_mode():
    """A 6-d latent gets L = 8 noise dimensions by default, so Φ starts at the identity and only
    moves the mass the weights move: w = 1.5 on z_0 > 0 and 0.5 elsewhere puts 3/4 of the mass
    there and leaves the other coordinates N(0, 1). (With the former fixed L = 4 < 6 the GAN
    trained from scratch and, on a 5-d mode problem, put every sample in one mode.)"""
    torch.manual_seed(0)
    assert RefinerGAN(6).aux_dim == 8 and RefinerGAN(2).aux_dim == 4  # the paper's L = 4 in 2-d
    with pytest.warns(UserWarning, match="residual start"):
        RefinerGAN(6, aux_dim=4)
    z = torch.randn(20_000, 6)
    w = torch.where(z[:, 0] > 0, 1.5, 0.5)
    phi = RefinerGAN(6, hidden=48, layers=3).fit(z, w, epochs=15, batch_size=500, lr=2e-3, n_critic=2, gamma=0.9,
                                                   disc_hidden=48, disc_layers=3, progress=False)
    s = phi.sample(40_000)
    share = (s[:, 0] > 0).float().mean().item()
    assert 0.65 < share < 0.85, share  # 0.5 untrained
    # L = 4 gave standard deviations 0.4-0.8 here: the mass collapsed
    assert torch.allclose(s[:, 1:].std(0), torch.ones(5), atol=0.15), s[:, 1:].std(0)


def test_a_short_first_epoch_raises_no_scheduler_warning():
    """3 batches an epoch with a generator step every 4th: its schedule still steps per epoch,
    without PyTorch's "lr_scheduler.step() before optimizer.step()" warning reaching the user."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        RefinerGAN(2, hidden=8, layers=1).fit(torch.randn(3000, 2), torch.ones(3000), epochs=2, batch_size=1000,
                                              n_critic=4, disc_hidden=8, disc_layers=1, progress=False)
    assert not [w for w in caught if "lr_scheduler" in str(w.message)]
