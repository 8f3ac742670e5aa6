"""Methods as plug-ins: the registry, the up-front refusal of a method whose needs the generator
lacks, and every method's fit on a tiny 2-D setting (a MethodResult of the right shapes)."""

import os

import numpy as np
import pytest
import torch

from genrefine.generators import Generator, WGANGenerator
from genrefine.methods import (METHODS, Method, MethodResult, Needs, RunContext, check_method, fit_methods,
                               register_method)
from genrefine.presets import get_preset

pytestmark = pytest.mark.usefixtures("one_thread")

LASER = ["dctr", "rejection", "hmc", "laser", "laser-flow"]
LRW = ["latentrs", "latentga", "latentrsga", "drs", "mhgan", "sir", "dot", "drs-dctr", "mhgan-dctr", "sir-dctr"]


class NumpyLike(Generator):
    """A generator without gradients (as a numpy callable would be)."""

    family = "callable"
    differentiable = False

    def __init__(self) -> None:
        super().__init__(2, 2)

    def forward(self, z):
        return torch.as_tensor(np.tanh(z.detach().cpu().numpy()) * 2.0)


class Noisy(NumpyLike):
    family = "simulator"
    differentiable = True
    stochastic = True


def test_registry_holds_every_method_in_the_canonical_order():
    # the order is the run's order, hence its random stream: new methods go last
    assert list(METHODS)[:15] == LASER + LRW and "ddls" in METHODS
    for name, cls in METHODS.items():
        assert cls.name == name and cls.family in ("laser", "lrw") and isinstance(cls.needs, Needs)
        assert issubclass(cls, Method)
    assert METHODS["hmc"].needs.differentiable and not METHODS["sir"].needs.differentiable
    assert METHODS["sir"].needs.weights == "critic_ratio" and METHODS["sir-dctr"].needs.weights == "dctr"


def test_settings_are_the_preset_section_of_the_method():
    cfg = get_preset("quick")
    assert METHODS["hmc"].settings(cfg) == cfg["hmc"] and METHODS["ddls"].settings(cfg) == cfg["ddls"]
    assert METHODS["latentga"].settings(cfg) == cfg["lrw"]["latentga"]
    assert METHODS["drs-dctr"].settings(cfg) == cfg["lrw"]["drs"]  # a variant shares its base's settings
    assert METHODS["dctr"].settings(cfg) == {} and METHODS["latentrs"].settings(cfg) == {}


def test_register_refuses_a_second_method_of_the_same_name():
    class Other(Method):
        name = "hmc"

        def fit(self, ctx, **params):
            return MethodResult()

    with pytest.raises(ValueError, match="registered twice"):
        register_method(Other)
    with pytest.raises(ValueError, match="unknown kind"):
        Needs(weights="magic")


def test_needs_the_generator_lacks_are_refused_in_one_line():
    gen = NumpyLike()
    for name, hint in (("hmc", "; hmc-omnifold samples OmniFold's latent weights, which need no gradient of g"),
                       ("dot", ""), ("ddls", "; ddls-omnifold samples")):
        with pytest.raises(ValueError, match=f"^{name} needs a differentiable generator; 'callable' generators are "
                                             f"not differentiable{hint}"):
            check_method(gen, name)
    for name in ("dctr", "rejection", "laser", "latentrs", "latentga", "sir", "drs-dctr"):
        assert check_method(gen, name) is METHODS[name]
    # hidden randomness: weights pulled back to z are refused where a method needs them to be a
    # function of z (HMC's gradient, the ratio samplers); latent rejection and the refiners take
    # the direct pull-back (one noisy draw per latent point), the -omnifold methods OmniFold's
    for name in ("hmc", "sir-dctr", "latentrs"):
        with pytest.raises(ValueError, match=f"{name} needs weights that are a function of z.*rejection-omnifold"):
            check_method(Noisy(), name)
    for name in ("dctr", "rejection", "laser", "omnifold", "hmc-omnifold", "laser-flow-omnifold"):
        assert check_method(Noisy(), name) is METHODS[name]
    with pytest.raises(ValueError, match="unknown 'nope'; choose from dctr, rejection"):
        check_method(gen, "nope")


def test_run_refuses_before_any_training(tmp_path):
    from genrefine.pipeline import run_refinement

    x = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="hmc needs a differentiable generator"):
        run_refinement(x, methods="base,dctr,hmc", base=NumpyLike(), out=str(tmp_path / "o"), progress=False)
    assert not (tmp_path / "o").exists()


def _tiny_cfg() -> dict:
    cfg = get_preset("quick", None, "wgan-gp")
    cfg["classifier"].update(hidden=16, layers=2, epochs=1, batch_size=500)
    cfg["hmc"] = {"paper": False, "n_chains": 100, "burn_in": 5, "n_leapfrog": 3}
    cfg["ddls"] = {"step_size": 0.05, "n_steps": 5}
    cfg["laser"].update(hidden=16, layers=2, epochs=1, batch_size=500, drs={"n": 5000, "steps": 20},
                        data_rejection={"epochs": 1, "steps": 20, "boost": {"n": 5000, "steps": 20}})
    cfg["laser-flow"].update(transforms=1, hidden=[16], epochs=1, batch_size=500)
    lrw = cfg["lrw"]
    lrw["critic"].update(hidden=16, fit={"epochs": 1, "lr": 1e-3, "gp_weight": 0.1})
    lrw["w_phi"]["fit"].update(epochs=1, warmup=5, distil_size=2000, distil_epochs=1, crossfit=0, transport=0,
                               calibrate=0, smoothed_ratio=[])
    lrw["discriminator"]["epochs"] = 1
    lrw["dot_critic"]["epochs"] = 1
    for name in ("latentga", "latentrsga", "dot"):
        lrw[name].update(grid_steps=[0, 2], grid_eps=[0.05])
    return cfg


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 0.3, (1000, 2)), rng.normal(2, 0.3, (1000, 2))]).astype(np.float32)
    base = WGANGenerator(2, 2, 16, 2).freeze()
    ctx = RunContext(base, torch.as_tensor(x), _tiny_cfg(), n_samples=400, progress=False)
    return ctx, fit_methods(ctx, LASER + LRW + ["ddls"])


def test_every_method_fits_and_returns_a_method_result(fitted):
    ctx, results = fitted
    assert list(results) == LASER + LRW + ["ddls"]
    for name, r in results.items():
        assert isinstance(r, MethodResult), name
        assert r.z.shape == (400, 2) and r.x.shape == (400, 2), name
        assert torch.isfinite(r.x).all() and isinstance(r.diagnostics, dict), name
        assert (r.sampler_factory is not None) == (r.generator is None and r.weights is None), name  # samplers can redraw
        assert f"sample_{name}" in ctx.timings or name == "dctr", name
    assert results["dctr"].weights.shape == (400,) and results["rejection"].weights is None
    for name in ("laser", "laser-flow"):
        assert isinstance(results[name].generator, Generator) and results[name].generator.sample(10).shape == (10, 2)
    # the shared estimators were fitted once each and kept
    assert {"classifier", "critic", "w_phi", "discriminator", "dot_critic"} <= set(ctx.models)
    assert ctx.weights("dctr") is ctx.weights("dctr") and "train_classifier" in ctx.timings



def test_a_method_draws_the_same_numbers_whatever_else_the_run_fits(fitted):
    """Each estimator, fit and draw has its own seeded stream: a run of two of the methods, in
    the other order, gives each of them exactly what the run of all of them gave."""
    ctx, results = fitted
    alone = RunContext(ctx.base, ctx.x_train, _tiny_cfg(), n_samples=400, progress=False)
    again = fit_methods(alone, ["latentrs", "rejection"])
    for name in ("latentrs", "rejection"):
        torch.testing.assert_close(again[name].x, results[name].x, rtol=0, atol=0, msg=name)
    other = RunContext(ctx.base, ctx.x_train, _tiny_cfg(), n_samples=400, progress=False, seed=1)
    assert not torch.equal(fit_methods(other, ["latentrs"])["latentrs"].x, results["latentrs"].x)


def test_a_simulators_noise_is_part_of_each_methods_stream():
    """A simulator's hidden noise comes from its own stream: each method's block reseeds it too
    (and puts it back), so ``rejection`` draws the same rows with or without ``dctr`` before it."""
    from genrefine.generators import as_generator

    rng = np.random.default_rng(1)
    x = (rng.normal(size=(2000, 2)) * 0.5 + 1.0).astype(np.float32)
    runs = []
    for methods in (["rejection"], ["dctr", "rejection"]):
        sim = as_generator(lambda z, r: z + 0.3 * r.normal(size=z.shape), latent_dim=2, stochastic=True, seed=4)
        ctx = RunContext(sim.freeze(), torch.as_tensor(x), _tiny_cfg(), n_samples=400, progress=False)
        runs.append(fit_methods(ctx, methods)["rejection"].x)
        assert sim.seed == 4  # its own seed (the one a checkpoint records) is put back
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)


def test_a_finished_w_phi_fit_is_loaded_on_resume(fitted, tmp_path, monkeypatch):
    """A resumed run loads the finished w_φ (weights, record, seconds) instead of fitting again."""
    from genrefine.weights.latent_importance import LatentImportanceNetwork

    ctx, _ = fitted

    def ckpt(name):
        return str(tmp_path / name)

    first = RunContext(ctx.base, ctx.x_train, _tiny_cfg(), n_samples=400, progress=False, ckpt=ckpt,
                       critic=ctx.models["critic"])
    w1 = first.w_phi()
    assert {"w_phi_fitted.json", "w_phi_fitted.safetensors"} <= set(os.listdir(tmp_path))  # files, as training checkpoints
    monkeypatch.setattr(LatentImportanceNetwork, "fit", lambda *a, **k: pytest.fail("fitted again"))
    again = RunContext(ctx.base, ctx.x_train, _tiny_cfg(), n_samples=400, progress=False, ckpt=ckpt,
                       critic=ctx.models["critic"])
    w2 = again.w_phi()
    z = torch.randn(1000, 2)
    torch.testing.assert_close(w2.weight(z), w1.weight(z), rtol=0, atol=0)
    assert again.timings["train_w_phi"] == pytest.approx(first.timings["train_w_phi"])
    assert again.diagnostics["w_phi"]["resumed"] and again.diagnostics["w_phi"]["source"] == first.diagnostics["w_phi"]["source"]
    assert not any(p.requires_grad for p in w2.parameters())

def test_params_override_the_preset_and_estimators_are_reused(fitted):
    ctx, _ = fitted
    n_fits = ctx.timings["train_classifier"]
    r = fit_methods(ctx, ["ddls"], params={"ddls": {"n_steps": 2, "step_size": 0.01}})["ddls"]
    assert r.diagnostics["n_steps"] == 2 and r.diagnostics["step_size"] == 0.01 and r.z.shape == (400, 2)
    assert ctx.timings["train_classifier"] == n_fits  # the shared classifier was not fitted again


def test_params_land_in_each_methods_own_section():
    from genrefine.experiments.config import build_config

    cfg = build_config("quick", params={"hmc": {"burn_in": 7}, "sir-dctr": {"n_candidates": 3}, "ddls": {"n_steps": 9}})
    assert cfg["hmc"]["burn_in"] == 7 and cfg["lrw"]["sir"]["n_candidates"] == 3 and cfg["ddls"]["n_steps"] == 9
    assert METHODS["latentga"].settings_path() == ("lrw", "latentga") and METHODS["hmc"].settings_path() == ("hmc",)
    with pytest.raises(ValueError, match="unknown 'nope'"):
        build_config("quick", params={"nope": {"x": 1}})
