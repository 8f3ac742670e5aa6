"""The Python front door refuses bad calls before any training, in one line naming the
problem, and never touches what the user owns (their files, their module's state)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from torch import nn

import genrefine

pytestmark = pytest.mark.usefixtures("one_thread")


def _decoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))


def _data(n: int = 400) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32)


def _refused(words: list[str], **call) -> None:
    """``refine(**call)`` raises one ValueError line holding ``words``, within a second (no training)."""
    start = time.perf_counter()
    with pytest.raises(ValueError) as info:
        genrefine.refine(progress=False, **call)
    msg = str(info.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("extra, words", [
    ({"method": "laser-flow", "epoch": 2}, ["laser-flow.epoch", "unknown parameter"]),
    ({"method": "laser-flow", "epochs": -2}, ["laser-flow.epochs", ">= 0"]),
    ({"method": "rejection", "epochs": 3}, ["rejection.epochs", "unknown parameter"]),
    ({"method": "hmc", "burn_in": -5}, ["hmc.burn_in"]),
    ({"method": "dctr"}, ["weighted samples", "use rejection"]),
    ({"method": "rejection", "seed": -1}, ["seed"]),
    ({"method": "rejection", "seed": 1.5}, ["seed"]),
    ({"method": "rejection", "device": "tpu"}, ["device", "tpu"]),
])
def test_bad_calls_are_refused_before_training(extra, words):
    _refused(words, generator=_decoder(), data=_data(), latent_dim=2, **extra)


def test_too_few_rows_and_ragged_rows():
    _refused(["at least 20 rows", "got 10"], generator=_decoder(), data=_data(10), latent_dim=2)
    _refused(["data"], generator=_decoder(), data=[[0.0, 1.0], [1.0]] * 20, latent_dim=2)


def test_a_setting_the_sampler_takes_is_accepted():
    gen = genrefine.refine(_decoder(), _data(), "rejection", latent_dim=2, safety=2.0, pilot_size=5000, progress=False,
                           settings={"classifier": {"epochs": 2, "hidden": 16, "layers": 2}})
    assert gen.sample(300).shape == (300, 2) and gen.sample(0).shape == (0, 2)
    with pytest.raises(ValueError, match="not saveable"):
        genrefine.save_generator(gen, "unused")
    assert not os.path.exists("unused")


def test_saving_never_replaces_what_the_user_made(tmp_path):
    gen = genrefine.as_generator(_decoder(), latent_dim=2)
    mine = tmp_path / "mydata.npy"
    mine.write_bytes(b"the user's bytes")
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    for target in (mine, folder):
        with pytest.raises(ValueError, match="choose another path"):
            genrefine.save_generator(gen, str(target))
    assert mine.read_bytes() == b"the user's bytes" and (folder / "notes.txt").read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["mydata.npy", "project"]
    saved = tmp_path / "model"
    genrefine.save_generator(gen, str(saved))
    genrefine.save_generator(gen, str(saved))  # an earlier checkpoint is replaced
    assert sorted(os.listdir(tmp_path)) == ["model", "mydata.npy", "project"]


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)

    def forward(self, z):
        return self.lin(z)


class _ElsewhereOut(_Linear):
    def forward(self, z):
        return self.lin(z).to("meta")  # stands for an output left on another device


@pytest.mark.parametrize("call, kind, words", [
    (lambda: genrefine.refine(_decoder(), _data(), method=["rejection"], latent_dim=2), TypeError, "one method's name"),
    (lambda: genrefine.compare(_decoder(), None, latent_dim=2), TypeError, "got NoneType"),
    (lambda: genrefine.compare(_decoder(), {"x": _data()}, latent_dim=2), TypeError, "got dict"),
    (lambda: genrefine.compare(_decoder(), _data(), methods=[], latent_dim=2), ValueError, "at least one method"),
    (lambda: genrefine.as_generator(_Linear, latent_dim=2), TypeError, "the class _Linear, not a model"),
    (lambda: genrefine.as_generator(_ElsewhereOut(), latent_dim=2), ValueError, "on device meta for latents on cpu"),
], ids=["method-list", "data-none", "data-dict", "no-methods", "a-class", "output-device"])
def test_wrong_kinds_of_arguments_are_named(call, kind, words):
    start = time.perf_counter()
    with pytest.raises(kind, match=words):
        call()
    assert time.perf_counter() - start < 5.0  # refused before anything trains
