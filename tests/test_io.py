"""Checkpoints: a refined generator built on a user's module saves and loads with base=, the
file writer knows no model classes, and changed, damaged or non-finite tensors are refused."""

import ast
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import genrefine.checkpoint as checkpoint
from genrefine.api import load_critic, load_generator, save_generator
from genrefine.generators import Critic, RealNVPGenerator, WGANGenerator, as_generator
from genrefine.refine import RefinedGenerator
from genrefine.samplers.refiner_gan import RefinerGAN


class UserNet(nn.Module):
    def __init__(self, width=6):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 3))

    def forward(self, z):
        return self.net(z)


def _refined_on_user_module(seed=0):
    torch.manual_seed(seed)
    base = as_generator(UserNet(), latent_dim=2)
    refiner = RefinerGAN(2, aux_dim=3, hidden=8, layers=1, residual=False)  # not the identity
    return RefinedGenerator(base, refiner).freeze()


def _same_samples(a, b, n=50):
    torch.manual_seed(11)
    xa = a.sample(n)
    torch.manual_seed(11)
    torch.testing.assert_close(b.sample(n), xa)


def _one_line(exc_info, *words):
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, msg


def test_checkpoint_module_imports_no_model_code():
    tree = ast.parse(Path(checkpoint.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in names if m and m.startswith("genrefine")], names


def test_refined_user_module_round_trip(tmp_path):
    refined = _refined_on_user_module()
    twice = RefinedGenerator(refined, RefinerGAN(3, hidden=8, layers=1)).freeze()
    for gen, name in ((refined, "once"), (twice, "twice")):
        path = save_generator(gen, str(tmp_path / name))
        meta = json.loads((tmp_path / name / "config.json").read_text())
        assert "UserNet" in json.dumps(meta) and len(meta["sha256"]) == 64  # named, not imported
        fresh = UserNet()  # other weights: the checkpoint's go into genrefine's copy of it
        own = fresh.net[0].weight.detach().clone()
        loaded = load_generator(path, base=fresh)
        assert loaded.data_shape == (3,) and loaded.depth == gen.depth
        _same_samples(gen, loaded)
        copy = next(m for m in loaded.modules() if isinstance(m, UserNet))
        assert copy is not fresh and torch.equal(fresh.net[0].weight, own)  # the user's module is left as it was
        torch.testing.assert_close(copy.net[0].weight, refined.base.model.net[0].weight)
    with pytest.raises(ValueError) as e:
        load_generator(str(tmp_path / "twice"))
    _one_line(e, "pass base=<the same model>")
    with pytest.raises(ValueError) as e:
        load_generator(str(tmp_path / "once"), base=UserNet(width=7))
    _one_line(e, "weights do not match")
    with pytest.raises(ValueError) as e:
        load_generator(str(tmp_path / "once"), base=lambda z: np.zeros((len(z), 3)))
    _one_line(e, "does not match the checkpoint")


def test_callable_saves_settings_only(tmp_path):
    def sim(z, rng):
        return np.tanh(z) + 0.1 * rng.normal(size=z.shape)

    gen = as_generator(sim, latent_dim=2, stochastic=True, seed=5)
    path = save_generator(gen, str(tmp_path / "sim"))
    assert checkpoint.read_checkpoint(path)[1] == {}
    loaded = load_generator(path, base=sim)
    assert loaded.stochastic and loaded.seed == 5 and loaded.backend == "numpy"
    _same_samples(gen.reseed(), loaded)
    with pytest.raises(ValueError) as e:
        load_generator(path, base=lambda z, rng: np.zeros((len(z), 3)))
    _one_line(e, "does not match the checkpoint")


def test_builtin_checkpoint_refuses_base_and_loads_format_1(tmp_path):
    gen = RealNVPGenerator(2, transforms=1, hidden=(8,)).freeze()
    path = save_generator(gen, str(tmp_path / "flow"))
    with pytest.raises(ValueError) as e:
        load_generator(path, base=UserNet())
    _one_line(e, "holds no user's model")
    # a checkpoint written before digests and data_shape existed still loads
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"format_version": 1, "family": "realnvp", "extra": {},
                                                 "config": {"data_dim": 2, "transforms": 1, "hidden": [8]}}))
    save_file({k: v.contiguous() for k, v in gen.state_dict().items()}, str(old / "model.safetensors"))
    _same_samples(gen, load_generator(str(old)))
    # an unfitted refiner's NaN marker (drs_state) is recorded when saved, and loads
    rg = RefinedGenerator(gen, RefinerGAN(2, hidden=8, layers=1, drs_hidden=4, drs_layers=1)).freeze()
    assert load_generator(save_generator(rg, str(tmp_path / "drs"))).refiner.drs_state.isnan().all()


def test_changed_or_damaged_tensors_refused(tmp_path):
    gen = WGANGenerator(2, 2, hidden=8, layers=1, data_shape=(2,)).freeze()
    path = save_generator(gen, str(tmp_path / "g"))
    weights = tmp_path / "g" / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-4:] = np.float32(1e24).tobytes()  # overwrite payload bytes, header intact
    weights.write_bytes(bytes(raw))
    with pytest.raises(ValueError) as e:
        load_generator(path)
    _one_line(e, "digest")
    # without a digest (format 1), a non-finite weight is still refused
    cfg = json.loads((tmp_path / "g" / "config.json").read_text())
    del cfg["sha256"], cfg["nonfinite"]
    (tmp_path / "g" / "config.json").write_text(json.dumps(cfg))
    state = dict(gen.state_dict())
    state["net.0.weight"] = state["net.0.weight"].clone()
    state["net.0.weight"][0, 0] = float("nan")
    save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
    with pytest.raises(ValueError) as e:
        load_generator(path)
    _one_line(e, "net.0.weight", "NaN or inf")


@pytest.mark.parametrize("config, words", [
    ("[1, 2]", ["not a genrefine checkpoint config"]),
    ('{"family": "realnvp", "config": {"data_dim": 2, "oops": 1}}', ["does not fit"]),
    ('{"family": "no-such", "config": {}}', ["unknown generator family"]),
    ("{" * 5, ["unreadable config"]),
    ('{"format_version": 99, "family": "realnvp", "config": {}}', ["format 99", "newer genrefine"]),
    ('{"format_version": "2", "family": "realnvp", "config": {}}', ["not a checkpoint format"]),
    ('{"format_version": 2, "nonfinite": "x", "family": "realnvp", "config": {}}', ["'nonfinite' must list"]),
])
def test_bad_configs_refused_in_one_line(tmp_path, config, words):
    path = save_generator(RealNVPGenerator(2, transforms=1, hidden=(8,)), str(tmp_path / "g"))
    (tmp_path / "g" / "config.json").write_text(config)
    with pytest.raises(ValueError) as e:
        load_generator(path)
    _one_line(e, *words)


def test_modules_and_unregistered_generators(tmp_path):
    critic = Critic(2, hidden=8, layers=1)
    path = checkpoint.save_module(critic, critic.config(), str(tmp_path / "critic"), kind="critic")
    x = torch.randn(4, 2)
    torch.testing.assert_close(load_critic(path)(x), critic(x))
    with pytest.raises(ValueError) as e:
        load_generator(path)
    _one_line(e, "not a generator")

    class Mine(RealNVPGenerator):  # inherits the family name but is not registered
        pass

    with pytest.raises(ValueError) as e:
        save_generator(Mine(2, transforms=1, hidden=(8,)), str(tmp_path / "mine"))
    _one_line(e, "register_family")
    assert not os.path.exists(tmp_path / "mine")


def test_user_prior_needs_the_adapter_to_load(tmp_path):
    prior = torch.distributions.Independent(torch.distributions.Uniform(-torch.ones(2), torch.ones(2)), 1)
    net = UserNet()
    gen = as_generator(net, latent_dim=2, prior=prior)
    path = save_generator(gen, str(tmp_path / "u"))
    with pytest.raises(ValueError) as e:
        load_generator(path, base=UserNet())
    _one_line(e, "own prior", "as_generator")
    loaded = load_generator(path, base=as_generator(UserNet(), latent_dim=2, prior=prior))
    _same_samples(gen, loaded)
    assert loaded.prior.sample((1000,)).abs().max() <= 1.0


def test_a_write_that_fails_names_the_file_asked_for(tmp_path):
    """An atomic write's failure names the user's path, never the temporary file it wrote first."""
    from genrefine.checkpoint import atomic_save_npy

    (tmp_path / "plain").write_text("a file, not a directory")
    target = str(tmp_path / "plain" / "x.npy")
    with pytest.raises(OSError) as info:
        atomic_save_npy(target, np.zeros(3))
    assert info.value.filename == target and ".tmp-" not in str(info.value)
