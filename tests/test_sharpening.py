"""Sharpened weights min(w, c)^p, p chosen on held-out rows (weights/sharpening.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genrefine.weights.classifier import DensityRatioClassifier
from genrefine.weights.sharpening import one_standard_error, select_sharpening, sharpened_log_weights


def _core_and_halo(n: int, seed: int):
    """Data N(0, I_2); generated rows half N(0, I_2), half N(0, 9 I_2) (a halo of unrealistic
    points); and the exact log ratio of the two densities at the generated rows."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(n, 2, generator=g)
    core = torch.rand(n, generator=g) < 0.5
    s = torch.where(core[:, None], torch.randn(n, 2, generator=g), 3 * torch.randn(n, 2, generator=g))
    r2 = (s ** 2).sum(1)
    log_pd = -0.5 * r2 - math.log(2 * math.pi)
    p_g = 0.5 * log_pd.exp() + 0.5 * (-0.5 * r2 / 9).exp() / (2 * math.pi * 9)
    return t, s, log_pd - p_g.log()


def test_under_confident_weights_are_sharpened_and_exact_ones_are_not():
    """A classifier that is right in direction but under-confident (log w scaled by 0.4, as an
    early-stopped one is) leaves part of the halo: a power of 2 or more brings its precision
    toward the exact weights'. The exact weights themselves are kept: sharper powers buy little
    precision and lose the data's tails (recall below the fitted weights')."""
    t, s, lw = _core_and_halo(1500, 0)
    soft = select_sharpening(0.4 * lw, t, s)
    assert soft["power"] >= 2.0
    assert soft["scores"][str(soft["power"])]["precision"] > soft["scores"]["1.0"]["precision"] + 0.008
    exact = select_sharpening(lw, t, s)
    assert exact["power"] == 1.0
    assert exact["scores"]["3.0"]["precision"] > exact["scores"]["1.0"]["precision"]  # precision alone would sharpen


def test_a_power_that_drops_a_mode_is_refused():
    """Two modes, half the data each; the weights favour the left mode 20 to 1 (the right mode's
    generated rows include 30% junk). Their square keeps a handful of the right mode's rows:
    precision rises, recall falls well below the fitted weights' (balls of its own handful of
    rows would have hidden that), so the weights as fitted are kept."""
    g = torch.Generator().manual_seed(1)
    n = 1500
    centre = torch.tensor([[4.0, 0.0], [-4.0, 0.0]])
    t = 0.5 * torch.randn(n, 2, generator=g) + centre[(torch.rand(n, generator=g) < 0.5).long()]
    left = torch.rand(n, generator=g) < 0.5
    junk = ~left & (torch.rand(n, generator=g) < 0.3)
    s = 0.5 * torch.randn(n, 2, generator=g) + centre[left.long()] + junk[:, None] * torch.tensor([0.0, 3.0])
    lw = torch.where(left, math.log(20.0), torch.where(junk, math.log(0.1), 0.0))
    rec = select_sharpening(lw, t, s)
    assert rec["power"] == 1.0
    assert rec["scores"]["3.0"]["precision"] > rec["scores"]["1.0"]["precision"]
    for p in ("2.0", "3.0"):
        assert rec["scores"][p]["recall"] < 0.55 < rec["scores"]["1.0"]["recall"]


def test_the_one_standard_error_rule_keeps_the_mildest_power_within_one_error_of_the_best():
    precision = {1.0: 0.50, 1.5: 0.56, 2.0: 0.60, 3.0: 0.61}
    assert one_standard_error(precision, lambda p, q: 0.02) == 2.0  # 3's lead of 0.01 is within one error
    assert one_standard_error(precision, lambda p, q: 0.005) == 3.0  # now it is not
    assert one_standard_error(precision, lambda p, q: 0.2) == 1.0
    assert one_standard_error({1.0: 0.5, 2.0: 0.5}, lambda p, q: 0.0) == 1.0  # a tie: the milder


def test_recall_floor_is_the_unweighted_recall_at_the_same_size_and_the_fitted_weights():
    """Each power's recall floor is the higher of the unweighted generator's recall on as many
    distinct rows as its weighted resample keeps and the fitted weights' recall, each less two
    binomial errors; the balls are fixed, so a thinner unweighted sample recalls less."""
    t, s, lw = _core_and_halo(1500, 0)
    rec = select_sharpening(0.4 * lw, t, s)
    sharp, plain, fitted = rec["scores"]["3.0"], rec["unweighted"], rec["scores"]["1.0"]
    assert sharp["distinct_rows"] < 0.85 * plain["distinct_rows"]
    assert sharp["unweighted_recall"] < plain["recall"] - 0.03  # fewer rows, same fixed balls

    def less(r):
        return r - 2 * math.sqrt(r * (1 - r) / 1500)
    assert sharp["recall_floor"] == pytest.approx(max(less(sharp["unweighted_recall"]), less(fitted["recall"])))


def test_too_few_held_out_rows_choose_nothing():
    """Fewer than 50 held-out data rows, or none (val_fraction=0: the training rows, which favour
    the sharper powers), choose no sharpening and say why."""
    t, s, lw = _core_and_halo(1500, 0)
    rec = select_sharpening(lw, t[:20], s)
    assert rec["power"] == 1.0 and "too few" in rec["skipped"]
    torch.manual_seed(0)
    c = DensityRatioClassifier(2, 32, 3, val_fraction=0).fit(t, s, epochs=3, progress=False, sharpen=(1.0, 3.0))
    assert float(c.sharpen_power) == 1.0 and "val_fraction=0" in c.diagnostics_["sharpening"]["skipped"]


def test_sharpened_log_weights_cap_then_raise():
    lw = torch.arange(101, dtype=torch.float64)  # quantile 0.9 of 0..100 is 90
    out = sharpened_log_weights(lw, 2.0, 0.9)
    assert torch.allclose(out, 2 * lw.clamp(max=90.0))
    assert sharpened_log_weights(lw, 1.0, 0.9) is lw  # the weights as fitted
    with pytest.raises(ValueError, match=">= 1"):
        select_sharpening(lw, torch.zeros(5, 1), torch.zeros(101, 1), powers=(0.5,))


def test_classifier_fit_chooses_saves_and_loads_the_power(tmp_path):
    from genrefine.checkpoint import read_checkpoint, save_module

    t, s, _ = _core_and_halo(1500, 2)
    torch.manual_seed(2)
    c = DensityRatioClassifier(2, 32, 3).fit(t, s, epochs=15, progress=False, sharpen=(1.0, 2.0, 3.0))
    rec = c.diagnostics_["sharpening"]
    assert float(c.sharpen_power) == rec["power"] and set(rec["scores"]) == {"1.0", "2.0", "3.0"}
    assert rec["data_rows"] == 150  # the held-out data rows (val_fraction 0.1), never trained on
    save_module(c, c.config(), str(tmp_path / "c"), kind="dctr_classifier")
    meta, state = read_checkpoint(str(tmp_path / "c"))
    back = DensityRatioClassifier(**meta["config"])
    back.load_state_dict(state)
    assert float(back.sharpen_power) == rec["power"] and float(back.sharpen_capped) == float(rec["capped"])
    older = DensityRatioClassifier(**meta["config"])  # saved before sharpening existed: none
    older.load_state_dict({k: v for k, v in state.items() if k not in ("sharpen_power", "sharpen_capped")})
    assert float(older.sharpen_power) == 1.0 and float(older.sharpen_capped) == 0.0


def test_run_with_sharpen_auto_samples_the_chosen_power():
    """Through compare(): a classifier stopped after 5 epochs is under-confident on a generator
    whose half latent space maps onto a wide halo; the held-out rows choose the cube of its
    capped weights (precision 0.78 -> 0.88 there), the sampler draws from that target (the run's
    diagnostics say so), and the setting refuses anything but a number >= 1 or auto."""
    import genrefine
    from genrefine.settings import apply_settings

    rng = np.random.default_rng(0)
    data = rng.normal(size=(3000, 2))

    def halo(z):
        return np.where(z[:, :1] > 0, 1.0, 3.0) * z[:, 1:]

    rep = genrefine.compare(halo, data, ["rejection"], latent_dim=3, seed=0, progress=False, n_samples=2000,
                            settings={"classifier": {"sharpen": "auto", "epochs": 5}})
    diag = rep.diagnostics
    rec = diag["classifier"]["sharpening"]
    assert rec["power"] == 3.0 and rec["scores"]["3.0"]["precision"] > rec["scores"]["1.0"]["precision"] + 0.05
    assert diag["sharpen"] == {**diag["sharpen"], "power": 3.0, "chosen_on_held_out_rows": True}
    cfg = {"classifier": {"sharpen": 1.0}}
    assert apply_settings(cfg, {"classifier": {"sharpen": "auto"}})["classifier"]["sharpen"] == "auto"
    with pytest.raises(ValueError, match="or auto"):
        apply_settings(cfg, {"classifier": {"sharpen": 0.5}})


def test_weights_too_concentrated_to_measure_are_capped_first():
    """Ten generated rows with weights e^12 times the rest (an extrapolating classifier) leave the
    fitted weights about ten effective rows: they cannot compete, so every candidate, p = 1
    included, is of the weights capped at their 99th percentile, which keep hundreds. Without
    the spikes nothing is capped."""
    t, s, lw = _core_and_halo(1500, 2)
    spiked = lw.clone()
    spiked[torch.randperm(len(lw), generator=torch.Generator().manual_seed(3))[:10]] += 12.0
    fitted = torch.softmax(spiked.double(), 0)
    assert 1.0 / float((fitted ** 2).sum()) < 20
    rec = select_sharpening(spiked, t, s)
    assert rec["capped"] is True
    assert rec["scores"]["1.0"]["ess_fraction"] * len(s) > 300
    assert torch.allclose(sharpened_log_weights(spiked, 1.0, capped=True).exp().max(),
                          torch.quantile(spiked.double(), 0.99).exp())
    assert select_sharpening(lw, t, s)["capped"] is False
