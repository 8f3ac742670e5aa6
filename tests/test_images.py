"""Image-shaped data through the convolutional classifier: shapes, training, diagnostics, MNIST."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import norm

from genrefine.weights.classifier import ConvRatioClassifier, DegenerateWeightsWarning, make_classifier
from genrefine.weights.conv import ConvNet

pytestmark = pytest.mark.usefixtures("one_thread")
MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"


def _gaussian_images(n, rng, shape=(2, 8, 8), norm_mu=1.2):
    """p_data = N(mu, I), p_g = N(0, I) in pixel space, mu a smooth blob (opposite sign in channel 2)."""
    yy, xx = np.mgrid[0:shape[1], 0:shape[2]]
    blob = np.exp(-((yy - 2.5) ** 2 + (xx - 4.5) ** 2) / 6.0)
    mu = np.stack([blob, -0.5 * blob.T])[: shape[0]]
    mu *= norm_mu / np.linalg.norm(mu)
    return rng.normal(size=(n, *shape)) + mu, rng.normal(size=(n, *shape)), mu


def test_conv_net_shapes_follow_eq33():
    net = ConvNet((1, 28, 28), channels=(32, 64))  # 28 -> 14 -> 7, then 64*7*7 -> 1
    assert net.head.in_features == 64 * 7 * 7
    assert net(torch.rand(5, 784)).shape == (5, 1)
    assert ConvNet((3, 8, 8), channels=(4, 8)).head.in_features == 8 * 2 * 2
    with pytest.raises(ValueError, match="too small"):
        ConvNet((1, 3, 3), channels=(4, 8))
    with pytest.raises(ValueError, match="images"):
        ConvRatioClassifier((64,))


def test_cnn_learns_a_known_ratio_on_tiny_images():
    # log r(x) = x.mu - |mu|^2 / 2, AUC = Phi(|mu| / sqrt 2); two channels test the per-channel
    # standardisation and the reshape of flat rows
    rng = np.random.default_rng(0)
    data, gen, mu = _gaussian_images(6000, rng)
    clf = ConvRatioClassifier((2, 8, 8), channels=(8, 16), patience=4).fit(data, gen, epochs=12, batch_size=200,
                                                                           lr=2e-3, progress=False)
    h, d = clf.history_, clf.diagnostics_
    assert min(r["val_bce"] for r in h) < math.log(2) - 0.08  # the loss falls from chance
    assert h[0]["bce"] > d["bce"]
    x = (rng.normal(size=(4000, 2, 8, 8)) * 0.8 + mu / 2).reshape(4000, -1)
    est = clf.log_weight(torch.as_tensor(x, dtype=torch.float32)).numpy()
    true = x @ mu.ravel() - 0.5 * (mu ** 2).sum()
    assert np.corrcoef(est, true)[0, 1] > 0.93
    assert abs(d["auc"] - norm.cdf(1.2 / math.sqrt(2))) < 0.05 and not d["degenerate"]
    assert abs(d["mean_weight"] - 1) < 0.15
    w = clf.weight(torch.as_tensor(gen.reshape(len(gen), -1), dtype=torch.float32))
    assert w.shape == (6000,) and torch.isfinite(w).all()


def test_cnn_takes_shaped_or_flat_rows_alike_and_refuses_other_shapes():
    rng = np.random.default_rng(1)
    data, gen, _ = _gaussian_images(300, rng, shape=(1, 8, 8))
    fits = []
    for a, b in ((data, gen), (data[:, 0], gen[:, 0]), (data.reshape(300, -1), gen.reshape(300, -1))):
        torch.manual_seed(3)
        fits.append(ConvRatioClassifier((1, 8, 8), channels=(4, 8)).fit(a, b, epochs=2, batch_size=50,
                                                                         progress=False))
    for other in fits[1:]:
        for p, q in zip(fits[0].parameters(), other.parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=0)
    clf = ConvRatioClassifier((1, 8, 8), channels=(4, 8))
    for bad, words in ((np.zeros((10, 3, 8, 8)), "1 channel"), (np.zeros((10, 7, 8)), "8x8 pixels"),
                       (np.zeros((10, 60)), "64 values")):
        with pytest.raises(ValueError, match=words) as ei:
            clf.fit(data, bad, epochs=1, progress=False)
        assert "\n" not in str(ei.value)


def test_cnn_config_rebuilds_the_same_classifier():
    clf = make_classifier((3, 8, 8), channels=(4, 8))
    clf.loc.fill_(0.3)
    again = ConvRatioClassifier(**json.loads(json.dumps(clf.config())))
    again.load_state_dict(clf.state_dict())
    x = torch.rand(7, 192)
    torch.testing.assert_close(again.log_weight(x), clf.log_weight(x))


def test_cnn_on_mnist_flags_a_visibly_wrong_generator():
    path = MNIST / "t10k-images-idx3-ubyte.gz"
    if not path.exists():
        pytest.skip(f"MNIST IDX file not found under {MNIST.resolve()}")
    from genrefine.data import load_flat

    x, shape = load_flat(str(path), data_shape=(1, 28, 28))
    img = x.reshape(-1, 28, 28)
    data, gen = img[:600], np.roll(img[600:1200], 3, axis=2)  # "generated": shifted 3 pixels right
    with pytest.warns(DegenerateWeightsWarning, match="AUC"):
        clf = make_classifier(shape, channels=(8, 16)).fit(data, gen, epochs=2, batch_size=50, progress=False)
    assert isinstance(clf, ConvRatioClassifier) and clf.diagnostics_["degenerate"]
    assert clf.history_[-1]["val_bce"] < 0.2 < clf.history_[0]["bce"]
    assert torch.isfinite(clf.weight(torch.as_tensor(gen.reshape(600, -1)))).all()
