"""The base families of the introduction paper (generators/): OT-Flow's closed forms, inverse
and density; the gradient penalty; each family's training improving on a tiny run; the image
networks' shapes; training a family through a run and saving and loading it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_moons

from genrefine.api import load_generator, save_generator
from genrefine.experiments.run import run_refinement
from genrefine.generators import (Critic, DCGANGenerator, HingeGPGenerator, OTFlowGenerator, VAEGenerator,
                                  WGANClipGenerator, WGANGenerator, gradient_penalty)
from genrefine.generators.nets import ConvDecoder, ConvEncoder, conv_critic
from genrefine.generators.otflow import Potential


def moons(n: int, seed: int) -> np.ndarray:
    return make_moons(n, noise=0.05, random_state=seed)[0].astype(np.float32)


@pytest.fixture(scope="module")
def otflow() -> OTFlowGenerator:
    torch.manual_seed(0)
    return OTFlowGenerator(2).fit(moons(3000, 0), epochs=4, batch_size=256, progress=False)


def test_potential_closed_forms_match_autograd():
    torch.manual_seed(0)
    p = Potential(3, 16, 10).double()
    for q in p.parameters():
        torch.nn.init.normal_(q, std=0.5)
    y = torch.randn(9, 4, dtype=torch.double, requires_grad=True)
    g = torch.autograd.grad(p(y).sum(), y, create_graph=True)[0]
    lap = sum(torch.autograd.grad(g[:, i].sum(), y, retain_graph=True)[0][:, i] for i in range(3))
    g2, lap2 = p.gradient(y, True)
    assert torch.allclose(g, g2, atol=1e-12) and torch.allclose(lap, lap2, atol=1e-12)


def test_otflow_inverse_and_training(otflow):
    nll = [h["nll"] for h in otflow.history_]
    assert nll[-1] < nll[0] - 0.3  # it learns
    z = torch.randn(2000, 2)
    assert (otflow.inverse(otflow(z)) - z).abs().max() < 1e-4
    x = torch.as_tensor(moons(2000, 3))
    assert (otflow(otflow.inverse(x)) - x).abs().max() < 1e-4


def test_otflow_density_integrates_to_one(otflow):
    lo, hi = otflow.data_loc - 7 * otflow.data_scale, otflow.data_loc + 7 * otflow.data_scale
    n = 300
    gx, gy = (torch.linspace(float(lo[i]), float(hi[i]), n) for i in range(2))
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        mass = otflow.log_prob(grid).exp().sum() * (gx[1] - gx[0]) * (gy[1] - gy[0])
    assert abs(float(mass) - 1) < 0.02


def test_otflow_log_prob_matches_change_of_variables(otflow):
    # log p(x) = log N(g⁻¹(x)) + log|det ∂g⁻¹/∂x|, the Jacobian by autograd
    x = torch.as_tensor(moons(5, 4))
    jac = torch.stack([torch.autograd.functional.jacobian(otflow.inverse, xi[None])[0, :, 0] for xi in x])
    z = otflow.inverse(x)
    expected = -0.5 * z.pow(2).sum(-1) - math.log(2 * math.pi) + torch.linalg.slogdet(jac)[1]
    assert torch.allclose(otflow.log_prob(x), expected, atol=2e-3)


def test_gradient_penalty_of_known_gradients():
    a = torch.tensor([3.0, 0.0, 4.0])  # D(x) = a·x: |∇D| = 5 everywhere, penalty (5 - 1)² = 16
    real, fake = torch.randn(64, 3), torch.randn(64, 3)
    assert float(gradient_penalty(lambda x: x @ a, real, fake)) == pytest.approx(16.0, rel=1e-6)
    torch.manual_seed(1)  # D(x) = Σ sin x: ∇D = cos x̂ at the interpolates x̂ the penalty draws
    got = gradient_penalty(lambda x: torch.sin(x).sum(-1), real, fake).detach()
    torch.manual_seed(1)
    eps = torch.rand(64, 1)
    xh = eps * real + (1 - eps) * fake
    assert float(got) == pytest.approx(float((torch.cos(xh).norm(dim=-1) - 1).pow(2).mean()), rel=1e-6)


@pytest.mark.parametrize("cls", [DCGANGenerator, WGANClipGenerator, WGANGenerator, HingeGPGenerator])
def test_each_adversarial_family_moves_towards_the_data(cls):
    torch.manual_seed(0)
    x = moons(4000, 0)
    g = cls.build((2,), torch.as_tensor(x), latent_dim=2, hidden=64, layers=3)
    g.fit(x, epochs=5, batch_size=64, progress=False, monitor=moons(1000, 1))
    energy = [h["energy"] for h in g.history_]
    assert min(energy[-2:]) < 0.8 * energy[0] and isinstance(g.critic_, Critic)


def test_vae_elbo_rises_on_images_and_encodes():
    torch.manual_seed(0)
    d = (load_digits().data / 16.0).astype(np.float32)
    g = VAEGenerator.build((1, 8, 8), torch.as_tensor(d), latent_dim=2)
    assert g.likelihood == "bernoulli"  # data in [0, 1]
    g.fit(d[:1500], epochs=4, batch_size=64, progress=False)
    loss = [h["neg_elbo"] for h in g.history_]
    assert loss[-1] < 0.9 * loss[0]
    assert g.sample(5).shape == (5, 64) and g.encode(d[:7]).shape == (7, 2)
    assert VAEGenerator.build((2,), torch.as_tensor(moons(10, 0))).likelihood == "gaussian"


def test_bernoulli_vae_refuses_data_outside_unit_interval():
    with pytest.raises(ValueError, match=r"Bernoulli likelihood needs data in \[0, 1\]"):
        VAEGenerator(2, 2, likelihood="bernoulli").fit(moons(100, 0), epochs=1, progress=False)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 8, 8), (1, 9, 13)])
def test_image_networks_shapes(shape):
    dim = int(np.prod(shape))
    x = torch.rand(5, dim)
    assert ConvDecoder(2, shape)(torch.randn(5, 2)).shape == (5, dim)
    assert conv_critic(shape)(x).shape == (5, 1)
    mean, log_var = ConvEncoder(shape, 3)(x)
    assert mean.shape == log_var.shape == (5, 3)


def test_image_networks_refuse_tiny_images():
    with pytest.raises(ValueError, match="at least 4 x 4"):
        ConvDecoder(2, (1, 3, 8))


def test_a_family_trains_in_a_run_and_saves(tmp_path):
    out = tmp_path / "run"
    res = run_refinement("moons", methods="base,dctr,rejection", base_family="dcgan", n_samples=2000, out=str(out),
                         progress=False, overrides={"n_train": 3000, "dcgan": {"hidden": 32, "epochs": 2},
                                                    "classifier": {"epochs": 1, "hidden": 16, "layers": 2}})
    assert isinstance(res.models["base"], DCGANGenerator)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["base_family"] == "dcgan" and metrics["diagnostics"]["base"]["family"] == "dcgan"
    back = load_generator(str(out / "models" / "base"))
    z = torch.randn(10, 2)
    assert torch.allclose(back(z), res.models["base"](z))


@pytest.mark.parametrize("make", [lambda: VAEGenerator(2, 64, data_shape=(1, 8, 8)), lambda: OTFlowGenerator(2),
                                  lambda: HingeGPGenerator(4, 64, data_shape=(1, 8, 8))])
def test_families_save_and_load(tmp_path, make):
    g = make().freeze()
    save_generator(g, str(tmp_path / "g"))
    back = load_generator(str(tmp_path / "g"))
    z = torch.randn(6, g.latent_dim)
    assert type(back) is type(g) and torch.allclose(back(z), g(z), atol=1e-6)


def test_cli_latent_dim_for_families(tmp_path, capsys):
    from genrefine.cli import main

    out = tmp_path / "run"
    code = main(["refine", "--data", "moons", "--base", "realnvp", "--latent-dim", "3", "--out", str(out), "--quiet"])
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "latent dimension is the data's" in err[0]
    np.save(tmp_path / "moons.npy", moons(2500, 0))
    code = main(["refine", "--data", str(tmp_path / "moons.npy"), "--base", "vae", "--latent-dim", "3",
                 "--methods", "base,dctr", "--set", "vae.epochs=1", "--set", "classifier.epochs=1",
                 "--n-samples", "1000", "--out", str(out), "--quiet"])
    assert code == 0
    assert np.load(out / "latents" / "base.npy").shape == (1000, 3)
    assert (out / "figures" / "training.png").exists()


@pytest.mark.parametrize("rows, words", [((30, 4, 16), "shape (1, 8, 8)"), ((30, 1, 28, 28), "64-d samples")])
def test_cli_refuses_a_saved_family_for_other_images(tmp_path, capsys, rows, words):
    from genrefine.cli import main

    save_generator(DCGANGenerator(2, 64, data_shape=(1, 8, 8)).freeze(), str(tmp_path / "g"))
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random(rows).astype(np.float32))
    out = tmp_path / "run"
    code = main(["refine", "--data", str(tmp_path / "x.npy"), "--base", "dcgan", "--base-model", str(tmp_path / "g"),
                 "--methods", "base,dctr", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out.exists() and len(err) == 1 and words in err[0]


def test_default_methods_of_a_family_follow_what_it_serves():
    from genrefine.experiments.run import default_methods

    assert default_methods("vae") == ["base", "dctr", "rejection", "sir-dctr", "hmc", "laser", "laser-flow"]
    assert "latentrs" in default_methods("hinge-gp") and "hmc" in default_methods("ot-flow")


def test_latent_dim_wins_over_the_image_default():
    from genrefine.cli import _latent_setting
    from genrefine.experiments.config import build_config

    cfg = build_config("quick", None, "dcgan")
    assert cfg["dcgan"]["images"]["latent_dim"] == 100 and cfg["dcgan"]["latent_dim"] == 2
    settings = _latent_setting("dcgan", 2, {}, "quick")
    cfg = build_config("quick", None, "dcgan", settings=settings)
    assert cfg["dcgan"]["images"]["latent_dim"] == 2 and cfg["dcgan"]["images"]["epochs"] == 12
    assert build_config("quick", None, "vae")["vae"]["images"]["latent_dim"] == 16
    assert _latent_setting("vae", 2, {}, "quick")["vae"]["images"]["latent_dim"] == 2
