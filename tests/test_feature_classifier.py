"""The DCTR classifier on learned image features, and the unbiased energy distance its tempering uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrefine.metrics.distances import energy_distance
from genrefine.methods.estimators import build_classifier
from genrefine.weights.classifier import ConvRatioClassifier, DensityRatioClassifier
from genrefine.weights.feature_classifier import FeatureRatioClassifier

SHAPE = (1, 8, 8)


def _images(n: int, bright: float, seed: int) -> torch.Tensor:
    """8 x 8 images: a bar at a random row whose brightness is ``bright``, plus faint noise."""
    g = torch.Generator().manual_seed(seed)
    x = 0.05 * torch.rand(n, 8, 8, generator=g)
    rows = torch.randint(0, 8, (n,), generator=g)
    x[torch.arange(n), rows, :] += bright
    return x.reshape(n, 64)


def test_unbiased_energy_distance_has_no_small_sample_bias():
    rng = np.random.default_rng(0)
    v, u = [], []
    for _ in range(200):
        a, b = rng.normal(size=(20, 2)), rng.normal(size=(20, 2))
        v.append(energy_distance(a, b))
        u.append(energy_distance(a, b, unbiased=True))
    assert np.mean(v) > 0.1  # the V-statistic's O(1/n) bias for two draws of one law
    assert abs(np.mean(u)) < 3 * np.std(u) / np.sqrt(len(u))
    # the weighted form against brute force on three points
    x, y = np.array([[0.0], [1.0]]), np.array([[0.0], [2.0], [5.0]])
    wy = np.array([0.5, 0.25, 0.25])
    d = np.abs(x - y.T)
    exy = (0.5 * d * wy).sum()
    eyy = (np.outer(wy, wy) * np.abs(y - y.T)).sum() / (1 - (wy ** 2).sum())
    exx = (0.25 * np.abs(x - x.T)).sum() / 0.5
    assert energy_distance(x, y, weights_y=wy, unbiased=True) == pytest.approx(2 * exy - exx - eyy, abs=1e-12)


def test_feature_classifier_learns_what_the_images_show():
    torch.manual_seed(0)
    data, gen = _images(1500, 1.0, 1), _images(3000, 0.6, 2)  # the generator draws faint bars
    clf = FeatureRatioClassifier(SHAPE, features=8, width=8, ae_epochs=5).fit(data, gen, epochs=30, progress=False)
    held_out = _images(500, 1.0, 3), _images(500, 0.6, 4)
    assert clf.diagnose(*held_out).auc > 0.9
    x = held_out[1][:5].clone().requires_grad_(True)
    clf.log_weight(x).sum().backward()  # differentiable through the frozen encoder, for HMC
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in clf.encoder.parameters())


def test_feature_classifier_round_trips_and_refuses_what_it_cannot_do(tmp_path):
    from genrefine.checkpoint import load_module
    from genrefine.experiments.outputs import save_model

    torch.manual_seed(1)
    clf = FeatureRatioClassifier(SHAPE, features=4, width=4, ae_epochs=1).fit(_images(300, 1.0, 5), _images(600, 0.6, 6),
                                                                             epochs=2, progress=False)
    save_model(clf, str(tmp_path / "clf"))
    back = load_module(str(tmp_path / "clf"), "feature_classifier", FeatureRatioClassifier)
    x = _images(20, 0.8, 7)
    assert torch.allclose(back.log_weight(x), clf.log_weight(x), atol=1e-6)
    with pytest.raises(ValueError, match="cell calibration"):
        FeatureRatioClassifier(SHAPE).fit(_images(50, 1.0, 8), _images(50, 0.6, 9), calibrate_cells=4)
    with pytest.raises(ValueError, match="images"):
        FeatureRatioClassifier((64,))


def test_build_classifier_follows_the_features_setting():
    assert isinstance(build_classifier({"features": "auto"}, SHAPE), FeatureRatioClassifier)
    assert isinstance(build_classifier({"features": "off"}, SHAPE), ConvRatioClassifier)
    assert isinstance(build_classifier({"features": "auto"}, (3,)), DensityRatioClassifier)
    with pytest.raises(ValueError, match="needs images"):
        build_classifier({"features": "on"}, (3,))
    with pytest.raises(ValueError, match="on, off or auto"):
        build_classifier({"features": "yes"}, SHAPE)
