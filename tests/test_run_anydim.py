"""``run_refinement`` on data of any dimension: 16-D tabular rows and (1, 8, 8) images scored by
the suite (each score with its floor) and ranked; every check that can be made before training
refuses before anything is trained or written; non-finite outputs are never written; the run
directory holds only the run that wrote it."""

import json
import re

import numpy as np
import pytest
import torch
from torch import nn

import genrefine.experiments.run as run_module
from genrefine.experiments.run import check_device, check_finite_outputs, default_methods, run_refinement
from genrefine.generators.adapters import as_generator
from genrefine.methods import MethodResult

pytestmark = pytest.mark.usefixtures("one_thread")

# lr 0.01: at 3e-3 the 16-D classifier sits on its first plateau until early stopping ends it
CLASSIFIER = {"classifier": {"hidden": 32, "layers": 2, "epochs": 40, "batch_size": 256, "lr": 0.01}}


def two_modes_16d(n: int = 3000, seed: int = 0) -> np.ndarray:
    """16-D rows: two modes at x1 = +-2 (std 0.4), the other coordinates N(0, 0.2^2)."""
    rng = np.random.default_rng(seed)
    x = 0.2 * rng.standard_normal((n, 16))
    x[:, 0] = rng.choice([-2.0, 2.0], n) + 0.4 * rng.standard_normal(n)
    return x.astype(np.float32)


def wide_gaussian() -> "torch.nn.Module":
    """A user's generator in 16-D that bridges the two modes: x1 = 2 z1, the others 0.2 z."""
    scale = 0.2 * torch.ones(16)
    scale[0] = 2.0
    return as_generator(lambda z: z * scale.to(z.device), latent_dim=16)


def test_16d_user_base_suite_scores_ranking_and_files(tmp_path):
    out = tmp_path / "run"
    res = run_refinement(two_modes_16d(), methods="base,dctr,sir-dctr", base=wide_gaussian(), n_samples=1000,
                         out=str(out), progress=False, settings=CLASSIFIER, seed=1)
    m = json.loads((out / "metrics.json").read_text())
    assert m["scoring"] == "suite" and m["dim"] == 16 and m["data_shape"] == [16] and m["base_family"] == "callable"
    assert m["n_train"] == 2400 and m["n_truth"] == 300
    for method in ("base", "dctr", "sir-dctr"):
        s = m["scores"][method]
        # no 2-D histograms in 16-D: the marginal ones
        assert set(s) == {"energy", "exact_emd", "precision", "recall", "c2st_auc", "marginal_jsd"}
        assert all(np.isfinite(v["value"]) and np.isfinite(v["floor"]) for v in s.values())
    assert m["scores"]["dctr"]["energy"]["floor"] == m["scores"]["base"]["energy"]["floor"]  # same truth rows
    r = m["ranking"]
    assert r["key"] == "energy" and r["direction"] == "lower" and r["ranking"][0]["method"] == r["best"]
    gaps = {e["method"]: e["gap_closed"] for e in r["ranking"]}
    # resampling by the classifier's weights pulls the bridge back into the modes (82-102 % of
    # the gap to the floor on four seeds); weights that do not would leave it at 0
    assert m["diagnostics"]["classifier"]["auc"] > 0.7
    assert gaps["sir-dctr"] > 0.5 and r["recommended"] == "sir-dctr" and r["best_beats_base"], r
    assert res.ranking == r
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == ["pairs_base.png", "pairs_dctr.png", "pairs_sir-dctr.png"]  # no 2-D plane of two columns
    assert np.load(out / "samples" / "sir-dctr.npy").shape == (1000, 16)
    assert (out / "run.json").exists()


@pytest.mark.parametrize("family", ["realnvp", "wgan-gp"])
def test_16d_trained_base_families(family):
    tiny = {"base": {"transforms": 1, "hidden": [16], "epochs": 1, "batch_size": 500},
            "wgan": {"hidden": 16, "epochs": 1}, "classifier": {"hidden": 16, "layers": 2, "epochs": 1}}
    res = run_refinement(two_modes_16d(600), methods="base,dctr", base_family=family, n_samples=300,
                         progress=False, settings=tiny)
    assert res.models["base"].data_dim == 16 and res.samples["dctr"].shape == (300, 16)
    assert res.metrics["scoring"] == "suite" and "energy" in res.metrics["scores"]["dctr"]


class TinyDecoder(nn.Module):
    """A user's image generator: z (2) -> 8 x 8 image in [0, 1] (untrained, seeded)."""

    latent_dim = 2

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.net = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 64), nn.Sigmoid())

    def forward(self, z):
        return self.net(z).view(-1, 1, 8, 8)


def test_digits_images_with_a_users_decoder(tmp_path):
    out = tmp_path / "run"
    res = run_refinement("digits", methods="base,dctr,sir-dctr", base=as_generator(TinyDecoder()), n_samples=400,
                         out=str(out), progress=False, settings={"classifier": {"epochs": 2, "batch_size": 256}})
    m = res.metrics
    # a finite built-in set is split like a file: 1,797 rows, 20 % held out and halved
    assert m["n_train"] == 1797 - 359 and m["n_truth"] == 179 and m["data_shape"] == [1, 8, 8]
    assert type(res.models["classifier"]).__name__ == "FeatureRatioClassifier"  # on the images' learned code
    assert json.loads((out / "models" / "classifier" / "config.json").read_text())["kind"] == "feature_classifier"
    s = m["scores"]["base"]
    assert {"frechet_features", "precision_features", "recall_features", "c2st_auc"} <= set(s)
    assert "hist_jsd" not in s
    assert s["frechet_features"]["value"] > 3 * s["frechet_features"]["floor"]  # grey blobs are not digits
    assert m["ranking"]["key"] == "frechet_features"
    clf = m["diagnostics"]["classifier"]
    assert 0.5 <= clf["auc"] <= 1 and isinstance(clf["degenerate"], bool)
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == ["images.png", "interpolation.png", "latent.png"]  # no training monitor: the model came given


def test_image_array_and_a_flat_base_agree_on_the_shape():
    x = np.random.default_rng(0).random((300, 8, 8)).astype(np.float32)
    base = as_generator(lambda z: torch.sigmoid(z.repeat(1, 32)), latent_dim=2)  # flat rows of 64
    assert base.data_shape == (64,)
    res = run_refinement(x, methods="base", base=base, n_samples=200, progress=False)
    assert res.data_shape == (1, 8, 8) and base.data_shape == (1, 8, 8)
    assert "frechet_features" in res.metrics["scores"]["base"]


@pytest.mark.parametrize("kwargs, words", [
    ({"data": "digits", "scoring": "lrw"}, "--scoring suite"),            # 179 truth rows for 2000 x 10
    ({"data": "16d", "scoring": "laser"}, "2-D data"),
    ({"data": "16d", "n_samples": 10 ** 13}, "GiB"),
    ({"data": "16d", "n_samples": 2.5}, "n-samples"),
    ({"data": "16d", "settings": {"classifier": {"nope": 1}}}, "classifier.nope"),
    ({"data": "16d", "settings": {"hmc": {"burn_in": -1}}}, "hmc.burn_in"),
    ({"data": "16d", "device": "gpu"}, "device"),
    ({"data": "16d", "device": "meta"}, "device"),
    ({"data": "16d", "holdout": 0.001}, "held-out truth rows"),
    ({"data": "16d", "out": ""}, "out"),
    ({"data": "16d", "base": "8x8"}, "(1, 2, 4)"),                       # makes 8 values, data has 16
    ({"data": "img", "base": "2x8"}, "(1, 2, 8)"),                       # same size, another image shape
])
def test_refused_before_training_and_nothing_written(tmp_path, monkeypatch, kwargs, words):
    def no_training(*a, **k):
        raise AssertionError("trained before refusing")

    monkeypatch.setattr(run_module, "_fit_base", no_training)
    data = {"16d": two_modes_16d(200), "digits": "digits",
            "img": np.random.default_rng(0).random((200, 4, 4)).astype(np.float32)}[kwargs.pop("data")]
    shapes = {"8x8": (1, 2, 4), "2x8": (1, 2, 8)}
    dim = 16 if not isinstance(data, str) else 64
    shape = shapes.get(kwargs.pop("base", None), (dim,))
    base = as_generator(lambda z: z.repeat(1, int(np.prod(shape)) // 2), latent_dim=2, data_shape=shape)
    kwargs = {"out": str(tmp_path / "o"), "base": base, "methods": "base,dctr", "progress": False, **kwargs}
    with pytest.raises(ValueError, match=re.escape(words)):
        run_refinement(data, **kwargs)
    assert not (tmp_path / "o").exists()


def test_check_device():
    assert check_device("cpu").type == "cpu"
    for bad in ("gpu", "meta", "mps", "cuda:99"):
        with pytest.raises(ValueError, match="device"):
            check_device(bad)


def test_default_methods_follow_what_the_base_offers():
    assert default_methods("realnvp")[:3] == ["base", "dctr", "rejection"]
    assert "hmc" in default_methods(wide_gaussian())
    numpy_base = as_generator(lambda z: 2.0 * np.asarray(z), latent_dim=2)
    assert not numpy_base.differentiable and "hmc" not in default_methods(numpy_base)
    assert {"rejection", "laser", "laser-flow", "sir-dctr"} <= set(default_methods(numpy_base))
    sim = as_generator(lambda z, rng: np.asarray(z) + rng.normal(size=z.shape), latent_dim=2, stochastic=True)
    # hidden randomness: the direct pull-back beside OmniFold's latent weights
    assert default_methods(sim) == ["base", "dctr", "rejection", "omnifold", "rejection-omnifold", "hmc-omnifold",
                                    "laser-omnifold"]


def test_non_finite_outputs_are_never_written(tmp_path, monkeypatch):
    def nan_method(ctx, names, **kw):
        z = torch.zeros(ctx.n_samples, 16)
        x = torch.full((ctx.n_samples, 16), float("nan"))
        return {"dctr": MethodResult(z=z, x=x)}

    monkeypatch.setattr(run_module, "fit_methods", nan_method)
    out = tmp_path / "o"
    with pytest.raises(ValueError, match="method dctr: 200 of 200 samples are NaN or inf; nothing was written"):
        run_refinement(two_modes_16d(300), methods="base,dctr", base=wide_gaussian(), n_samples=200, out=str(out),
                       progress=False)
    assert not (out / "metrics.json").exists() and not (out / "samples").exists()
    res = run_module.RefinementResult(samples={"dctr": np.ones((5, 2))}, latents={"dctr": np.ones((5, 2))},
                                      weights={"dctr": np.array([1.0, np.inf, 1, 1, 1])})
    with pytest.raises(ValueError, match="method dctr: its weights"):
        check_finite_outputs(res)


def test_rerun_holds_only_the_new_run_and_resume_checks_the_data(tmp_path):
    out = tmp_path / "run"
    kw = {"base": wide_gaussian(), "n_samples": 200, "out": str(out), "progress": False,
          "settings": {"classifier": {"epochs": 1, "hidden": 8, "layers": 1}}}
    run_refinement(two_modes_16d(300), methods="base,dctr,sir-dctr", **kw)
    assert (out / "samples" / "sir-dctr.npy").exists()
    run_refinement(two_modes_16d(300), methods="base,dctr", **kw)
    assert not (out / "samples" / "sir-dctr.npy").exists() and (out / "samples" / "dctr.npy").exists()
    assert json.loads((out / "metrics.json").read_text())["methods"] == ["base", "dctr"]
    with pytest.raises(ValueError, match="cannot resume"):
        run_refinement(two_modes_16d(300, seed=5), methods="base,dctr", resume=True, **kw)
    assert json.loads((out / "metrics.json").read_text())["methods"] == ["base", "dctr"]  # the old run stands


def test_a_method_that_refuses_is_left_out_of_the_comparison(tmp_path, monkeypatch):
    from genrefine.methods import METHODS

    def refuse(self, ctx, **params):
        raise ValueError("sir-dctr: acceptance below 1e-6 (degenerate weights)")

    monkeypatch.setattr(METHODS["sir-dctr"], "fit", refuse)
    out = tmp_path / "o"
    with pytest.warns(UserWarning, match="sir-dctr left out of the comparison"):
        res = run_refinement(two_modes_16d(300), methods="base,dctr,sir-dctr", base=wide_gaussian(), n_samples=200,
                             out=str(out), progress=False, settings={"classifier": {"epochs": 1}})
    m = json.loads((out / "metrics.json").read_text())
    assert m["failed"] == {"sir-dctr": "sir-dctr: acceptance below 1e-6 (degenerate weights)"}
    assert set(m["scores"]) == {"base", "dctr"} and {e["method"] for e in m["ranking"]["ranking"]} == {"base", "dctr"}
    assert not (out / "samples" / "sir-dctr.npy").exists() and "sir-dctr" not in res.samples


def test_outputs_on_another_scale_than_the_data_are_said():
    """A generator in [0, 255] against images read as [0, 1]: one warning that names both spreads."""
    import torch

    from genrefine.experiments.run import warn_scale_mismatch

    rng = np.random.default_rng(0)
    data = rng.random((500, 64)).astype(np.float32)
    with pytest.warns(UserWarning, match="different scales .spread 73.* against 0.28"):
        warn_scale_mismatch(data, torch.as_tensor(255 * rng.random((500, 64))))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_scale_mismatch(data, torch.as_tensor(1.5 * rng.random((500, 64))))  # off, but on the same scale
