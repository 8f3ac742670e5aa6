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
