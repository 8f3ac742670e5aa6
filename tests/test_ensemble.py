"""The classifier ensemble (weights/ensemble.py): K classifiers on one split, logits averaged."""

import warnings

import numpy as np
import pytest
import torch

from genrefine.weights.classifier import DensityRatioClassifier, DegenerateWeightsWarning
from genrefine.weights.ensemble import RatioEnsemble

SHIFT = 0.5


def _gaussians(n_data=4000, n_gen=8000, seed=0):
    """Data N((0.5, 0), I) against generated N(0, I): log w(x) = 0.5 x_1 - 0.125 exactly."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_data, 2, generator=g) + torch.tensor([SHIFT, 0.0]), torch.randn(n_gen, 2, generator=g)


def _true_log_weight(x):
    return SHIFT * x[:, 0] - SHIFT ** 2 / 2


def test_ensemble_weights_are_the_mean_logit_and_match_a_known_ratio():
    """Three small MLPs on the same rows: the ensemble's log-weight is the mean of the members'
    logits plus the class ratio, each member has its own seed (different fits), and the mean
    recovers the known log ratio of two Gaussians to within 0.08 on average."""
    xd, xg = _gaussians()
    one = DensityRatioClassifier(2, hidden=32, layers=3)
    ens = RatioEnsemble("dctr_classifier", one.config(), members=3).fit(xd, xg, epochs=30, progress=False)
    t = torch.randn(3000, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = torch.stack([m.logit(t) for m in ens.members])
        assert torch.allclose(ens.log_weight(t), logits.mean(0) + ens.log_class_ratio, atol=1e-5)
        assert (logits[0] - logits[1]).abs().mean() > 1e-3  # the members are different fits
        assert (ens.log_weight(t) - _true_log_weight(t)).abs().mean() < 0.08
    assert [m.seed for m in ens.members] == [0, 1, 2]
    d = ens.diagnostics_
    assert d["on"] == "held-out" and abs(d["mean_weight"] - 1) < 0.1
    assert d["members"] == 3 and len(d["member_best_epochs"]) == 3 and d["best_epoch"] == max(d["member_best_epochs"])


def test_a_saved_ensemble_loads_with_the_same_weights(tmp_path):
    """Saved by the run's writer as its own kind, loaded by load_classifier: the same weights,
    tempering and calibration cells included."""
    from genrefine.api import load_classifier
    from genrefine.experiments.outputs import save_model

    xd, xg = _gaussians(2000, 4000)
    one = DensityRatioClassifier(2, hidden=16, layers=2)
    ens = RatioEnsemble("dctr_classifier", one.config(), members=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateWeightsWarning)
        ens.fit(xd, xg, epochs=5, progress=False, calibrate_cells=4, temper=(1.0, 0.5))
    save_model(ens, str(tmp_path / "clf"))
    back = load_classifier(str(tmp_path / "clf"))
    assert isinstance(back, RatioEnsemble) and len(back.members) == 2
    assert len(back.cell_log_factors) == len(ens.cell_log_factors) >= 2 and float(back.temper_beta) == float(ens.temper_beta)
    assert torch.allclose(back.weight(xg[:500]), ens.weight(xg[:500]))
    save_model(one, str(tmp_path / "single"))  # a single classifier loads by the same call
    assert isinstance(load_classifier(str(tmp_path / "single")), DensityRatioClassifier)


def test_an_ensemble_of_image_code_classifiers_refuses_cell_calibration():
    """As each of its members would: the cells would lie in pixel space."""
    from genrefine.weights.feature_classifier import FeatureRatioClassifier

    ens = RatioEnsemble("feature_classifier", FeatureRatioClassifier((1, 28, 28)).config(), members=2)
    assert not ens.takes_cells
    with pytest.raises(ValueError, match="no cell calibration"):
        ens.fit(torch.rand(20, 784), torch.rand(20, 784), calibrate_cells=4, progress=False)


def test_members_through_the_front_door_and_refused_when_not_a_count(tmp_path):
    """``classifier.members=2`` builds the run's weights from an ensemble (saved as one); 0, 1.5
    or a word is refused before anything is trained or written."""
    import genrefine
    from genrefine.api import load_classifier

    rng = np.random.default_rng(0)
    data = rng.normal(size=(1500, 2)) + np.array([1.0, 0.0])
    genrefine.compare(lambda z: z, data, ["rejection"], latent_dim=2, seed=0, progress=False, n_samples=500,
                      settings={"classifier": {"members": 2, "epochs": 5}}, out=str(tmp_path / "run"))
    clf = load_classifier(str(tmp_path / "run" / "models" / "classifier"))
    assert isinstance(clf, RatioEnsemble) and len(clf.members) == 2
    for bad in (0, 1.5, "two"):
        with pytest.raises(ValueError, match="classifier.members"):
            genrefine.compare(lambda z: z, data, ["rejection"], latent_dim=2, progress=False,
                              settings={"classifier": {"members": bad}}, out=str(tmp_path / "bad"))
        assert not (tmp_path / "bad").exists()


def test_classifier_seed_is_a_setting_that_reaches_every_member():
    """``classifier.seed`` (apart from the run's seed) seeds the ensemble's split and its members
    ``seed .. seed + K - 1``; a negative or fractional seed is refused before any training."""
    from genrefine.experiments.config import build_config
    from genrefine.methods.estimators import build_classifier

    cfg = build_config("quick", None, "realnvp", settings={"classifier": {"seed": 4, "members": 3}})
    clf = build_classifier(cfg["classifier"], (2,))
    assert clf.seed == 4 and [m.seed for m in clf.members] == [4, 5, 6]
    assert build_classifier(build_config("quick", None, "realnvp")["classifier"], (2,)).seed == 0
    for bad in (-1, 2.5):
        with pytest.raises(ValueError, match="classifier.seed"):
            build_config("quick", None, "realnvp", settings={"classifier": {"seed": bad}})
