"""Cell calibration of ratio weights: known answers."""

from __future__ import annotations

import pytest
import torch

from genrefine.weights.calibration import (MAX_CELL_FACTOR, MIN_GENERATED_PER_CELL, KMeansCells, cell_count, cell_factors,
                                          uncovered_share)
from genrefine.weights.classifier import DensityRatioClassifier

pytestmark = pytest.mark.usefixtures("one_thread")


def two_modes(n: int, share: float, dim: int = 8, seed: int = 0) -> torch.Tensor:
    """``share`` of the rows near +4 on the first axis, the rest near -4."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    x[:, 0] += torch.where(torch.rand(n, generator=g) < share, 4.0, -4.0)
    return x


def test_cell_factors_give_every_cell_the_data_share():
    cells_data = torch.tensor([0] * 700 + [1] * 200 + [2] * 100)
    cells_gen = torch.tensor([0] * 300 + [1] * 300 + [2] * 400)
    w = torch.rand(1000, generator=torch.Generator().manual_seed(1)) + 0.5
    f = cell_factors(w, cells_gen, cells_data, 3)
    wc = w.double() * f[cells_gen]
    mass = torch.bincount(cells_gen, weights=wc) / wc.sum()
    assert torch.allclose(mass, torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64), atol=1e-9)
    assert wc.mean().item() == pytest.approx(1.0, abs=1e-9)


def test_cell_factors_with_a_clip_and_an_unreached_cell():
    cells_data = torch.tensor([0] * 500 + [1] * 400 + [2] * 100)
    cells_gen = torch.tensor([0] * 500 + [1] * 495 + [2] * (MIN_GENERATED_PER_CELL - 1))
    w = torch.ones(len(cells_gen))
    f = cell_factors(w, cells_gen, cells_data, 3, m=3.0)
    wc = (w.double() * f[cells_gen]).clamp(max=3.0)
    assert wc.mean().item() == pytest.approx(1.0, abs=1e-6)
    assert wc.max().item() <= 3.0
    # the two reached cells share their mass as the data does, 5 : 4; the unreached one is not
    # corrected (its data share is 10%, its generated mass stays near 2%)
    assert wc[995:].sum().item() / wc.sum().item() < 0.03
    m0, m1 = wc[:500].sum().item(), wc[500:995].sum().item()
    assert m0 / m1 == pytest.approx(500 / 400, rel=1e-3)


def test_a_barely_reached_cell_is_moved_at_most_by_the_largest_factor():
    """A cell with 30% of the data and 0.5% of the generated points (a missing mode's cell,
    holding other modes' spill-over) would need a factor near 60; it gets MAX_CELL_FACTOR, and
    the uncovered share names the 30% of the data the generator misses."""
    cells_data = torch.tensor([0] * 350 + [1] * 350 + [2] * 300)
    cells_gen = torch.tensor([0] * 2000 + [1] * 1980 + [2] * 20)
    w = torch.ones(len(cells_gen))
    f = cell_factors(w, cells_gen, cells_data, 3)
    assert f[2] / f[0] == pytest.approx(MAX_CELL_FACTOR / ((350 / 1000) / (2000 / 4000)), rel=1e-6)  # 10 / 0.7
    assert f[0] / f[1] == pytest.approx((350 / 2000) / (350 / 1980), rel=1e-6)  # the others as before
    assert uncovered_share(cells_gen, cells_data, 3) == pytest.approx(0.3)
    assert uncovered_share(torch.tensor([0] * 500 + [1] * 500), torch.tensor([0] * 600 + [1] * 400), 2) == 0.0


def test_a_missing_mode_is_named_by_the_classifier():
    torch.manual_seed(0)
    data = torch.cat([two_modes(6000, 0.5, seed=1), torch.randn(2000, 8) + 12.0])  # a third mode at +12
    gen = two_modes(12_000, 0.5, seed=2)
    with pytest.warns(UserWarning, match="barely reaches 2[0-9]% of the data"):
        cal = DensityRatioClassifier(8, hidden=16, layers=2).fit(data, gen, epochs=1, batch_size=4000, progress=False,
                                                                calibrate_cells=8, calibration_samples=two_modes(8000, 0.5, seed=3))
    assert cal.diagnostics_["calibration"]["uncovered_data_share"] > 0.2
    assert cal.diagnostics_["calibration"]["factor_max"] / cal.diagnostics_["calibration"]["factor_min"] <= MAX_CELL_FACTOR ** 2 + 1e-6


def test_cell_count_follows_the_data():
    assert cell_count(40, 60_000) == 40
    assert cell_count(40, 5_000) == 10
    assert cell_count(40, 999) == 0  # one cell is no calibration


def test_kmeans_cells_separate_modes():
    x = two_modes(2000, 0.5)
    cells = KMeansCells(2, x)
    lab = cells(x)
    side = (x[:, 0] > 0).long()
    agree = (lab == side).float().mean().item()
    assert max(agree, 1 - agree) == 1.0


def test_calibrated_classifier_restores_mode_masses():
    """A one-epoch classifier gets the 80/20 mode shares wrong; calibrated on 4 cells it gets them right."""
    torch.manual_seed(0)
    data, gen = two_modes(4000, 0.8, seed=1), two_modes(8000, 0.5, seed=2)
    fresh = two_modes(8000, 0.5, seed=3)
    plain = DensityRatioClassifier(8, hidden=16, layers=2).fit(data, gen, epochs=1, batch_size=4000, lr=1e-4,
                                                              progress=False)
    torch.manual_seed(0)
    cal = DensityRatioClassifier(8, hidden=16, layers=2).fit(data, gen, epochs=1, batch_size=4000, lr=1e-4,
                                                            progress=False, calibrate_cells=4,
                                                            calibration_samples=fresh)
    test = two_modes(20_000, 0.5, seed=4)
    right = test[:, 0] > 0

    def share(clf):
        w = clf.weight(test)
        return (w[right].sum() / w.sum()).item()

    assert abs(share(plain) - 0.8) > 0.1  # the plain weights are off
    assert share(cal) == pytest.approx(0.8, abs=0.02)
    assert cal.diagnostics_["calibration"]["cells"] == 4
    assert cal.config()["cells"] == 4
    # the calibrated state reloads into a classifier built from its config
    again = DensityRatioClassifier(**cal.config())
    again.load_state_dict(cal.state_dict())
    assert torch.equal(again.weight(test), cal.weight(test))
    # a new fit starts uncalibrated
    cal.fit(data, gen, epochs=1, batch_size=4000, progress=False)
    assert cal.config()["cells"] == 0 and "calibration" not in cal.diagnostics_


def test_too_few_rows_leave_the_weights_uncalibrated():
    data, gen = two_modes(600, 0.8), two_modes(600, 0.5, seed=2)
    clf = DensityRatioClassifier(8, hidden=8, layers=2).fit(data, gen, epochs=1, progress=False, calibrate_cells=40)
    assert clf.diagnostics_["calibration"]["cells"] == 0 and clf.config()["cells"] == 0
