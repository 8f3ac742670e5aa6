"""Edges an adversarial user finds: each is one clear ValueError, never a hang, a crash or a
silently wrong result."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from genrefine.data import load_array
from genrefine.experiments.config import build_config
from genrefine.generators import RealNVPGenerator
from genrefine.generators.adapters import as_generator
from genrefine.training import train_loop
from genrefine.usercode import load_user_object
from genrefine.weights.classifier import DensityRatioClassifier

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_named_like_data_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "x.npy"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        load_array(str(fifo))


def test_user_code_that_exits_is_an_error_not_an_exit(tmp_path):
    at_import = tmp_path / "at_import.py"
    at_import.write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(ValueError, match="SystemExit"):
        load_user_object(f"python:{at_import}:g")

    state = {"quit": False}

    def quits_later(z):
        if state["quit"]:
            raise SystemExit(0)
        return z * 2

    gen = as_generator(quits_later, latent_dim=2)  # the probes pass, the run's own call exits
    state["quit"] = True
    with pytest.raises(ValueError, match=r"called sys.exit\(0\)"):
        gen.sample(10)

    with pytest.raises(ValueError, match="SystemExit"):
        as_generator(lambda z: (_ for _ in ()).throw(SystemExit(1)), latent_dim=2)


@pytest.mark.parametrize("settings, words", [
    ({"base": {"transforms": 200_000}}, "base.transforms: a network size must be between 1 and 256"),
    ({"classifier": {"hidden": 10_000_000}}, "classifier.hidden: a network size must be between 1 and 8192"),
    ({"base": {"hidden": [48, 0]}}, r"base.hidden\[1\]: a network size"),
    ({"classifier": {"epochs": 10 ** 400}}, "classifier.epochs: .* is not a finite number"),
])
def test_settings_are_bounded_before_anything_is_built(settings, words):
    with pytest.raises(ValueError, match=words):
        build_config("quick", settings=settings)


@pytest.mark.parametrize("n", [2.5, -1, True, "3"])
def test_sample_counts_must_be_whole_and_not_negative(n):
    gen = RealNVPGenerator(2, 2, [8])
    with pytest.raises(ValueError, match="n must be an integer >= 0"):
        gen.sample(n)
    assert gen.sample(np.int64(3)).shape == (3, 2) and gen.sample(0).shape == (0, 2)


@pytest.mark.parametrize("kwargs", [{"data_dim": 0}, {"data_dim": 2, "transforms": 0}, {"data_dim": 2, "hidden": [0]},
                                    {"data_dim": 2, "hidden": []}])
def test_no_empty_flow_is_built(kwargs):
    with pytest.raises(ValueError):
        RealNVPGenerator(**kwargs)


def test_learning_rates_beyond_one_are_refused():
    x = torch.randn(200, 2)
    with pytest.raises(ValueError, match=r"learning rate .* must be a number in \(0, 1\]"):
        RealNVPGenerator(2, 2, [8]).fit(x, epochs=1, lr=1e6, progress=False)
    with pytest.raises(ValueError, match=r"lr must be a number in \(0, 1\]"):
        DensityRatioClassifier(2, 8, 2).fit(x, x + 1, epochs=1, lr=1e6, progress=False)


def test_a_finite_but_exploded_loss_stops_training():
    w = torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([w], lr=0.1)

    def step(xb):
        loss = (w * 10.0).square().mean() * (10.0 ** (8 * int(step.calls > 0)))  # first epoch ~1e2, then ~1e10
        step.calls += 1
        return {"loss": loss.item()}

    step.calls = 0
    with pytest.raises(ValueError, match="regression: exploded loss at epoch 2 of 5: loss = 1e\\+10"):
        train_loop(step, (torch.zeros(4),), {}, {"sgd": opt}, 5, 4, desc="regression", progress=False)
