"""The squeeze of latent rejection: guaranteed bounds of an MLP over boxes, their grid, and
rejection that evaluates the weight only where the bounds leave the decision open."""

import dataclasses
import importlib
import math

import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal

from genrefine.nn import mlp, mlp_bounds
from genrefine.samplers import rejection
from genrefine.samplers.rejection import LatentRejectionSampler
from genrefine.samplers.squeeze import GridEnvelope
from genrefine.weights.latent_importance.network import LatentImportanceNetwork

pytestmark = pytest.mark.usefixtures("one_thread")


def random_net(activation: str, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return mlp(2, 3, hidden=24, layers=3, activation=activation)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("half", [1e-3, 0.05, 1.0])
def test_mlp_bounds_hold_every_point_of_each_box(activation, half):
    net = random_net(activation)
    centers = torch.randn(64, 2) * 2
    lo, hi = mlp_bounds(net, centers, torch.full((2,), half))
    pts = centers[:, None] + half * (2 * torch.rand(64, 500, 2) - 1)
    corners = centers[:, None] + half * torch.tensor([[-1.0, -1], [-1, 1], [1, -1], [1, 1]])
    with torch.no_grad():
        vals = net(torch.cat([pts, corners], 1).double().reshape(-1, 2).float()).double().reshape(64, 504, 3)
    assert (vals >= lo[:, None] - 1e-5).all() and (vals <= hi[:, None] + 1e-5).all()
    # tight on small boxes: the bound's width within a few times the range actually seen
    if half == 1e-3:
        seen = vals.amax(1) - vals.amin(1)
        assert ((hi - lo) <= 3 * seen + 1e-6).all()


def test_mlp_bounds_of_a_box_of_zero_width_are_the_value():
    net = random_net("leaky_relu", seed=3)
    z = torch.randn(10, 2)
    lo, hi = mlp_bounds(net, z, torch.zeros(2))
    with torch.no_grad():
        out = net(z).double()
    assert torch.allclose(lo, out, atol=1e-5) and torch.allclose(hi, out, atol=1e-5)


def test_mlp_bounds_refuse_layers_it_cannot_bound():
    with pytest.raises(TypeError, match="Tanh"):
        mlp_bounds(nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1)), torch.zeros(1, 2), torch.ones(2))


def test_grid_envelope_holds_the_function_and_knows_nothing_outside():
    # log w(z) = -|z|^2 / 2: exact bounds over a box are its nearest and farthest points' values
    def bounds(center, half):
        near = (center.abs() - half).clamp(min=0)
        far = center.abs() + half
        return -(far ** 2).sum(-1) / 2, -(near ** 2).sum(-1) / 2

    env = GridEnvelope(bounds, low=torch.tensor([-3.0, -2.0]), high=torch.tensor([3.0, 2.0]), cells=64 * 64)
    z = torch.cat([torch.rand(20_000, 2) * torch.tensor([6.0, 4.0]) - torch.tensor([3.0, 2.0]),
                   torch.tensor([[3.5, 0.0], [0.0, -2.5], [-9.0, 9.0]])])
    lo, hi = env(z)
    f = -(z ** 2).sum(-1) / 2
    inside = slice(0, 20_000)
    assert (lo[inside] <= f[inside] + 1e-6).all() and (f[inside] <= hi[inside] + 1e-6).all()
    assert (hi[inside] - lo[inside]).max() < 0.5  # cells of 0.094 x 0.0625
    assert torch.isinf(lo[-3:]).all() and (lo[-3:] < 0).all() and (hi[-3:] == math.inf).all()


def shaped_w_phi(seed: int = 0) -> LatentImportanceNetwork:
    """A 2-d w_φ whose weights vary strongly (a random net scaled up), so that rejection both
    accepts and rejects and the clip at m is reached."""
    torch.manual_seed(seed)
    w = LatentImportanceNetwork(2, hidden=32, layers=3, m=3.0)
    with torch.no_grad():
        w.net[-1].weight.normal_(0, 0.6)
        w.net[-1].bias.fill_(0.8)
    w.eval()
    for p in w.parameters():
        p.requires_grad_(False)
    return w


def prior2():
    return Independent(Normal(torch.zeros(2), torch.ones(2)), 1)


@pytest.mark.filterwarnings("ignore:rejection.*above the bound")
@pytest.mark.parametrize("bound", [3.0, 1.5])
def test_rejection_with_the_squeeze_draws_the_samples_of_full_evaluation(bound, monkeypatch):
    monkeypatch.setattr(rejection, "SQUEEZE_MIN_ROWS", 10_000)
    monkeypatch.setattr(rejection, "SQUEEZE_BUILD_SAMPLES", 50_000)
    w = shaped_w_phi()
    target = dataclasses.replace(w.target(prior2()), bound=bound)
    assert target.envelope is not None
    calls = []
    counted = dataclasses.replace(target, log_weight=lambda z: calls.append(len(z)) or w.clipped_log_weight(z))
    runs = {}
    for name, t in (("squeeze", counted), ("full", dataclasses.replace(target, envelope=None))):
        torch.manual_seed(5)
        runs[name] = LatentRejectionSampler(t, batch_size=20_000, progress=False).run(60_000)
    (z_s, d_s), (z_f, d_f) = runs["squeeze"], runs["full"]
    assert torch.equal(z_s, z_f)
    for key in ("proposals", "acceptance_rate", "n_exceeding", "non_finite"):
        assert d_s[key] == d_f[key], key
    if bound < 3.0:  # the bound is too small: the proposals above it are counted alike
        assert d_s["n_exceeding"] > 0
    # after the first batch, only the proposals the bounds cannot decide were evaluated
    assert sum(calls[1:]) < 0.3 * (d_s["proposals"] - calls[0])
    assert d_s["weights_evaluated"] == sum(calls) and d_f["weights_evaluated"] == d_f["proposals"]


def test_small_batches_are_evaluated_in_full():
    w = shaped_w_phi()
    looked_up = []
    target = w.target(prior2())
    target = dataclasses.replace(target, envelope=lambda z: looked_up.append(len(z)) or target.envelope(z))
    torch.manual_seed(0)
    LatentRejectionSampler(target, progress=False).run(5000)
    assert looked_up == []


def test_a_small_call_builds_no_table_but_uses_one_built(monkeypatch):
    monkeypatch.setattr(rejection, "SQUEEZE_MIN_ROWS", 10_000)
    target = shaped_w_phi().target(prior2())
    torch.manual_seed(0)
    d = LatentRejectionSampler(target, batch_size=20_000, progress=False).run(30_000)[1]
    assert not target.envelope.ready and d["weights_evaluated"] == d["proposals"]
    target.envelope(torch.zeros(1, 2))  # built, as a large call would
    d = LatentRejectionSampler(target, batch_size=20_000, progress=False).run(30_000)[1]
    assert target.envelope.ready and d["weights_evaluated"] < 0.5 * d["proposals"]


def test_the_envelope_follows_a_change_of_the_weights():
    w = shaped_w_phi()
    env = w.envelope(prior2())
    z = torch.randn(5000, 2)
    env(z)
    with torch.no_grad():
        w.net[-1].bias.add_(2.0)
        true = w.clipped_log_weight(z)
    lo, hi = env(z)
    assert (lo <= true + 1e-6).all() and (true <= hi + 1e-6).all()


def test_no_envelope_for_latents_beyond_the_grid():
    w = LatentImportanceNetwork(5)
    assert w.target(Independent(Normal(torch.zeros(5), torch.ones(5)), 1)).envelope is None


def refined_with_two_rejection_steps():
    """A refined generator whose refiner GAN and data step both reject, with students set by
    hand (random, scaled so that both steps accept some and reject some)."""
    from genrefine.generators import RealNVPGenerator
    from genrefine.refine import RefinedGenerator
    from genrefine.samplers.data_rejection import DataRejection
    from genrefine.samplers.refiner_gan import RefinerGAN

    torch.manual_seed(2)
    base = RealNVPGenerator(2, transforms=1, hidden=(8,)).freeze()
    phi = RefinerGAN(2, aux_dim=4, hidden=8, layers=1, drs_hidden=16, drs_layers=2)
    step = DataRejection(2, hidden=8, layers=2)
    with torch.no_grad():
        phi.student[-1].weight.mul_(6.0)
        phi.drs_state.copy_(torch.tensor([0.2, math.log(0.7)]))
        step.student[-1].weight.mul_(6.0)
        step.state.copy_(torch.tensor([0.1, math.log(0.6)]))
        step.loc.copy_(torch.tensor([0.3, -0.2]))
        step.scale.copy_(torch.tensor([1.5, 0.4]))
    return RefinedGenerator(base, phi.freeze(), step).freeze()


def test_refined_generator_with_the_squeeze_draws_the_samples_of_full_evaluation(monkeypatch):
    refine_module = importlib.import_module("genrefine.refine")  # the package's `refine` is the function
    refiner_gan_module = importlib.import_module("genrefine.samplers.refiner_gan")

    rg = refined_with_two_rejection_steps()
    rows = {"latent": 0, "data": 0}
    rg.refiner.student.register_forward_hook(lambda m, i, o: rows.__setitem__("latent", rows["latent"] + len(o)))
    rg.data_rejection.student.register_forward_hook(lambda m, i, o: rows.__setitem__("data", rows["data"] + len(o)))
    out = {}
    for name, least in (("full", 10 ** 12), ("squeeze", 10_000)):
        monkeypatch.setattr(refine_module, "SQUEEZE_MIN_ROWS", least)
        monkeypatch.setattr(refiner_gan_module, "SQUEEZE_MIN_ROWS", least)
        rg.sample(10)  # the tables are built outside the count
        rows.update(latent=0, data=0)
        torch.manual_seed(4)
        out[name] = (rg.sample_with_latents(150_000), dict(rows))
    (ys, xs), seen = out["squeeze"][0], out["squeeze"][1]
    (yf, xf), full = out["full"][0], out["full"][1]
    assert torch.equal(ys, yf) and torch.equal(xs, xf)
    # the students ran on a small part of what they decide
    assert seen["latent"] < 0.3 * full["latent"] and seen["data"] < 0.3 * full["data"]
