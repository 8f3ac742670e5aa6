"""Cell calibration of ratio weights: known answers."""

from __future__ import annotations

import pytest
import torch

from genrefine.weights.calibration import MIN_GENERATED_PER_CELL, KMeansCells, cell_count, cell_factors
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
