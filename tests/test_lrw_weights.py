"""Latent importance weights and discriminator density ratios on bases whose target is a known
reweighting of them.

The base is the identity map ``G(z) = z`` with ``z ~ N(0, I_2)`` and the data are N(mu, I_2), so
the exact reweighting is the tilt ``w*(z) = exp(mu.z - |mu|^2 / 2)`` (mean 1) and the density
ratio at x is ``exp(mu.x - |mu|^2 / 2)``.
"""

import math

import numpy as np
import pytest
import torch

from genrefine.generators.base import Generator
from genrefine.generators import Critic, WGANGenerator
from genrefine.weights.discriminator import DiscriminatorRatio
from genrefine.weights.latent_importance import CHECK_PARTS, LatentImportanceNetwork

MU = torch.tensor([0.6, 0.0])


class Identity(Generator):
    def forward(self, z):
        return z


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    data = (torch.randn(20_000, 2) + MU).numpy()
    return Identity(2, 2).freeze(), data


def true_w(z):
    return torch.exp(z @ MU - 0.5 * MU.pow(2).sum())


@pytest.mark.parametrize("inputs", ["latent", "data"])
def test_w_phi_learns_a_known_reweighting(setup, inputs):
    """Alg. 1 played by w_φ(z) itself, or by h(G(z)) and then distilled into w_φ."""
    gen, data = setup
    torch.manual_seed(1)
    w_phi = LatentImportanceNetwork(2, hidden=32, layers=3, m=3.0).fit(
        gen, data, critic=Critic(2, 64, 3), epochs=12, batch_size=256, lr_w=1e-3, lr_d=1e-3, n_critic=2,
        warmup=300, pool_size=20_000, progress=False, inputs=inputs, distil_size=50_000)
    if inputs == "data":  # the distilled latent net reproduces the data-space teacher
        assert w_phi.distil_["corr"] > 0.95, w_phi.distil_
        assert w_phi.distil_["confirmed"] and w_phi.confirmed_
    z = torch.randn(20_000, 2)
    w = w_phi.weight(z)
    # self-normalised: Eq. (6)'s reward is >= 0 (Δ = min D), so E[w] settles slightly above 1
    assert abs(float(w.mean()) - 1) < 0.25
    # soft-clipped at m: the quadratic penalty lets a little mass above it (the exact weight
    # itself exceeds m = 3 on 1.7% of the prior)
    assert float((w > w_phi.m + 0.5).float().mean()) < 0.03
    # ... and its top tail sits below the unclipped exact weight's (5.3 at the 99.9% quantile)
    assert float(torch.quantile(w, 0.999)) < min(w_phi.m + 2.0, float(torch.quantile(true_w(z), 0.999)))
    # the reweighted latent moves towards the data: E_w[z_1] = mu_1 for the exact weights
    shift = float((w * z[:, 0]).sum() / w.sum())
    assert shift > 0.3, shift
    assert abs(float((w * z[:, 1]).sum() / w.sum())) < 0.15
    assert np.corrcoef(w.numpy(), true_w(z).numpy())[0, 1] > 0.6


def test_discriminator_ratio_matches_the_density_ratio(setup):
    gen, data = setup
    torch.manual_seed(2)
    disc = DiscriminatorRatio(Critic(2, 64, 3)).fit(gen, data, epochs=6, batch_size=256, lr=1e-3, gp_weight=0.0,
                                                   pool_size=20_000, select=False, progress=False)
    x = torch.randn(5000, 2)
    est = disc.log_weight(x)
    exact = torch.log(true_w(x))
    inner = (x - MU / 2).norm(dim=-1) < 1.5   # where both samples are dense
    assert float((est - exact)[inner].abs().mean()) < 0.15


@pytest.mark.parametrize("kw, words", [
    ({"lambda1": -1.0}, "lambda1"), ({"lambda2": -0.5}, "lambda2"), ({"lr_w": 0.0}, "lr_w"), ({"inputs": "pixels"}, "inputs"),
])
def test_w_phi_bad_hyperparameters(setup, kw, words):
    gen, data = setup
    with pytest.raises(ValueError, match=words):
        LatentImportanceNetwork(2).fit(gen, data, progress=False, epochs=1, **kw)


@pytest.mark.parametrize("m", [0.0, -1.0, float("nan")])
def test_w_phi_bad_m(m):
    with pytest.raises(ValueError, match="m must be"):
        LatentImportanceNetwork(2, m=m)


@pytest.mark.parametrize("key", ["critic_mode", "critic_fakes", "n_w", "gamma", "select", "fourier"])
def test_w_phi_refuses_removed_and_unknown_settings(setup, key):
    """The study variants removed from ``fit`` (docs/decisions/latent_importance.md) are unknown
    settings: one TypeError naming the keyword, before any work."""
    gen, data = setup
    with pytest.raises(TypeError, match=f"unknown setting '{key}'"):
        LatentImportanceNetwork(2).fit(gen, data, progress=False, **{key: 1})


def test_w_phi_checkpoint_saved_with_fourier_keys_still_loads():
    """Checkpoints written before the Fourier features were removed carry ``fourier=0``,
    ``fourier_scale`` and an empty ``fourier_B`` buffer: they load (as ``load_module`` does it:
    ``cls(**config)``, then a strict ``load_state_dict``) and give the same weights; a nonzero
    ``fourier`` is refused."""
    torch.manual_seed(0)
    saved = LatentImportanceNetwork(2, hidden=16, layers=3, m=2.5)
    state = {**saved.state_dict(), "fourier_B": torch.zeros(2, 0)}
    loaded = LatentImportanceNetwork(**saved.config(), fourier=0, fourier_scale=1.0)
    loaded.load_state_dict(state)
    z = torch.randn(100, 2)
    assert torch.equal(loaded(z), saved(z)) and loaded.config() == saved.config()
    with pytest.raises(ValueError, match="fourier"):
        LatentImportanceNetwork(2, fourier=8)


class NaNGenerator(Generator):
    def forward(self, z):
        x = z.clone()
        x[::3] = float("nan")
        return x


def test_w_phi_refuses_a_generator_that_returns_nan(setup):
    _, data = setup
    with pytest.raises(ValueError, match="NaN"):
        LatentImportanceNetwork(2).fit(NaNGenerator(2, 2).freeze(), data, epochs=1, progress=False, pool_size=1000)


def test_wgan_gp_base_learns_a_shifted_gaussian():
    torch.manual_seed(3)
    x = (torch.randn(20_000, 2) * 0.5 + torch.tensor([2.0, -1.0])).numpy()
    gen = WGANGenerator(2, 2, 64, 3).fit(x, epochs=8, batch_size=256, lr=1e-3, progress=False)
    s = gen.sample(20_000)
    assert torch.allclose(s.mean(0), torch.tensor([2.0, -1.0]), atol=0.15), s.mean(0)
    assert torch.allclose(s.std(0), torch.tensor([0.5, 0.5]), atol=0.15), s.std(0)
    assert gen.critic_ is not None and "critic_" not in dict(gen.named_modules())


def test_cell_calibration_restores_the_data_mass_of_every_cell():
    """Generated N(0, I) against data with two modes of unequal mass: a flat teacher (w = 1)
    calibrated on k-means cells must carry the data's mass in every cell, and so in each mode."""
    from genrefine.weights.latent_importance import CellCalibrated, KMeansCells

    class Flat(torch.nn.Module):
        def forward(self, x):
            return torch.ones(len(x))

    torch.manual_seed(4)
    data = torch.cat([torch.randn(14_000, 2) * 0.5 + torch.tensor([-1.0, 0.0]),
                      torch.randn(6_000, 2) * 0.5 + torch.tensor([1.0, 0.0])])
    gen = torch.randn(40_000, 2) * 1.2
    cells = KMeansCells(12, data)
    cal = CellCalibrated(Flat(), cells, m=5.0).fit(data, gen)
    fresh = torch.randn(40_000, 2) * 1.2
    w = cal(fresh)
    assert abs(float(w.mean()) - 1) < 0.05                   # self-normalised
    assert float(w.max()) <= 5.0 + 1e-6                       # clipped at m
    left = float(w[fresh[:, 0] < 0].sum() / w.sum())
    target = float((data[:, 0] < 0).float().mean())           # 0.69 (0.7 of the mass in the left mode)
    assert abs(left - target) < 0.05, (left, target)          # cells straddle x = 0, hence 0.05
    assert abs(float((fresh[:, 0] < 0).float().mean()) - 0.5) < 0.02   # before calibration: 0.5
    lab_d, lab_g = cells(data), cells(fresh)
    share_d = torch.bincount(lab_d, minlength=12).double() / len(data)
    share_g = torch.bincount(lab_g, weights=w.double(), minlength=12) / w.double().sum()
    assert float((share_g - share_d).abs().max()) < 0.02


def test_w_phi_with_calibrated_and_smoothed_candidates(setup):
    """The candidates path of ``fit``: every candidate is scored (with cells, the smoothed ratio
    competes calibrated only), the chosen one passes the check or ``w_φ`` falls back to its
    start, and the distilled ``w_φ`` moves mass towards mu."""
    gen, data = setup
    torch.manual_seed(5)
    w_phi = LatentImportanceNetwork(2, hidden=32, layers=3, m=3.0).fit(
        gen, data, critic=Critic(2, 64, 3), epochs=4, batch_size=256, lr_w=1e-3, lr_d=1e-3, warmup=100,
        pool_size=20_000, progress=False, inputs="data", distil_size=50_000, smoothed_ratio=[0.0],
        smoothed_epochs=5, calibrate=8)
    sources = [c["source"] for c in w_phi.candidates_]
    assert "smoothed ratio s=0, calibrated on 8 cells" in sources and "smoothed ratio s=0" not in sources
    assert all(math.isfinite(c["val_emd"]) and math.isfinite(c["check_emd"]) for c in w_phi.candidates_)
    assert w_phi.source_ != "start" and w_phi.confirmed_, (w_phi.candidates_, w_phi.check_emd_)
    # chosen on the check parts, by the stricter rule for the best of several
    best = min(w_phi.candidates_, key=lambda c: c["check_emd"])
    assert w_phi.source_ == best["source"] and w_phi.check_emd_["selected"] == best["check_emd"]
    assert w_phi.check_emd_["threshold"] == 2.0 and len(w_phi.check_emd_["selected_parts"]) == CHECK_PARTS
    z = torch.randn(20_000, 2)
    w = w_phi.weight(z)
    assert float((w * z[:, 0]).sum() / w.sum()) > 0.3
    assert np.corrcoef(w.numpy(), true_w(z).numpy())[0, 1] > 0.6


@pytest.mark.parametrize("folds", [2, 3])
def test_crossfitted_candidates_use_every_row_as_check_data(setup, folds):
    """``crossfit=K``: every candidate is trained on all folds but one and scored on parts of the
    one left out, so every row outside the validation set is check data; the kept teacher is the
    mean of the K fold copies and ``w_φ`` still learns the known tilt."""
    from genrefine.weights.latent_importance import CHECK_SIZE, AveragedTeacher

    gen, data = setup
    torch.manual_seed(5)
    w_phi = LatentImportanceNetwork(2, hidden=32, layers=3, m=3.0).fit(
        gen, data, critic=Critic(2, 64, 3), epochs=3, batch_size=256, lr_w=1e-3, lr_d=1e-3, warmup=100,
        pool_size=20_000, progress=False, inputs="data", distil_size=50_000, smoothed_ratio=[0.0],
        smoothed_epochs=5, calibrate=8, crossfit=folds)
    chk = w_phi.check_emd_
    n_val = len(data) // (2 * (1 + CHECK_PARTS))          # 588 rows: the validation set and part size
    n_chk = min(CHECK_SIZE, n_val)
    cut = np.array_split(np.arange(len(data) - n_val), folds)
    assert chk["folds"] == folds and len(chk["initial_parts"]) == sum(len(c) // n_chk for c in cut)
    assert len(chk["initial_parts"]) >= 2 * CHECK_PARTS    # more than the single split's parts: every row is check data
    sources = [c["source"] for c in w_phi.candidates_]
    assert "smoothed ratio s=0, calibrated on 8 cells" in sources and "game, calibrated on 8 cells" in sources
    assert all(len(c["folds"]) == folds for c in w_phi.candidates_)
    assert w_phi.confirmed_ and w_phi.source_ != "start", (w_phi.candidates_, chk)
    best = min(w_phi.candidates_, key=lambda c: c["check_emd"])
    assert w_phi.source_ == best["source"] and chk["selected"] == best["check_emd"]
    assert isinstance(w_phi.teacher_, AveragedTeacher) and len(w_phi.teacher_.teachers) == folds
    assert w_phi.distil_["confirmed"] and len(w_phi.distil_["check_parts"]) == len(chk["initial_parts"])
    assert {h["fold"] for h in w_phi.history_} == set(range(1, folds + 1))
    z = torch.randn(20_000, 2)
    w = w_phi.weight(z)
    assert abs(float(w.mean()) - 1) < 0.1
    assert float((w * z[:, 0]).sum() / w.sum()) > 0.3
    assert np.corrcoef(w.numpy(), true_w(z).numpy())[0, 1] > 0.6


def test_crossfit_arguments_are_checked(setup):
    gen, data = setup
    with pytest.raises(ValueError, match="crossfit"):
        LatentImportanceNetwork(2).fit(gen, data, progress=False, epochs=1, inputs="data", calibrate=8, crossfit=1)
    with pytest.raises(ValueError, match="crossfit"):
        LatentImportanceNetwork(2).fit(gen, data, progress=False, epochs=1, inputs="data", crossfit=2)


def test_calibrate_needs_data_inputs(setup):
    gen, data = setup
    with pytest.raises(ValueError, match="calibrate"):
        LatentImportanceNetwork(2).fit(gen, data, progress=False, epochs=1, calibrate=8)
    with pytest.raises(ValueError, match="calibrate"):
        LatentImportanceNetwork(2).fit(gen, data, progress=False, epochs=1, inputs="data", calibrate=1)


def test_check_rule_counts_standard_errors():
    from genrefine.weights.latent_importance import confirms

    initial = [1.0] * 8
    gains = np.array([0.03, -0.01, 0.02, 0.0, 0.015, -0.005, 0.01, 0.02])  # mean 0.01, se ≈ 0.0049: t ≈ 2.04
    selected = list(np.array(initial) - gains)
    assert confirms(selected, initial) and confirms(selected, initial, 2.0)
    assert not confirms(selected, initial, 2.5)
    assert not confirms(list(np.array(initial) + gains), initial)  # a loss never passes


def test_accepted_emd_scores_what_latent_rejection_delivers():
    """``accepted_emd`` takes the points latent rejection accepts from a pool: they follow the
    reweighted distribution (known tilt), two equal weight functions score identically (common
    random numbers), and the truth of the tilted target scores closer than the base's does."""
    from genrefine.weights.latent_importance import accepted_emd, accepted_indices, pool_factor

    torch.manual_seed(1)
    m, n = 3.0, 2000
    pool = torch.randn(pool_factor(m) * n, 2)
    tilt = lambda x: torch.exp(MU @ x.T - MU.dot(MU) / 2).clamp(max=m)  # noqa: E731
    w = tilt(pool)
    acc = accepted_indices(w, m, len(pool))
    big = torch.randn(400_000, 2)
    wb = tilt(big)
    assert float(pool[acc, 0].mean()) == pytest.approx(float((wb * big[:, 0]).sum() / wb.sum()), abs=0.05)
    target = big[torch.multinomial(wb, n, replacement=True)] + 0.0
    base = torch.randn(n, 2)
    assert accepted_emd(target, pool, w, m) == accepted_emd(target, pool, w.clone(), m)
    assert accepted_emd(target, pool, w, m) < accepted_emd(base, pool, w, m) - 0.03
    flat = torch.ones(len(pool))
    assert accepted_emd(target, pool, w, m) < accepted_emd(target, pool, flat, m) - 0.03
    assert accepted_emd(target, pool, torch.zeros(len(pool)), m) == math.inf


def test_crossfit_with_transport_weights_keeps_what_latent_rejection_delivers_best(setup):
    """With transport weights among the candidates (a latent kind, taken without distillation),
    the kept kind is the one whose *delivered* weights (distilled for a data-space kind) score
    lowest on the check parts, and ``w_φ`` learns the known tilt."""
    gen, data = setup
    torch.manual_seed(5)
    w_phi = LatentImportanceNetwork(2, hidden=32, layers=3, m=3.0).fit(
        gen, data, critic=Critic(2, 64, 3), epochs=2, batch_size=256, lr_w=1e-3, lr_d=1e-3, warmup=100,
        pool_size=20_000, progress=False, inputs="data", distil_size=50_000, smoothed_ratio=[0.0],
        smoothed_epochs=5, calibrate=8, transport=2, transport_chunk=1000, crossfit=2)
    sources = [c["source"] for c in w_phi.candidates_]
    assert "transport weights" in sources and len(w_phi.transport_) == 2
    assert w_phi.confirmed_ and w_phi.source_ != "start", (w_phi.candidates_, w_phi.check_emd_)
    delivered = {d["source"]: d for d in w_phi.delivered_}
    kept = delivered[w_phi.source_]
    assert kept["confirmed"] and kept["check_emd"] == min(d["check_emd"] for d in delivered.values() if d["confirmed"])
    if w_phi.source_ == "transport weights":  # copied fold by fold, then refitted on all rows
        assert kept["fold_corr"] == [1.0, 1.0] and w_phi.teacher_.on_latent
        assert w_phi.distil_["refit"]["passes"] == 2 and w_phi.distil_["refit"]["pairs"] >= 2 * 1000
    assert w_phi.distil_["corr"] > 0.9
    z = torch.randn(20_000, 2)
    w = w_phi.weight(z)
    assert abs(float(w.mean()) - 1) < 0.1
    assert float((w * z[:, 0]).sum() / w.sum()) > 0.3
    assert np.corrcoef(w.numpy(), true_w(z).numpy())[0, 1] > 0.6


def test_crossfit_keeping_transport_weights_refits_them_on_all_rows(setup):
    """When the kept kind is transport weights, ``w_φ`` is fitted again on the transport weights
    of every training row (not distilled from the fold copies' average); it agrees with that
    average and learns the known tilt."""
    gen, data = setup
    torch.manual_seed(6)
    w_phi = LatentImportanceNetwork(2, hidden=32, layers=3, m=3.0).fit(
        gen, data, critic=Critic(2, 64, 3), epochs=1, batch_size=256, lr_w=1e-3, lr_d=1e-3, warmup=50,
        pool_size=20_000, progress=False, inputs="data", transport=3, transport_chunk=1000, crossfit=2)
    assert w_phi.confirmed_ and w_phi.source_ == "transport weights", (w_phi.candidates_, w_phi.check_emd_)
    refit = w_phi.distil_["refit"]
    # at most 3000 validation rows, so >= 17 chunks of 1000 a pass; a fold copy saw about half
    assert refit["passes"] == 3 and refit["pairs"] >= 3 * 17 * 1000, refit
    assert w_phi.distil_["corr"] > 0.8, w_phi.distil_
    z = torch.randn(20_000, 2)
    w = w_phi.weight(z)
    assert abs(float(w.mean()) - 1) < 0.1
    assert float((w * z[:, 0]).sum() / w.sum()) > 0.3
    assert np.corrcoef(w.numpy(), true_w(z).numpy())[0, 1] > 0.6


def test_w_phi_without_the_game_keeps_its_start_and_lets_the_teachers_compete(setup):
    """``epochs=0``: no game is played (no critic step), the start is kept as the game's result,
    and the teacher candidates still compete on the check; transport weights learn the tilt."""
    gen, data = setup
    torch.manual_seed(7)
    critic = Critic(2, 64, 3)
    before = [p.detach().clone() for p in critic.parameters()]
    w_phi = LatentImportanceNetwork(2, hidden=32, layers=3, m=3.0).fit(
        gen, data, critic=critic, epochs=0, pool_size=20_000, progress=False, inputs="data", transport=3,
        transport_chunk=1000, crossfit=2)
    assert w_phi.best_epoch_ == [0, 0] and w_phi.history_ == []
    assert all(torch.equal(a, b) for a, b in zip(before, w_phi.critic_.parameters()))
    assert [c["source"] for c in w_phi.candidates_] == ["transport weights"]
    assert w_phi.confirmed_ and w_phi.source_ == "transport weights", (w_phi.candidates_, w_phi.check_emd_)
    z = torch.randn(20_000, 2)
    assert np.corrcoef(w_phi.weight(z).numpy(), true_w(z).numpy())[0, 1] > 0.6


def test_discriminator_ratio_is_platt_scaled_from_a_wasserstein_critic(setup):
    """A WGAN critic's scale is arbitrary: its slope along MU is about 1 (the penalty's Lipschitz
    constant) where the log ratio's is |MU| = 0.6. With barely any BCE fine-tuning, the held-out
    Platt scaling alone must bring the odds to the exact ratio; without it they stay off."""
    from genrefine.weights.discriminator import fine_tune_critic

    gen, data = setup
    torch.manual_seed(3)
    critic = fine_tune_critic(Critic(2, 32, 2), gen, data, epochs=4, lr=1e-3, gp_weight=10.0, pool_size=20_000,
                              progress=False)
    x = torch.randn(5000, 2) + MU / 2
    inner = (x - MU / 2).norm(dim=-1) < 1.5
    errors = {}
    for calibrate in (False, True):
        torch.manual_seed(4)
        disc = DiscriminatorRatio(critic).fit(gen, data, epochs=1, lr=1e-7, gp_weight=0.0, pool_size=20_000,
                                              select=False, calibrate=calibrate, progress=False)
        errors[calibrate] = float((disc.log_weight(x) - torch.log(true_w(x)))[inner].abs().mean())
    assert errors[True] < 0.08, errors
    assert errors[False] > 0.3, errors
