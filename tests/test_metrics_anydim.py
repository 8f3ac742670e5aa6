"""Scores for data of any dimension: Frechet distance, ROC AUC and the classifier two-sample
test, the feature network, score_suite (floors) and rank_methods."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
from scipy.stats import norm

from genrefine.metrics import (
    FeatureNet,
    c2st_auc,
    energy_distance,
    frechet_distance,
    gaussian_fit,
    gaussian_frechet,
    rank_methods,
    roc_auc,
    score_suite,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# --- Frechet distance -------------------------------------------------------------------

def test_frechet_known_answer_non_commuting():
    # 2 x 2: Tr (S1 S2)^{1/2} = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)) (sum of the square roots of
    # the two eigenvalues of S1 S2); here tr(S1 S2) = 8, det S1 = det S2 = 3, so it is sqrt(14)
    s1 = np.array([[2.0, 1.0], [1.0, 2.0]])
    s2 = np.array([[1.0, 0.0], [0.0, 3.0]])
    mu1, mu2 = np.zeros(2), np.array([1.0, 2.0])
    expected = 5.0 + (4.0 + 4.0) - 2.0 * math.sqrt(14.0)
    assert gaussian_frechet(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-12)
    assert gaussian_frechet(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-12)  # symmetric


def test_frechet_diagonal_and_against_scipy_sqrtm():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    # commuting: Tr(S1 + S2 - 2 (S1 S2)^{1/2}) = sum (sqrt a - sqrt b)^2 = 1 + 1 + 0
    assert gaussian_frechet(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b)) == pytest.approx(2.0, rel=1e-12)
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=(10, 10)), rng.normal(size=(10, 10))
    s1, s2 = m1 @ m1.T + 0.1 * np.eye(10), m2 @ m2.T + 0.1 * np.eye(10)
    ref = np.trace(s1 + s2 - 2 * np.real(scipy.linalg.sqrtm(s1 @ s2)))
    assert gaussian_frechet(np.zeros(10), s1, np.zeros(10), s2) == pytest.approx(ref, rel=1e-8)


def test_frechet_from_samples_and_singular_covariance():
    rng = np.random.default_rng(1)
    s1 = np.array([[2.0, 1.0], [1.0, 2.0]])
    s2 = np.array([[1.0, 0.0], [0.0, 3.0]])
    x = rng.multivariate_normal([0, 0], s1, size=200_000)
    y = rng.multivariate_normal([1, 2], s2, size=200_000)
    assert frechet_distance(x, y) == pytest.approx(13.0 - 2.0 * math.sqrt(14.0), rel=0.02)
    # a constant column (an always-black pixel) makes both covariances singular: still finite, 0 on itself
    z = np.c_[rng.normal(size=(500, 3)), np.zeros(500)]
    assert frechet_distance(z, z) == pytest.approx(0.0, abs=1e-9)
    assert np.isfinite(frechet_distance(z, z + [0.5, 0, 0, 0]))


def test_weighted_gaussian_fit_matches_the_reweighted_law():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200_000, 1))
    w = np.exp(x[:, 0] - 0.5)  # N(0, 1) reweighted to N(1, 1)
    mu, cov = gaussian_fit(x, w)
    assert mu[0] == pytest.approx(1.0, abs=0.03) and cov[0, 0] == pytest.approx(1.0, abs=0.05)
    mu_u, cov_u = gaussian_fit(x[:1000], np.ones(1000))
    assert np.allclose(cov_u, np.cov(x[:1000].T)) and np.allclose(mu_u, x[:1000].mean(0))


# --- ROC AUC and the classifier two-sample test ----------------------------------------------

def test_roc_auc_matches_pairwise_definition_with_ties_and_weights():
    rng = np.random.default_rng(3)
    s = rng.integers(0, 5, size=60).astype(float)  # many ties
    y = rng.integers(0, 2, size=60)
    w = rng.uniform(0.1, 2.0, size=60)
    pos, neg = np.where(y == 1)[0], np.where(y == 0)[0]
    num = sum(w[i] * w[j] * ((s[i] > s[j]) + 0.5 * (s[i] == s[j])) for i in pos for j in neg)
    assert roc_auc(s, y, w) == pytest.approx(num / (w[pos].sum() * w[neg].sum()), rel=1e-12)
    assert roc_auc([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1]) == 1.0
    with pytest.raises(ValueError, match="labels"):
        roc_auc([0.1, 0.2], [1, 1])


def test_c2st_auc_identical_shifted_and_separated():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(3000, 8)), rng.normal(size=(3000, 8))
    assert abs(c2st_auc(x, y, seed=0) - 0.5) < 0.05
    # a unit mean shift along one axis: the Bayes classifier's AUC is Phi(1 / sqrt 2) = 0.760
    y1 = y + np.eye(8)[0]
    assert abs(c2st_auc(x, y1, seed=0) - norm.cdf(1 / math.sqrt(2))) < 0.035
    assert c2st_auc(x, y + 6.0, seed=0) > 0.99
    assert c2st_auc(x, y1, seed=0) == c2st_auc(x, y1, seed=0)  # deterministic for a seed


def test_c2st_auc_importance_weights_and_feature_map():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 4))
    y = rng.normal(size=(3000, 4)) + [0.8, 0, 0, 0]
    w = np.exp(-0.8 * y[:, 0] + 0.32)  # N(0.8, 1) reweighted to N(0, 1) along the first axis
    assert c2st_auc(x, y, seed=0) > 0.68  # Phi(0.8 / sqrt 2) = 0.714 unweighted
    assert abs(c2st_auc(x, y, weights_y=w, seed=0) - 0.5) < 0.06
    # a feature map that drops the shifted coordinate leaves nothing to tell apart
    assert abs(c2st_auc(x, y, feature_map=lambda a: a[:, 1:], seed=0) - 0.5) < 0.05


# --- feature network -------------------------------------------------------------------

def _toy_images(n, seed):
    """8 x 8 images of two classes: a bright top half or a bright bottom half, plus noise."""
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, 2, size=n)
    img = 0.2 * rng.random((n, 1, 8, 8))
    img[lab == 0, :, :4] += 0.8
    img[lab == 1, :, 4:] += 0.8
    return img.reshape(n, 64).astype(np.float32), lab


def test_feature_net_deterministic_and_learns():
    x, lab = _toy_images(400, 0)
    kw = dict(n_features=8, width=4, epochs=2, batch_size=64)
    f1 = FeatureNet((1, 8, 8), seed=3, **kw).fit(x).features(x)
    f2 = FeatureNet((1, 8, 8), seed=3, **kw).fit(x).features(x)
    f3 = FeatureNet((1, 8, 8), seed=4, **kw).fit(x).features(x)
    assert f1.shape == (400, 8) and np.array_equal(f1, f2) and not np.allclose(f1, f3)
    net = FeatureNet((1, 8, 8), seed=0, **kw).fit(x.reshape(400, 1, 8, 8), labels=lab)
    assert net.mode_ == "classifier" and net.history_[-1]["loss"] < net.history_[0]["loss"]
    f = net(x)  # the two classes land far apart in feature space
    assert frechet_distance(f[lab == 0], f[lab == 1]) > 10 * frechet_distance(f[lab == 0][:100], f[lab == 0][100:])
    with pytest.raises(ValueError, match="data_shape"):
        FeatureNet((64,))
    with pytest.raises(ValueError, match="expected 64 features"):
        net.features(np.zeros((3, 10)))


# --- score_suite and rank_methods ---------------------------------------------------------

SMALL = {"energy": 600, "exact_emd": 300, "pr": 400, "c2st": 600, "features": 600, "hist": 600}


def _check_suite(sc, names):
    assert set(sc) == set(names)
    for r in sc.values():
        assert set(r) - {"blocks"} == {"value", "floor", "n"} and np.isfinite(r["value"]) and np.isfinite(r["floor"])


def test_score_suite_tabular_floors_and_shifted_base():
    rng = np.random.default_rng(6)
    t, ti, good = (rng.normal(size=(600, 16)) for _ in range(3))
    shifted = rng.normal(size=(600, 16)) * 1.3 + 0.5
    sc = score_suite(t, ti, shifted, sizes=SMALL)
    _check_suite(sc, ["energy", "exact_emd", "precision", "recall", "c2st_auc", "marginal_jsd"])
    assert sc["marginal_jsd"]["value"] > 3 * sc["marginal_jsd"]["floor"]
    assert sc["energy"]["value"] > 10 * sc["energy"]["floor"]
    assert sc["exact_emd"]["value"] > sc["exact_emd"]["floor"] + 0.5  # 16-D EMD floors are high at n = 300
    assert sc["c2st_auc"]["value"] > 0.8 and abs(sc["c2st_auc"]["floor"] - 0.5) < 0.08
    assert sc["precision"]["value"] < sc["precision"]["floor"] - 0.1
    ok = score_suite(t, ti, good, sizes=SMALL)
    assert ok["energy"]["value"] < 1.5 * ok["energy"]["floor"]
    # the truth rows, so the floors, do not depend on the sample: reused floors are the same numbers
    assert all(ok[k]["floor"] == sc[k]["floor"] for k in sc)
    longer = np.concatenate([good, good[:100]])
    reused = score_suite(t, ti, longer, sizes=SMALL, floors=sc)
    assert reused == score_suite(t, ti, longer, sizes=SMALL)
    # importance weights that undo a shift bring the weighted energy back toward its floor
    y = rng.normal(size=(600, 16)) + np.eye(16)[0]
    w = np.exp(-y[:, 0] + 0.5)
    assert score_suite(t, ti, y, weights=w, sizes=SMALL)["energy"]["value"] < score_suite(t, ti, y, sizes=SMALL)["energy"]["value"]


def test_the_energy_averages_disjoint_sample_blocks_against_the_same_truth():
    """With 4 x n sample rows the energy is the mean over 4 blocks of n: the same expectation
    as one block (so the same floor applies) and about half its spread over sample draws."""
    rng = np.random.default_rng(3)
    t, ti = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
    sizes = {"energy": 300, "exact_emd": 20, "pr": 20, "c2st": 40, "features": 20, "hist": 20}  # energy only matters
    one, four = [], []
    for _ in range(40):
        s = rng.normal(size=(1200, 4)) + 0.15
        sc = score_suite(t, ti, s, sizes=sizes)
        assert sc["energy"]["blocks"] == 4 and sc["energy"]["n"] == 300
        four.append(sc["energy"]["value"])
        one.append(score_suite(t, ti, s[:300], sizes=sizes)["energy"]["value"])
    assert np.std(four) < 0.7 * np.std(one), (np.std(four), np.std(one))
    assert abs(np.mean(four) - np.mean(one)) < 2 * np.std(one) / np.sqrt(40)


def test_a_sample_wholly_outside_the_truths_range_still_scores():
    """2-D truth with a constant column (range [4.5, 5.5] there) and a sample far from it: the
    histograms put the sample in the border bins (JSD near its ln 2 maximum) instead of failing."""
    rng = np.random.default_rng(5)
    t = np.c_[rng.normal(size=400), np.full(400, 5.0)]
    ti = np.c_[rng.normal(size=400), np.full(400, 5.0)]
    s = rng.normal(size=(400, 2)) * 3.0 - 20.0
    sc = score_suite(t, ti, s, sizes={**SMALL, "energy": 400, "hist": 400})
    assert sc["hist_jsd"]["value"] > 0.6 and sc["hist_jsd"]["floor"] < 0.2


def test_score_suite_2d_has_histograms_and_images_have_features():
    rng = np.random.default_rng(7)
    t, ti, s = (rng.normal(size=(5000, 2)) for _ in range(3))
    sc = score_suite(t, ti, s + 1.0, sizes={**SMALL, "hist": 5000})
    _check_suite(sc, ["energy", "exact_emd", "precision", "recall", "c2st_auc", "hist_jsd", "hist_emd", "marginal_jsd"])
    assert sc["hist_jsd"]["value"] > 3 * sc["hist_jsd"]["floor"]
    x, _ = _toy_images(1800, 1)
    net = FeatureNet((1, 8, 8), n_features=8, width=4, epochs=2, seed=0).fit(x[:600])
    blurred = 0.5 * x[1200:] + 0.5 * x[1200:].mean()  # washed-out images
    sc = score_suite(x[:600], x[600:1200], blurred, data_shape=(1, 8, 8), features=net, sizes=SMALL)
    _check_suite(sc, ["energy", "exact_emd", "precision", "recall", "c2st_auc",
                      "frechet_features", "precision_features", "recall_features"])
    assert sc["frechet_features"]["value"] > 3 * sc["frechet_features"]["floor"]
    own = score_suite(x[:600], x[600:1200], blurred, data_shape=(1, 8, 8), sizes=SMALL)  # trains its own
    assert own["frechet_features"]["value"] > 3 * own["frechet_features"]["floor"]
    with pytest.raises(ValueError, match="data_shape"):
        score_suite(x[:600], x[600:1200], blurred, data_shape=(1, 8, 9))
    with pytest.raises(ValueError, match="sizes"):
        score_suite(t, ti, s, sizes={"emd": 100})


def test_marginal_jsd_known_values():
    from genrefine.metrics import marginal_jsd

    rng = np.random.default_rng(9)
    x = rng.normal(size=(20_000, 3))
    assert marginal_jsd(x, x) == 0.0
    # disjoint supports in one coordinate of three: log 2 there, ~0 in the others
    far = x.copy()
    far[:, 1] += 100.0
    assert marginal_jsd(x, far) == pytest.approx(np.log(2) / 3, abs=0.01)
    # weights that undo a shift of one coordinate: w = N(y; 0, 1) / N(y; 1, 1) = exp(0.5 - y)
    y = rng.normal(size=(20_000, 3)) + np.array([1.0, 0, 0])
    assert marginal_jsd(x, y, weights_y=np.exp(0.5 - y[:, 0])) < 0.2 * marginal_jsd(x, y)
    with pytest.raises(ValueError, match="marginal_jsd"):
        marginal_jsd(x, y[:, :2])


def test_energy_mm_matches_exact_distances():
    rng = np.random.default_rng(8)
    x, y = rng.random((300, 50)), rng.random((300, 50)) + 0.01
    assert energy_distance(x, y, mm=True) == pytest.approx(energy_distance(x, y), rel=1e-6)


def test_rank_methods_directions_and_gap():
    def rec(v, f=0.1):
        return {"value": v, "floor": f, "n": 100}
    scores = {"base": {"energy": rec(1.1), "c2st_auc": rec(0.9, 0.5), "recall": rec(0.5, 0.9)},
              "a": {"energy": rec(0.6), "c2st_auc": rec(0.45, 0.5), "recall": rec(0.8, 0.9)},
              "b": {"energy": rec(1.3), "c2st_auc": rec(0.7, 0.5), "recall": rec(0.6, 0.9)}}
    r = rank_methods(scores, key="energy")
    assert [e["method"] for e in r["ranking"]] == ["a", "base", "b"]
    assert r["best"] == "a" and r["base"] == 1.1 and r["best_beats_base"]
    assert r["ranking"][0]["gap_closed"] == pytest.approx(0.5)  # (1.1 - 0.6) / (1.1 - 0.1)
    assert r["ranking"][2]["gap_closed"] == pytest.approx(-0.2)
    assert [e["method"] for e in rank_methods(scores, key="c2st_auc")["ranking"]] == ["a", "b", "base"]
    assert [e["method"] for e in rank_methods(scores, key="recall")["ranking"]] == ["a", "b", "base"]
    with pytest.raises(ValueError, match="key"):
        rank_methods(scores, key="fid")


def test_methods_at_their_floor_are_named_and_said():
    """Two refinements below the floor are indistinguishable from the truth: the ranking names
    them, best first, and the printed ranking says their order is noise."""
    from genrefine.cli import format_ranking

    def rec(v):
        return {"energy": {"value": v, "floor": 0.06, "n": 500}}
    r = rank_methods({"base": rec(0.39), "sir-dctr": rec(0.038), "rejection": rec(0.05), "laser": rec(0.07)})
    assert r["at_floor"] == ["sir-dctr", "rejection"] and r["best"] == "sir-dctr"
    text = format_ranking({"ranking": {**r, "recommended": "sir-dctr"}})
    assert "at the truth floor: sir-dctr, rejection" in text and "noise" in text
    assert rank_methods({"base": rec(0.39), "a": rec(0.05)})["at_floor"] == ["a"]
    assert "truth floor:" not in format_ranking({"ranking": {**rank_methods({"base": rec(0.39), "a": rec(0.05)}),
                                                             "recommended": "a"}}).split("recommended")[1]


def test_a_weighted_only_method_is_ranked_but_never_recommended():
    """dctr's weighted samples can score best, but there is no generator to hand back: the run
    recommends the best method that has one (the base when only weighted ones beat it)."""
    from genrefine.experiments.scoring import rank_run

    def scores(**values):
        return {m: {"energy": {"value": v, "floor": 0.01, "n": 500}} for m, v in values.items()}

    out = rank_run(scores(base=0.2, dctr=0.02, rejection=0.05, hmc=0.08), "suite", (2,), weighted_only=["dctr"])
    assert out["best"] == "dctr" and out["recommended"] == "rejection"
    out = rank_run(scores(base=0.2, dctr=0.02, omnifold=0.03, rejection=0.3), "suite", (2,),
                   weighted_only=["dctr", "omnifold"])
    assert out["recommended"] == "base"
    assert rank_run(scores(base=0.2, rejection=0.05), "suite", (2,))["recommended"] == "rejection"
