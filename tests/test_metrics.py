"""Tests for genrefine.metrics: binned JSD / EMD (both conventions), exact EMD, energy distance."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import scipy.stats
import torch

from genrefine.metrics import (
    PAPER_RANGES,
    bin_centers,
    data_range,
    energy_distance,
    exact_emd,
    hist2d,
    hist_emd,
    hist_jsd,
    make_edges,
    resolve_range,
    score_with_error,
)
from genrefine.metrics.distances import _exact_w1, _pairwise_euclidean


def _blob(n, seed, centre=(0.0, 0.0), scale=1.0):
    rng = np.random.default_rng(seed)
    return np.asarray(centre) + scale * rng.normal(size=(n, 2))


def _on_bin_centres(n, seed, bins=10, width=0.1, jitter=0.03):
    """Points near the centres of the first ``bins x bins`` cells of a grid of cell ``width``
    (never within 0.02 of an edge, so shifting by whole cells shifts every bin index)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, bins, size=(n, 2))
    return (idx + 0.5) * width + rng.uniform(-jitter, jitter, size=(n, 2))


# --------------------------------------------------------------------------------------
# grids and histograms
# --------------------------------------------------------------------------------------


def test_edges_centres_and_ranges():
    ex, ey = make_edges(((0.0, 1.0), (-2.0, 2.0)), bins=(4, 8))
    np.testing.assert_allclose(ex, np.linspace(0, 1, 5))
    np.testing.assert_allclose(ey, np.linspace(-2, 2, 9))
    c = bin_centers((ex, ey))
    assert c.shape == (32, 2)
    np.testing.assert_allclose(c[0], [0.125, -1.75])
    np.testing.assert_allclose(c[1], [0.125, -1.25])  # y index runs fastest, as h.ravel()
    x = np.array([[0.0, 0.0], [1.0, 2.0]])
    assert data_range(x) == ((-0.05, 1.05), (-0.1, 2.1))
    assert resolve_range("double_donut") == ((-11.0, 11.0), (-7.0, 7.0))
    assert set(PAPER_RANGES) == {"gaussians4", "double_donut", "rings3", "moons"}
    assert resolve_range(None, x) == data_range(x)


def test_hist2d_matches_numpy_and_normalises():
    x = _blob(5000, 0)
    edges = make_edges(((-3, 3), (-3, 3)), bins=20)
    p = hist2d(x, edges)
    assert p.shape == (20, 20) and math.isclose(p.sum(), 1.0)
    ref, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=edges, density=True)
    np.testing.assert_allclose(hist2d(x, edges, density=True), ref)
    # torch input gives the same histogram
    np.testing.assert_allclose(hist2d(torch.from_numpy(x), edges), p)
    # clipping keeps the outside mass in the border bins
    far = np.array([[10.0, 0.0]])
    pc = hist2d(np.vstack([x, far]), edges, outside="clip")
    assert pc[-1, 10] > p[-1, 10] * 5000 / 5001


def test_weighted_histogram_equals_repeated_points():
    rng = np.random.default_rng(1)
    x = _blob(400, 2)
    w = rng.integers(0, 4, size=400)
    w[0] = 3
    rep = np.repeat(x, w, axis=0)
    truth = _blob(3000, 3)
    edges = make_edges(data_range(truth), bins=15)
    np.testing.assert_allclose(hist2d(x, edges, weights=w), hist2d(rep, edges), atol=1e-15)
    kw = dict(bins=15, range=data_range(truth))
    assert math.isclose(hist_jsd(truth, x, weights_y=w, **kw), hist_jsd(truth, rep, **kw), rel_tol=1e-12)
    assert math.isclose(hist_emd(truth, x, weights_y=w, **kw), hist_emd(truth, rep, **kw), rel_tol=1e-9)
    assert math.isclose(
        hist_emd(truth, x, weights_y=w, convention="paper", **kw),
        hist_emd(truth, rep, convention="paper", **kw),
        rel_tol=1e-9,
    )


# --------------------------------------------------------------------------------------
# JSD
# --------------------------------------------------------------------------------------


def test_jsd_identical_disjoint_symmetric():
    x, y = _blob(4000, 4), _blob(4000, 5, centre=(0.5, 0.0))
    rng_ = ((-4.0, 4.5), (-4.0, 4.0))
    assert hist_jsd(x, x, range=rng_) == 0.0
    left, right = _blob(1000, 6, centre=(-10, 0), scale=0.5), _blob(1000, 7, centre=(10, 0), scale=0.5)
    assert math.isclose(hist_jsd(left, right, range=((-15, 15), (-3, 3))), math.log(2), rel_tol=1e-12)
    j_xy, j_yx = hist_jsd(x, y, range=rng_), hist_jsd(y, x, range=rng_)
    assert 0.0 < j_xy < math.log(2)
    assert math.isclose(j_xy, j_yx, rel_tol=1e-12)
    assert math.isclose(hist_jsd(x, y, range=rng_, convention="paper"),
                        hist_jsd(y, x, range=rng_, convention="paper"), rel_tol=1e-12)


def test_jsd_paper_is_prob_over_bin_area_and_matches_reference():
    x, y = _blob(20000, 8), _blob(20000, 9, scale=1.2)
    rng_, bins = ((-5.0, 5.0), (-4.0, 4.0)), 25
    area = (10 / 25) * (8 / 25)
    jp = hist_jsd(x, y, bins=bins, range=rng_, convention="paper")
    assert math.isclose(jp, hist_jsd(x, y, bins=bins, range=rng_) / area, rel_tol=1e-9)
    # reference: the paper's recipe written out (density histograms, eps inside the logs)
    hx, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=bins, range=rng_, density=True)
    hy, _, _ = np.histogram2d(y[:, 0], y[:, 1], bins=bins, range=rng_, density=True)
    m, eps = 0.5 * (hx + hy), 3e-16
    ref = 0.5 * np.sum(hx * (np.log(hx + eps) - np.log(m + eps))) + 0.5 * np.sum(hy * (np.log(hy + eps) - np.log(m + eps)))
    assert math.isclose(jp, ref, rel_tol=1e-12)


# --------------------------------------------------------------------------------------
# binned EMD
# --------------------------------------------------------------------------------------


def test_hist_emd_shift_prob_and_paper():
    x = _on_bin_centres(3000, 10)
    d = np.array([0.3, 0.4])  # 3 and 4 bins of width 0.1: |d| = 0.5
    y = x + d
    rng_, bins = ((0.0, 2.0), (0.0, 2.0)), 20
    e = hist_emd(x, y, bins=bins, range=rng_)
    assert math.isclose(e, 0.5, rel_tol=1e-9)
    assert hist_emd(x, x, bins=bins, range=rng_) == 0.0
    # paper: density histograms (mass 1/A) and ground distance / max distance of the grid
    area = 0.1 * 0.1
    dmax = math.hypot(1.9, 1.9)  # corner bin centres 0.05 ... 1.95
    ep = hist_emd(x, y, bins=bins, range=rng_, convention="paper")
    assert math.isclose(ep, 0.5 / dmax / area, rel_tol=1e-9)
    assert math.isclose(ep * area, 0.5 / dmax, rel_tol=1e-9)


def test_hist_emd_paper_matches_dense_reference():
    x, y = _blob(5000, 11), _blob(5000, 12, centre=(0.4, -0.2), scale=0.8)
    rng_, bins = ((-4.0, 4.0), (-4.0, 4.0)), 16
    hx, xe, ye = np.histogram2d(x[:, 0], x[:, 1], bins=bins, range=rng_, density=True)
    hy, _, _ = np.histogram2d(y[:, 0], y[:, 1], bins=bins, range=rng_, density=True)
    xs, ys = 0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1])
    pts = np.array([[xs[i], ys[j]] for i in range(bins) for j in range(bins)])
    M = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    M /= M.max()
    ref = ot.emd2(hx.ravel(), hy.ravel(), M, numItermax=10_000_000)
    got = hist_emd(x, y, bins=bins, range=rng_, convention="paper")
    assert math.isclose(got, ref, rel_tol=1e-9)
    # prob convention on the same grid: plain W1 of probability vectors in data units
    Md = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    ref_p = ot.emd2(hx.ravel() / hx.sum(), hy.ravel() / hy.sum(), Md, numItermax=10_000_000)
    assert math.isclose(hist_emd(x, y, bins=bins, range=rng_), ref_p, rel_tol=1e-9)


def test_column_generation_equals_dense_solution():
    rng = np.random.default_rng(13)
    g = np.stack(np.meshgrid(np.arange(45), np.arange(45), indexing="ij"), -1).reshape(-1, 2) * 0.1
    A, B = g[rng.choice(len(g), 700, replace=False)], g[rng.choice(len(g), 900, replace=False)]
    a, b = rng.exponential(size=700), rng.exponential(size=900)
    a, b = a / a.sum(), b / b.sum()
    M = _pairwise_euclidean(torch.from_numpy(A), torch.from_numpy(B)).numpy()
    ref = ot.emd2(a, b, M, numItermax=100_000_000)
    got = _exact_w1(A, a, B, b, dense_max_pairs=0)  # force the sparse path
    assert math.isclose(got, ref, rel_tol=1e-10)


# --------------------------------------------------------------------------------------
# exact EMD and energy distance
# --------------------------------------------------------------------------------------


def test_exact_emd_shift_and_weights():
    x = _blob(300, 14)
    d = np.array([3.0, -4.0])
    assert math.isclose(exact_emd(x, x + d), 5.0, rel_tol=1e-9)
    assert exact_emd(x, x) == pytest.approx(0.0, abs=1e-12)
    y = _blob(200, 15, centre=(1.0, 0.0))
    assert math.isclose(exact_emd(x, y), exact_emd(y, x), rel_tol=1e-9)
    # integer weights = repeated points
    w = np.random.default_rng(16).integers(1, 4, size=200)
    assert math.isclose(exact_emd(x, y, weights_y=w), exact_emd(x, np.repeat(y, w, axis=0)), rel_tol=1e-9)
    # torch inputs
    assert math.isclose(exact_emd(torch.from_numpy(x), torch.from_numpy(y)), exact_emd(x, y), rel_tol=1e-12)


def test_energy_distance_identical_closed_form_and_scipy():
    x = _blob(500, 17)
    assert energy_distance(x, x) == 0.0
    assert energy_distance(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]])) == pytest.approx(10.0)
    rng = np.random.default_rng(18)
    u, v = rng.normal(size=300), rng.normal(0.5, 1.3, size=250)
    wu, wv = rng.uniform(0.1, 2, size=300), rng.uniform(0.1, 2, size=250)
    ref = scipy.stats.energy_distance(u, v)
    assert math.isclose(energy_distance(u[:, None], v[:, None]), ref**2, rel_tol=1e-10)
    assert math.isclose(energy_distance(u[:, None], v[:, None], squared=False), ref, rel_tol=1e-10)
    refw = scipy.stats.energy_distance(u, v, u_weights=wu, v_weights=wv)
    assert math.isclose(energy_distance(u[:, None], v[:, None], wu, wv, squared=False), refw, rel_tol=1e-10)
    # larger than one distance block: chunking does not change the value
    a, b = _blob(3000, 19), _blob(2000, 20, scale=1.1)
    ref_big = 2 * torch.cdist(torch.from_numpy(a), torch.from_numpy(b)).mean() - \
        torch.cdist(torch.from_numpy(a), torch.from_numpy(a)).mean() - torch.cdist(torch.from_numpy(b), torch.from_numpy(b)).mean()
    assert math.isclose(energy_distance(a, b), float(ref_big), rel_tol=1e-8)


# --------------------------------------------------------------------------------------
# error estimate
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["jsd", "emd"])
def test_score_with_error_floor_below_wrong_sample(metric):
    truth, indep = _blob(20000, 21), _blob(20000, 22)
    wrong = _blob(20000, 23, centre=(1.0, 0.0), scale=1.3)
    out = score_with_error(metric, truth, wrong, indep, bins=40)
    assert set(out) == {"value", "floor"}
    assert 0.0 < out["floor"] < 0.2 * out["value"]
    # a correct generator scores at the floor level
    good = score_with_error(metric, truth, _blob(20000, 24), indep, bins=40)
    assert good["value"] < 2.0 * good["floor"]


def test_score_with_error_weights_only_on_generated():
    truth, indep, gen = _blob(3000, 25), _blob(3000, 26), _blob(3000, 27, centre=(0.5, 0))
    w = np.random.default_rng(28).uniform(0.5, 1.5, size=3000)
    out = score_with_error("jsd", truth, gen, indep, bins=20, weights_y=w)
    assert out["value"] == hist_jsd(truth, gen, bins=20, weights_y=w)
    assert out["floor"] == hist_jsd(truth, indep, bins=20)
    custom = score_with_error(lambda a, b: float(np.abs(a.mean(0) - b.mean(0)).sum()), truth, gen, indep)
    assert custom["floor"] < custom["value"]


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------


def test_input_checks():
    x = _blob(100, 29)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        hist_jsd(x, bad)
    inf = x.copy()
    inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="inf"):
        hist_emd(inf, x)
    with pytest.raises(ValueError, match="NaN"):
        exact_emd(bad, x)
    with pytest.raises(ValueError, match="NaN"):
        energy_distance(x, bad)
    with pytest.raises(ValueError, match="shape"):
        hist_jsd(x[:, 0], x)
    with pytest.raises(ValueError, match="features"):
        hist_emd(x, np.ones((10, 3)))
    with pytest.raises(ValueError, match="dimensions differ"):
        exact_emd(x, np.ones((10, 3)))
    with pytest.raises(ValueError, match="convention"):
        hist_jsd(x, x, convention="nats")
    with pytest.raises(ValueError, match="unknown data set"):
        hist_jsd(x, x, range="spiral")
    with pytest.raises(ValueError, match="range"):
        hist_jsd(x, x, range=((1, 0), (0, 1)))
    with pytest.raises(ValueError, match="bins"):
        hist_jsd(x, x, bins=0)
    with pytest.raises(ValueError, match="negative"):
        hist_jsd(x, x, weights_y=-np.ones(100))
    with pytest.raises(ValueError, match="expected 100 weights"):
        energy_distance(x, x, weights_y=np.ones(7))
    with pytest.raises(ValueError, match="no .*points"):
        hist_jsd(x, x + 100.0, range=((-5, 5), (-5, 5)))
    with pytest.raises(ValueError, match="metric"):
        score_with_error("kl", x, x, x)
