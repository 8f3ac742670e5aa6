"""The classifier behind the weights: held-out split, early stopping, diagnostics, safe weights."""

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import norm

from genrefine.metrics.c2st import roc_auc
from genrefine.nn import mlp
from genrefine.training import train_loop
from genrefine.weights.classifier import (LOG_WEIGHT_CLIP, ConvRatioClassifier, DegenerateWeightsWarning,
                                          DensityRatioClassifier, make_classifier, stratified_split)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_known_gaussians_weights_auc_and_ess_match_the_analytic_values():
    # p_data = N(mu, I), p_g = N(0, I): log r(x) = x.mu - |mu|^2/2, AUC = Phi(|mu|/sqrt 2),
    # ESS fraction of r under p_g = exp(-|mu|^2), E_g[r] = 1. Unequal class sizes: a weight
    # without the n_gen/n_data factor would have mean 1.5
    rng = np.random.default_rng(0)
    mu = np.array([1.0, 0.0])
    data, gen = rng.normal(size=(8000, 2)) + mu, rng.normal(size=(12_000, 2))
    clf = DensityRatioClassifier(2, hidden=32, layers=2).fit(data, gen, epochs=20, batch_size=500, lr=3e-3,
                                                             progress=False)
    d = clf.diagnostics_
    assert d["on"] == "held-out" and d["n_data"] == 800 and d["n_generated"] == 1200 and not d["degenerate"]
    x = rng.normal(size=(5000, 2)) * 0.8 + mu / 2
    est = clf.log_weight(torch.as_tensor(x, dtype=torch.float32)).numpy()
    true = x @ mu - 0.5 * mu @ mu
    assert np.corrcoef(est, true)[0, 1] > 0.99 and np.abs(est - true).mean() < 0.08
    # the same held-out rows scored by the exact log ratio: what a perfect classifier would report
    _, vd, _, vg = stratified_split(len(data), len(gen), 0.1, 0)
    exact_auc = roc_auc(np.r_[data[vd] @ mu, gen[vg] @ mu], np.r_[np.ones(len(vd)), np.zeros(len(vg))])
    assert abs(d["auc"] - exact_auc) < 0.005
    assert abs(d["auc"] - norm.cdf(np.linalg.norm(mu) / math.sqrt(2))) < 0.02
    r = np.exp(gen[vg] @ mu - 0.5 * mu @ mu)
    assert abs(d["ess_fraction"] - r.sum() ** 2 / (len(r) * (r ** 2).sum())) < 0.05
    assert abs(d["ess_fraction"] - math.exp(-mu @ mu)) < 0.07
    assert abs(d["mean_weight"] - r.mean()) < 0.06 and abs(d["mean_weight"] - 1) < 0.08
    assert d["best_epoch"] is not None and 1 <= d["best_epoch"] <= d["epochs_run"] <= 20


def test_split_is_seeded_stratified_and_disjoint():
    td, vd, tg, vg = stratified_split(1000, 3000, 0.1, seed=4)
    assert (len(td), len(vd), len(tg), len(vg)) == (900, 100, 2700, 300)
    assert not set(td) & set(vd) and not set(tg) & set(vg) and len(set(td) | set(vd)) == 1000
    assert all(np.array_equal(a, b) for a, b in zip((td, vd, tg, vg), stratified_split(1000, 3000, 0.1, seed=4)))
    assert not np.array_equal(vd, stratified_split(1000, 3000, 0.1, seed=5)[1])
    assert [len(i) for i in stratified_split(2, 2, 0.1, 0)] == [1, 1, 1, 1]  # one held out, one kept
    assert [len(i) for i in stratified_split(5, 7, 0.0, 0)] == [5, 0, 7, 0]


def test_early_stopping_stops_an_overfitting_classifier_and_restores_its_best_epoch():
    # both samples from one distribution: everything learned is memorisation, so the held-out
    # loss rises while the training loss falls
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 2)), rng.normal(size=(300, 2))
    torch.manual_seed(0)
    clf = DensityRatioClassifier(2, hidden=128, layers=4, patience=5).fit(a, b, epochs=300, batch_size=30, lr=1e-2,
                                                                          progress=False)
    h, d = clf.history_, clf.diagnostics_
    assert d["epochs_run"] == len(h) < 100 and d["epochs_run"] == d["best_epoch"] + 5
    best = min(r["val_bce"] for r in h)
    assert h[d["best_epoch"] - 1]["val_bce"] == best
    assert abs(d["bce"] - best) < 1e-5  # the restored weights are the best epoch's
    assert h[-1]["val_bce"] > best and h[-1]["bce"] < h[d["best_epoch"] - 1]["bce"]


def test_degenerate_flag_and_warning_on_separable_samples_with_finite_weights():
    rng = np.random.default_rng(2)
    data, gen = rng.normal(size=(2000, 2)) + 6.0, rng.normal(size=(2000, 2)) - 6.0
    with pytest.warns(DegenerateWeightsWarning, match=r"AUC 1\.0000 > 0\.99.*mean weight on generated points") as rec:
        clf = DensityRatioClassifier(2, hidden=32, layers=2).fit(data, gen, epochs=15, batch_size=200, lr=1e-2,
                                                                 progress=False)
    assert len(rec) == 1 and "\n" not in str(rec[0].message)
    d = clf.diagnostics_
    assert d["degenerate"] and d["auc"] > 0.99 and "AUC" in d["reason"] and clf.diagnostics_record_.degenerate
    far = torch.tensor([[1e4, 1e4], [-1e4, -1e4], [6.0, 6.0], [-6.0, -6.0]])
    assert clf.log_weight(far)[0] > LOG_WEIGHT_CLIP  # the raw logit is huge ...
    w = clf.weight(far)
    assert w.dtype == torch.float32 and torch.isfinite(w).all()  # ... the weight is not
    assert w[0] == pytest.approx(math.exp(LOG_WEIGHT_CLIP), rel=1e-5) and w[1] >= 0
    assert torch.isfinite(clf.weight(torch.as_tensor(gen, dtype=torch.float32))).all()


def test_identical_distributions_are_not_degenerate():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(4000, 2)), rng.normal(size=(4000, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateWeightsWarning)
        clf = DensityRatioClassifier(2, hidden=32, layers=2).fit(a, b, epochs=10, batch_size=200, progress=False)
    d = clf.diagnostics_
    assert not d["degenerate"] and d["reason"] == ""
    assert abs(d["auc"] - 0.5) < 0.05 and d["ess_fraction"] > 0.9 and abs(d["mean_weight"] - 1) < 0.05
    assert abs(d["bce"] - math.log(2)) < 0.02


def test_no_validation_split_keeps_the_earlier_training_stream():
    # val_fraction=0 trains exactly as the classifier did before the split existed
    rng = np.random.default_rng(4)
    data, gen = rng.normal(size=(600, 2)) + 0.5, rng.normal(size=(900, 2))
    torch.manual_seed(7)
    clf = DensityRatioClassifier(2, hidden=16, layers=2, val_fraction=0).fit(data, gen, epochs=4, batch_size=100,
                                                                             lr=3e-3, progress=False)
    torch.manual_seed(7)
    net = mlp(2, 1, 16, 2)
    x = torch.cat([torch.as_tensor(data), torch.as_tensor(gen)]).float()
    y = torch.cat([torch.ones(600), torch.zeros(900)])
    loc, scale = x.mean(0), x.std(0).clamp_min(1e-6)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def step(xb, yb):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net((xb - loc) / scale).squeeze(-1), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"bce": loss.item()}

    train_loop(step, (x, y), {"n": net}, {"a": opt}, 4, 100, 0.999, progress=False)
    for p, q in zip(clf.net.parameters(), net.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert clf.diagnostics_["on"] == "training" and clf.diagnostics_["n_data"] == 600
    assert [r["epoch"] for r in clf.history_] == [1, 2, 3, 4]


def test_bad_settings_are_one_line_errors():
    x = np.random.default_rng(0).normal(size=(50, 2))
    for kwargs, words in [({"val_fraction": 0.7}, "val_fraction"), ({"patience": 0}, "patience"),
                          ({"val_fraction": "a"}, "val_fraction")]:
        with pytest.raises(ValueError, match=words):
            DensityRatioClassifier(2, **kwargs)
    clf = DensityRatioClassifier(2, hidden=8, layers=1)
    for kwargs, words in [({"epochs": -1}, "epochs"), ({"batch_size": 0}, "batch_size"), ({"lr": float("nan")}, "lr"),
                          ({"gamma": 1.5}, "gamma")]:
        with pytest.raises(ValueError, match=words):
            clf.fit(x, x, progress=False, **kwargs)
    with pytest.raises(ValueError, match="expected 2 features per row, got 3"):
        clf.fit(x, np.ones((50, 3)), progress=False)
    with pytest.raises(ValueError, match=r"lr must be a number in \(0, 1\], got 1e\+30"):  # before any step diverges
        DensityRatioClassifier(2, hidden=8, layers=1).fit(x, x + 1, epochs=5, batch_size=10, lr=1e30, progress=False)


def test_make_classifier_picks_the_family_by_shape():
    assert type(make_classifier((2,), hidden=16, layers=2)) is DensityRatioClassifier
    assert type(make_classifier((1, 28, 28), hidden=96, layers=8, channels=(4, 8))) is ConvRatioClassifier
    assert make_classifier((28, 28)).data_shape == (1, 28, 28)
    small = make_classifier((1, 2, 2), channels=(4,))
    assert type(small) is DensityRatioClassifier and small.dim == 4
    c = make_classifier((3, 8, 8), channels=(4, 8), val_fraction=0.2, patience=3)
    assert c.channels == (4, 8) and c.val_fraction == 0.2 and c.patience == 3
    with pytest.raises(TypeError):
        make_classifier((2,), widths=3)
    with pytest.raises(ValueError, match="data_shape"):
        make_classifier((0, 3))


def test_a_resumed_fit_stops_and_restores_as_an_uninterrupted_one(tmp_path):
    # the overfitting pair above: its best epoch comes early, so a fit cut off after a later
    # checkpoint must still end on that best epoch's weights, at the same stopping epoch
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 2)), rng.normal(size=(300, 2))

    def fit(epochs, checkpoint=None):
        torch.manual_seed(0)
        return DensityRatioClassifier(2, hidden=128, layers=4, patience=15).fit(
            a, b, epochs=epochs, batch_size=30, lr=1e-2, progress=False, checkpoint=checkpoint)

    whole = fit(300)
    best, run = whole.diagnostics_["best_epoch"], whole.diagnostics_["epochs_run"]
    cut = 10 * (best // 10 + 1)  # a checkpoint epoch after the best one, before the stop (patience 15 > 10)
    assert best < cut < run, (best, run)
    ckpt = str(tmp_path / "clf")
    fit(cut, ckpt)
    probe = torch.as_tensor(rng.normal(size=(50, 2)), dtype=torch.float32)
    for _ in range(2):  # resumed mid-way, then resumed once more after it had stopped
        resumed = fit(300, ckpt)
        assert resumed.diagnostics_["best_epoch"] == best
        assert resumed.diagnostics_["epochs_run"] == run == len(resumed.history_)
        assert torch.allclose(resumed.log_weight(probe), whole.log_weight(probe), atol=1e-6)
