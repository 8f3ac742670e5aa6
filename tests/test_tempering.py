"""Tempered classifier weights w^β, β chosen on held-out rows (weights/tempering.py)."""

from __future__ import annotations

import math

import pytest
import torch

from genrefine.weights.classifier import DensityRatioClassifier
from genrefine.weights.tempering import select_tempering


def test_right_weights_keep_the_full_correction():
    # generated N((1, 0), I) against data N(0, I): the classifier's weights are the true ratio
    torch.manual_seed(0)
    xd, xg = torch.randn(6000, 2), torch.randn(12000, 2) + torch.tensor([1.0, 0.0])
    c = DensityRatioClassifier(2, 32, 3).fit(xd, xg, epochs=20, progress=False, temper=(1.0, 0.5, 0.25, 0.0))
    rec = c.diagnostics_["tempering"]
    assert rec["beta"] == 1.0 and rec["scores"]["1.0"] < 0.2 * rec["scores"]["0.0"]
    assert c.diagnostics_["mean_weight"] == pytest.approx(1.0, abs=0.05)


def test_weights_on_an_artefact_are_tempered_away():
    # the generated rows follow the data's law but sit on a grid: a classifier separates them
    # by the grid alone, and its weights would only thin the sample, so β = 0 must win
    torch.manual_seed(1)
    xd = torch.randn(3000, 4)
    xg = torch.round(torch.randn(6000, 4) * 2) / 2
    c = DensityRatioClassifier(4, 64, 3).fit(xd, xg, epochs=30, progress=False, temper=(1.0, 0.5, 0.0))
    assert c.diagnostics_["tempering"]["beta"] < 1.0


def test_select_tempering_exact_choice_and_normaliser():
    x_data = torch.tensor([[0.0], [1.0]])
    x_gen = torch.tensor([[0.0], [1.0], [5.0]])
    lw = torch.tensor([0.0, 0.0, -50.0])  # weights that remove the outlier exactly
    rec = select_tempering(lw, x_data, x_gen, (1.0, 0.0))
    assert rec["beta"] == 1.0 and rec["scores"]["1.0"] < 1e-12
    assert rec["log_norm"] == 0.0  # the full correction is the estimator's own ratio, not renormalised
    half = select_tempering(lw, x_data, x_gen, (0.5,))
    assert half["beta"] == 0.5 and half["log_norm"] == pytest.approx(math.log(2.0 / 3.0), abs=1e-9)
    with pytest.raises(ValueError, match="lie in \\[0, 1\\]"):
        select_tempering(lw, x_data, x_gen, (2.0,))


def test_tempered_weights_are_saved_and_loaded(tmp_path):
    from genrefine.checkpoint import read_checkpoint, save_module

    torch.manual_seed(2)
    c = DensityRatioClassifier(2, 8, 2).fit(torch.randn(500, 2), torch.randn(1000, 2) + 0.3, epochs=2, progress=False,
                                            temper=(0.5,))
    save_module(c, c.config(), str(tmp_path / "c"), kind="dctr_classifier")
    meta, state = read_checkpoint(str(tmp_path / "c"))
    back = DensityRatioClassifier(**meta["config"])
    back.load_state_dict(state)
    x = torch.randn(7, 2)
    assert float(back.temper_beta) == 0.5 and torch.allclose(back.log_weight(x), c.log_weight(x))
    old = {k: v for k, v in state.items() if not k.startswith("temper_")}  # saved before tempering existed
    again = DensityRatioClassifier(**meta["config"])
    again.load_state_dict(old)
    assert float(again.temper_beta) == 1.0


def test_guard_keeps_full_weights_unless_they_are_worse_than_none():
    # data at 0 and 1; the generator puts a third of its mass at 0.5. Weights that halve the
    # middle point help (full correction better than none): the guard keeps β = 1 even where a
    # partial correction scores closer; weights that double it hurt: the guard lets the best win
    x_data = torch.tensor([[0.0], [1.0]] * 50)
    x_gen = torch.tensor([[0.0], [0.5], [1.0]] * 50)
    helps = torch.tensor([0.0, math.log(0.5), 0.0] * 50)
    best = select_tempering(helps, x_data, x_gen, (1.0, 0.5, 0.0), rule="best")
    guard = select_tempering(helps, x_data, x_gen, (1.0, 0.5, 0.0), rule="guard")
    assert best["scores"]["1.0"] < best["scores"]["0.0"] and guard["beta"] == 1.0 and guard["rule"] == "guard"
    overshoot = torch.tensor([0.0, math.log(0.5), 0.0] * 50) * 40  # removes the middle, and more: w = 2^-40
    both = torch.tensor([math.log(4.0), 0.0, 0.0] * 50)  # piles mass on 0: worse than none
    hurt = select_tempering(both, x_data, x_gen, (1.0, 0.5, 0.0), rule="guard")
    assert hurt["scores"]["1.0"] > hurt["scores"]["0.0"] and hurt["beta"] == 0.0
    assert select_tempering(overshoot, x_data, x_gen, (1.0, 0.0), rule="guard")["beta"] == 1.0
    with pytest.raises(ValueError, match="guard"):
        select_tempering(helps, x_data, x_gen, (1.0, 0.5), rule="guard")


def test_large_held_out_sets_are_scored_on_a_seeded_subset():
    from genrefine.weights import tempering

    torch.manual_seed(3)
    xd, xg = torch.randn(3 * tempering.MAX_ROWS, 2), torch.randn(7 * tempering.MAX_ROWS, 2) + 0.5
    lw = -0.5 * xg[:, 0]  # about the true ratio's direction
    a = select_tempering(lw, xd, xg, (1.0, 0.0))
    b = select_tempering(lw, xd, xg, (1.0, 0.0))
    assert a == b and a["data_rows"] == tempering.MAX_ROWS and a["generated_rows"] == 2 * tempering.MAX_ROWS
    c = select_tempering(lw, xd, xg, (0.5,))  # the normaliser uses every row, not the scored subset
    assert c["log_norm"] == pytest.approx(float(torch.logsumexp(0.5 * lw.double(), 0) - math.log(len(lw))), abs=1e-9)
