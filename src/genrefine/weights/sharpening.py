"""Sharpened weights ``min(w, c)^p`` for images, the power ``p`` chosen on held-out rows.

The classifier's weights ``w`` aim at the data's density. For images a user often wants the
generator's most realistic images first: a power ``p > 1`` of the weights, capped at ``c``
(their ``quantile`` over the generator's samples) so the few extreme weights of an
extrapolating classifier cannot take the sample over, leans further toward them, as the
truncation trick does (``samplers/rejection.py: sharpened`` samples it). Too sharp, and the
sample keeps a few kinds of image and loses the rest.

The rule (``classifier.sharpen=auto``): every candidate power reweights fresh generated rows,
which are then compared with held-out data rows (neither was trained on) by k-NN precision and
recall (k = 3) in the rows themselves (the pixels of images: on two MNIST generators their
precision moved with precision in an independent digit classifier's features as the power
grew, where the feature classifier's autoencoder code disagreed both times; docs/image_bar.md).
A candidate competes when it raises the precision of ``p = 1`` (the weights as fitted, which
always compete) by more than twice the paired standard error of the gain (both weightings are
of the same rows), keeps a recall of at least the unweighted generator's less twice its
binomial standard error, and keeps an effective sample of :data:`MIN_ESS_ROWS` rows. Kept:
the mildest competitor whose precision is within one paired standard error of the best one's
(the one-standard-error rule: a sharper power must earn its distortion). Recall under weights
is measured on the distinct rows of a weighted resample of :data:`RECALL_DRAWS` draws (the
support the weights keep), the same way for every candidate and for the unweighted generator,
averaged over :data:`RESAMPLES` resamples.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from genrefine.metrics.precision_recall import coverage, precision_recall

#: the default candidate powers: the weights as fitted, and three sharper ones
POWERS = (1.0, 1.5, 2.0, 3.0)
#: the cap's quantile of the weights over the generator's samples
QUANTILE = 0.99
#: the most rows of either kind scored (a seeded subset of larger sets): image weights keep an
#: effective sample of a few percent of the generated rows, so those are many
MAX_DATA_ROWS, MAX_GENERATED_ROWS = 4000, 20_000
#: the smallest effective sample, in generated rows, a candidate may keep
MIN_ESS_ROWS = 100
#: weighted resamples whose distinct rows measure a candidate's recall, and their draws
RESAMPLES, RECALL_DRAWS = 3, 4000
#: the neighbours of the k-NN balls
K = 3


def sharpened_log_weights(log_w: Tensor, power: float, quantile: float = QUANTILE) -> Tensor:
    """``power * min(log w, log c)``, ``log c`` the ``quantile`` of ``log_w`` (power 1: ``log_w``
    itself, as the sampler takes the weights as fitted)."""
    if power == 1.0:
        return log_w
    cap = torch.quantile(log_w[:1_000_000].double(), quantile) if quantile < 1 else log_w.max()
    return power * torch.minimum(log_w.double(), cap)


def select_sharpening(log_w_gen: Tensor, f_data: Tensor, f_gen: Tensor, powers=POWERS,
                      quantile: float = QUANTILE, seed: int = 0) -> dict:
    """``{"power", "quantile", "scores", "eligible", "recall_floor", ...}``: the candidate power
    chosen by the module's rule on the generated rows ``f_gen`` (log weights ``log_w_gen``,
    finite) against the held-out data rows ``f_data`` (both in the space they are scored in)."""
    powers = sorted({float(p) for p in powers} | {1.0})
    if any(not (math.isfinite(p) and p >= 1) for p in powers):
        raise ValueError(f"sharpening powers are numbers >= 1, got {list(powers)}")
    if not 0 < quantile <= 1:
        raise ValueError(f"sharpening quantile must lie in (0, 1], got {quantile}")
    rd, rg = _subset(len(f_data), MAX_DATA_ROWS, seed), _subset(len(f_gen), MAX_GENERATED_ROWS, seed + 1)
    t = f_data[rd].reshape(len(rd), -1).double().cpu().numpy()
    s = f_gen[rg].reshape(len(rg), -1).double().cpu().numpy()
    lw = log_w_gen[rg.to(log_w_gen.device)].double().cpu()
    covered, rng = coverage(t, s, K).astype(np.float64), np.random.default_rng(seed)
    weights = {p: torch.softmax(sharpened_log_weights(lw, p, quantile), 0).numpy() for p in powers}
    base = _scores(t, s, np.full(len(s), 1.0 / len(s)), covered, rng)
    scores = {p: _scores(t, s, w, covered, rng) for p, w in weights.items()}
    floor = base["recall"] - 2 * math.sqrt(base["recall"] * (1 - base["recall"]) / len(t))
    for p in powers:  # the paired standard error of each power's precision gain over p = 1
        scores[p]["gain_error"] = _gain_error(weights[p], weights[1.0], covered)
    eligible = [p for p in powers if p == 1.0 or (
        scores[p]["ess_fraction"] * len(s) >= MIN_ESS_ROWS and scores[p]["recall"] >= floor
        and scores[p]["precision"] - scores[1.0]["precision"] > 2 * scores[p]["gain_error"])]
    top = max(eligible, key=lambda p: (scores[p]["precision"], -p))
    # the one-standard-error rule: the mildest power whose precision the best does not beat by
    # more than the paired standard error of their difference
    best = min(p for p in eligible if scores[top]["precision"] - scores[p]["precision"]
               <= _gain_error(weights[top], weights[p], covered))
    return {"power": best, "quantile": quantile, "unweighted": base, "recall_floor": floor,
            "scores": {str(p): v for p, v in scores.items()}, "eligible": [str(p) for p in eligible],
            "data_rows": len(t), "generated_rows": len(s)}


def _scores(t: np.ndarray, s: np.ndarray, w: np.ndarray, covered: np.ndarray, rng: np.random.Generator) -> dict:
    """Weighted precision (``covered``: each row of ``s`` in a k-NN ball of ``t``), resampled
    recall and effective-sample fraction of rows ``s`` with normalised weights ``w``."""
    recalls = []
    for _ in range(RESAMPLES):
        keep = np.unique(rng.choice(len(s), min(len(s), RECALL_DRAWS), replace=True, p=w / w.sum()))
        recalls.append(precision_recall(t, s[keep], k=K)[1] if len(keep) > K else 0.0)
    return {"precision": float(w @ covered), "recall": float(np.mean(recalls)),
            "ess_fraction": float(1.0 / (w * w).sum()) / len(w)}


def _gain_error(v: np.ndarray, u: np.ndarray, covered: np.ndarray) -> float:
    """Delta-method standard error of ``v @ covered - u @ covered``, two self-normalised
    estimates on the same rows (normalised weights ``v``, ``u``)."""
    terms = v * (covered - v @ covered) - u * (covered - u @ covered)
    return float(math.sqrt((terms * terms).sum()))


def _subset(n: int, most: int, seed: int) -> Tensor:
    """All of ``range(n)``, or ``most`` of them from a seeded stream of their own."""
    if n <= most:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:most]
