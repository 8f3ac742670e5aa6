"""as_generator turns a user's module, torch function, numpy function or stochastic simulator
into a Generator: shapes and gradients inferred, randomness seeded, every bad case refused in
one line naming the model."""

import numpy as np
import pytest
import torch
from torch import nn

from genrefine.generators import CallableGenerator, ModuleGenerator, as_generator


class Decoder(nn.Module):
    """z (n, 2) -> images (n, 28, 28)."""

    def __init__(self, latent_dim=2):
        super().__init__()
        self.lin = nn.Linear(latent_dim, 28 * 28)

    def forward(self, z):
        return torch.sigmoid(self.lin(z)).view(-1, 28, 28)


class VAE(nn.Module):
    latent_dim = 3

    def __init__(self):
        super().__init__()
        self.dec = nn.Linear(3, 5)

    def decode(self, z):
        return self.dec(z)


def _one_line(exc_info, *words):
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, msg


def test_module_shape_and_gradients_inferred():
    dec = Decoder()
    gen = as_generator(dec, latent_dim=2)
    assert isinstance(gen, ModuleGenerator) and gen.family == "module"
    assert gen.data_shape == (1, 28, 28) and gen.data_dim == 784 and gen.differentiable and not gen.stochastic
    z = torch.randn(5, 2, requires_grad=True)
    x = gen(z)
    assert x.shape == (5, 784) and x.dtype == torch.float32
    torch.testing.assert_close(x, dec(z).reshape(5, -1))
    (g,) = torch.autograd.grad(x.sum(), z)
    assert g.abs().sum() > 0
    assert gen.sample(7).shape == (7, 784)
    # a bound method of a module (a VAE's decoder) is a module generator; latent_dim from the module
    vae = VAE()
    gv = as_generator(vae.decode)
    assert isinstance(gv, ModuleGenerator) and gv.call == "decode" and gv.latent_dim == 3 and gv.data_shape == (5,)
    assert dict(gv.state_dict()).keys() == {"model.dec.weight", "model.dec.bias"}


def test_torch_callable_differentiability_inferred():
    w = torch.randn(2, 3)
    smooth = as_generator(lambda z: torch.tanh(z @ w), latent_dim=2)
    assert isinstance(smooth, CallableGenerator) and smooth.backend == "torch" and smooth.differentiable
    assert smooth.data_shape == (3,)
    cut = as_generator(lambda z: (z @ w).detach().round(), latent_dim=2)
    assert cut.backend == "torch" and not cut.differentiable
    blocked = as_generator(lambda z: torch.tanh(z @ w), latent_dim=2, differentiable=False)
    assert not blocked.differentiable


def test_numpy_callable_images_flattened():
    def render(z):  # (n, 2) -> (n, 4, 6)
        return np.tanh(z[:, :1, None] * np.ones((1, 4, 6)) + z[:, 1:, None])

    gen = as_generator(render, latent_dim=2)
    assert gen.backend == "numpy" and gen.data_shape == (1, 4, 6) and not gen.differentiable
    z = torch.randn(9, 2)
    x = gen(z)
    assert x.shape == (9, 24) and x.dtype == torch.float32
    np.testing.assert_allclose(x.numpy(), render(z.numpy().astype(np.float64)).reshape(9, -1), rtol=1e-6)
    assert as_generator(render, latent_dim=2, data_shape=(24,)).data_shape == (24,)


def _simulator(z, rng):
    return z ** 2 + rng.normal(size=z.shape)


def test_stochastic_numpy_reproducible_with_seed():
    gen = as_generator(_simulator, latent_dim=3, stochastic=True, seed=7)
    assert gen.stochastic and not gen.differentiable and gen.backend == "numpy"
    z = torch.randn(2000, 3)
    a = gen.generate(z)
    b = gen.generate(z)
    assert not torch.equal(a, b)  # hidden randomness: same z, new noise
    torch.testing.assert_close(as_generator(_simulator, latent_dim=3, stochastic=True, seed=7).generate(z), a)
    torch.testing.assert_close(gen.reseed().generate(z), a)
    other = as_generator(_simulator, latent_dim=3, stochastic=True, seed=8).generate(z)
    assert not torch.equal(other, a)
    # the noise is what f draws: unit variance around z^2
    assert abs((a - z ** 2).var().item() - 1.0) < 0.05
    with pytest.raises(ValueError) as e:
        as_generator(_simulator, latent_dim=3, stochastic=True, differentiable=True)
    _one_line(e, "_simulator", "numpy")


def test_prior_and_streams():
    dec = Decoder()
    torch.manual_seed(3)
    before = torch.rand(4)
    torch.manual_seed(3)
    gen = as_generator(dec, latent_dim=2)   # the probe leaves the global stream alone
    torch.testing.assert_close(torch.rand(4), before)
    torch.manual_seed(0)
    z = gen.prior.sample((5,))
    torch.manual_seed(0)
    torch.testing.assert_close(z, torch.randn(5, 2))  # standard normal, the built-in families' stream
    prior = torch.distributions.Independent(torch.distributions.Normal(torch.full((2,), 3.0), torch.ones(2)), 1)
    shifted = as_generator(Decoder(), latent_dim=2, prior=prior)
    assert abs(shifted.prior.sample((4000,)).mean().item() - 3.0) < 0.1
    assert shifted.double().prior.base_dist.loc.dtype == torch.float64  # follows .to() like a buffer
    with pytest.raises(ValueError) as e:
        as_generator(Decoder(), latent_dim=2, prior=torch.distributions.Normal(0.0, 1.0))
    _one_line(e, "Decoder", "event shape")
    with pytest.raises(TypeError):
        as_generator(Decoder(), latent_dim=2, prior="normal")



def test_diagonal_normal_draws_what_normal_draws():
    """The built-in prior samples by one scaled randn: the same numbers, on the same stream, as
    ``Independent(Normal(loc, scale), 1).sample``, and the same density."""
    from genrefine.generators.base import DiagonalNormal

    loc, scale = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([2.0, 0.3, 1.0])
    fast, slow = DiagonalNormal(loc, scale), torch.distributions.Independent(torch.distributions.Normal(loc, scale), 1)
    for shape in [(), (7,), (50_000,), (3, 4)]:
        torch.manual_seed(1)
        a = fast.sample(shape)
        torch.manual_seed(1)
        b = slow.sample(shape)
        assert a.shape == b.shape == (*shape, 3) and torch.equal(a, b)
    torch.testing.assert_close(fast.log_prob(a), slow.log_prob(a))
    assert fast.expand((4,)).sample().shape == (4, 3)

def test_invertible_only_when_declared():
    class Affine(nn.Module):
        def forward(self, z):
            return 2 * z + 1

        def inverse(self, x):
            return (x - 1) / 2

    assert not as_generator(Affine(), latent_dim=2).invertible
    gen = as_generator(Affine(), latent_dim=2, invertible=True)
    x = torch.randn(3, 2)
    torch.testing.assert_close(gen.inverse(gen(x)), x)
    with pytest.raises(ValueError) as e:
        as_generator(Decoder(), latent_dim=2, invertible=True)
    _one_line(e, "Decoder", "inverse")


@pytest.mark.parametrize("model, kwargs, error, words", [
    (Decoder(), {"latent_dim": 3}, ValueError, ["Decoder", "RuntimeError", "dimension 3"]),
    (lambda z: 1 / 0, {"latent_dim": 2}, ValueError, ["<lambda>", "ZeroDivisionError"]),
    (lambda z: [1.0, 2.0], {"latent_dim": 2}, TypeError, ["<lambda>", "list"]),
    (lambda z: np.array(["a"] * len(z)), {"latent_dim": 2}, TypeError, ["dtype"]),
    (lambda z: np.zeros((3, 2)), {"latent_dim": 2}, ValueError, ["(3, 2)", "one row per latent point"]),
    (lambda z: np.log(np.zeros((len(z), 2))), {"latent_dim": 2}, ValueError, ["NaN or inf"]),
    (lambda z: np.zeros((len(z), 2)), {}, ValueError, ["latent_dim is required"]),
    (lambda z: np.zeros((len(z), 2)), {"latent_dim": 0}, ValueError, ["latent_dim", "positive integer"]),
    (lambda z: np.zeros((len(z), 2)), {"latent_dim": 2.5}, ValueError, ["latent_dim", "positive integer"]),
    (VAE().decode, {"latent_dim": 2}, ValueError, ["latent_dim=2", "3"]),
    (lambda z: np.zeros((len(z), 2)), {"latent_dim": 2, "data_shape": (3,)}, ValueError, ["data_shape", "2 values"]),
    (lambda z: z.detach(), {"latent_dim": 2, "differentiable": True}, ValueError, ["does not depend on z"]),
    (42, {"latent_dim": 2}, TypeError, ["int"]),
], ids=["module-latent", "raises", "list", "strings", "rows", "nan", "no-latent", "zero-latent", "float-latent",
        "attr-mismatch", "data-shape", "not-differentiable", "not-callable"])
def test_bad_models_refused_in_one_line(model, kwargs, error, words):
    with pytest.raises(error) as e:
        as_generator(model, **kwargs)
    _one_line(e, *words)


def test_faults_after_the_probe_refused():
    state = {"dim": 2}
    gen = as_generator(lambda z: np.zeros((len(z), state["dim"])), latent_dim=2, name="sim")
    state["dim"] = 3
    with pytest.raises(ValueError) as e:
        gen.sample(10)
    _one_line(e, "sim", "(3,)", "first call")

    def blows_up(z):  # finite at the probe's points, not in the far tail
        out = z.copy()
        out[np.abs(z[:, 0]) > 3.0] = np.inf
        return out

    gen = as_generator(blows_up, latent_dim=2)
    with pytest.raises(ValueError) as e:
        gen.sample(5000)
    _one_line(e, "blows_up", "NaN or inf")


def test_the_users_module_is_left_as_it_was():
    """genrefine freezes and evaluates its own copy: the user's module keeps training mode and
    gradients (a user trains it on after refining), and its later changes do not reach the copy."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5), nn.Linear(8, 3)).train()
    gen = as_generator(net, latent_dim=2).freeze()
    assert net.training and all(p.requires_grad for p in net.parameters())
    assert not gen.training and not any(p.requires_grad for p in gen.parameters())
    z = torch.randn(5, 2)
    before = gen(z)
    assert torch.equal(before, gen(z))  # the copy is in eval mode: dropout is off
    net(z).sum().backward()  # the user's module still trains
    with torch.no_grad():
        net[0].weight.add_(1.0)
    assert torch.equal(gen(z), before)
    vae = VAE()
    decoder = as_generator(vae.decode)
    assert decoder.model is not vae and torch.equal(decoder(z[:, :0].new_ones(4, 3)), vae.decode(torch.ones(4, 3)))


def test_a_float64_module_takes_float64_latents():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    gen = as_generator(net, latent_dim=2)
    z = torch.randn(6, 2)
    x = gen(z)
    assert x.dtype == torch.float32 and torch.allclose(x, net(z.double()).float())
    assert gen.differentiable
