"""The front door: ``genrefine.refine`` and ``genrefine.compare`` on a user's numpy function."""

from __future__ import annotations

import numpy as np
import pytest

import genrefine
from genrefine.metrics import energy_distance
from genrefine.refine import SampledGenerator

from .test_run_anydim import CLASSIFIER, two_modes_16d

pytestmark = pytest.mark.usefixtures("one_thread")

SCALE = np.r_[2.0, np.full(15, 0.2)].astype(np.float32)


def bridge(z: np.ndarray) -> np.ndarray:
    """A user's numpy generator in 16-D that fills the gap between the data's two modes."""
    return z * SCALE


def test_compare_ranks_and_hands_back_every_sampler_as_a_generator():
    data = two_modes_16d(3000, seed=2)
    report = genrefine.compare(bridge, data, methods=["rejection", "sir-dctr"], latent_dim=16, n_samples=1000,
                               settings=CLASSIFIER, seed=1, progress=False)
    assert report.methods == ["base", "rejection", "sir-dctr"] and report.key == "energy"
    assert set(report.generators) == {"base", "rejection", "sir-dctr"}
    assert report.recommended in ("rejection", "sir-dctr"), report.summary()
    best = report.generators[report.recommended]
    assert isinstance(best, SampledGenerator)
    truth = two_modes_16d(2000, seed=9)
    x_best = best.sample(2000).cpu().numpy()
    x_base = report.generators["base"].sample(2000).cpu().numpy()
    assert x_best.shape == (2000, 16) and np.isfinite(x_best).all()
    # on fresh truth the recommended sampler stays well below the base (0.058 against 0.105 measured)
    assert energy_distance(truth, x_best, mm=True) < 0.7 * energy_distance(truth, x_base, mm=True)


def test_refine_returns_a_sampler_generator_that_follows_the_weights():
    data = two_modes_16d(3000, seed=3)
    refined = genrefine.refine(bridge, data, "rejection", latent_dim=16, settings=CLASSIFIER, progress=False)
    assert isinstance(refined, SampledGenerator)
    x = refined.sample(3000).cpu().numpy()
    # |x1| < 1 is the bridge: the base puts 38% of its samples there, the data 0.6%
    assert np.mean(np.abs(x[:, 0]) < 1.0) < 0.12
    with pytest.raises(ValueError, match="weighted samples, not a generator"):
        genrefine.refine(bridge, data, "dctr", latent_dim=16, settings=CLASSIFIER, progress=False)


def test_sharpened_weights_lean_further_toward_the_weighted_mode():
    """A generator drawing two modes 50/50 against data at 80/20: the classifier's weights give the
    big mode about 0.8 of the samples; sharpened (w^2, capped at the weights' 99th percentile,
    which sits on the big mode's weight) about 0.8^2 / (0.8^2 + 0.2^2) = 0.94."""
    rng = np.random.default_rng(0)
    data = np.where(rng.random((4000, 1)) < 0.8, 3.0, -3.0) + 0.3 * rng.normal(size=(4000, 1))

    def modes(z):
        return np.where(z[:, :1] > 0, 3.0, -3.0) + 0.3 * z[:, 1:]

    def share(gen):
        return float((gen.sample(4000).cpu().numpy() > 0).mean())

    plain = genrefine.refine(modes, data, "rejection", latent_dim=2, seed=0, progress=False)
    sharp = genrefine.refine(modes, data, "rejection", latent_dim=2, seed=0, progress=False,
                             settings={"classifier": {"sharpen": 2.0}})
    assert 0.74 < share(plain) < 0.86 and share(sharp) > 0.9, (share(plain), share(sharp))


def test_sharpening_a_simulator_with_hidden_noise_is_said_to_be_ignored():
    """A stochastic generator has no weight per latent point to sharpen: the run says so."""
    from genrefine.generators import as_generator

    rng = np.random.default_rng(0)
    data = rng.normal(size=(2000, 2)) + 1.0

    def sim(z, rng):
        return z + 0.5 * rng.normal(size=z.shape)

    gen = as_generator(sim, latent_dim=2, stochastic=True, seed=0)
    with pytest.warns(UserWarning, match="sharpen=2.0 is ignored"):
        genrefine.compare(gen, data, ["rejection"], seed=0, progress=False, n_samples=500,
                          settings={"classifier": {"sharpen": 2.0, "epochs": 3}})
