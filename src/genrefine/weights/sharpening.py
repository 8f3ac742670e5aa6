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
A candidate competes when

- it raises the precision of ``p = 1`` (the weights as fitted, which always compete) by more
  than twice the paired standard error of the gain (both weightings are of the same rows);
- its recall is at least both the weights' as fitted and the unweighted generator's at the same
  number of distinct rows, each less twice its binomial standard error (sharpening may buy
  precision, not with recall);
- it keeps an effective sample of :data:`MIN_ESS_ROWS` rows.

When the weights as fitted keep fewer than :data:`MIN_ESS_ROWS` effective rows themselves (an
ensemble's untempered image weights can), they cannot be measured, let alone sampled: every
candidate, ``p = 1`` included, is then of the capped weights ``min(w, c)^p`` (``"capped"``).

Kept: the mildest competitor whose precision is within one paired standard error of the best
one's (the one-standard-error rule: a sharper power must earn its distortion).

Recall under weights is measured on the distinct rows of a weighted resample of
:data:`RECALL_DRAWS` draws (the support the weights keep), averaged over :data:`RESAMPLES`
resamples. Every generated row's k-NN ball is fixed once, its radius the distance to its k-th
nearest row of a uniform draw of :data:`RECALL_DRAWS` rows: balls drawn from the resample itself
would widen as it thins, and a mode kept by a handful of rows would still count as recalled.
With fewer than :data:`MIN_DATA_ROWS` held-out data rows nothing is chosen (power 1).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from genrefine.metrics.precision_recall import coverage

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
#: the fewest held-out data rows the choice is made on
MIN_DATA_ROWS = 50


def sharpened_log_weights(log_w: Tensor, power: float, quantile: float = QUANTILE, capped: bool = False) -> Tensor:
    """``power * min(log w, log c)``, ``log c`` the ``quantile`` of ``log_w`` (power 1 and not
    ``capped``: ``log_w`` itself, as the sampler takes the weights as fitted)."""
    if power == 1.0 and not capped:
        return log_w
    cap = torch.quantile(log_w[:1_000_000].double(), quantile) if quantile < 1 else log_w.max()
    return power * torch.minimum(log_w.double(), cap)


def select_sharpening(log_w_gen: Tensor, f_data: Tensor, f_gen: Tensor, powers=POWERS,
                      quantile: float = QUANTILE, seed: int = 0) -> dict:
    """``{"power", "quantile", "scores", "eligible", ...}`` (or ``{"power": 1.0, "skipped"}``): the power
    chosen by the module's rule on the generated rows ``f_gen`` (log weights ``log_w_gen``,
    finite) against the held-out data rows ``f_data`` (both in the space they are scored in)."""
    powers = sorted({float(p) for p in powers} | {1.0})
    if any(not (math.isfinite(p) and p >= 1) for p in powers):
        raise ValueError(f"sharpening powers are numbers >= 1, got {list(powers)}")
    if not 0 < quantile <= 1:
        raise ValueError(f"sharpening quantile must lie in (0, 1], got {quantile}")
    if len(f_data) < MIN_DATA_ROWS or len(f_gen) < MIN_ESS_ROWS:
        return {"power": 1.0, "quantile": quantile, "skipped": f"too few rows to choose on ({len(f_data)} held-out "
                f"data rows, {len(f_gen)} generated; at least {MIN_DATA_ROWS} and {MIN_ESS_ROWS})"}
    rd, rg = _subset(len(f_data), MAX_DATA_ROWS, seed), _subset(len(f_gen), MAX_GENERATED_ROWS, seed + 1)
    t = f_data[rd].reshape(len(rd), -1).double().cpu().numpy()
    s = f_gen[rg].reshape(len(rg), -1).double().cpu().numpy()
    lw = log_w_gen[rg.to(log_w_gen.device)].double().cpu()
    covered, rng = coverage(t, s, K).astype(np.float64), np.random.default_rng(seed)
    recalled = _recall_balls(t, s, rng)
    fitted = torch.softmax(lw, 0)
    capped = float(1.0 / (fitted * fitted).sum()) < MIN_ESS_ROWS  # the fitted weights cannot compete
    weights = {p: torch.softmax(sharpened_log_weights(lw, p, quantile, capped), 0).numpy() for p in powers}
    base = _scores(np.full(len(s), 1.0 / len(s)), covered, recalled, rng)
    scores = {p: _scores(w, covered, recalled, rng) for p, w in weights.items()}
    for p in powers:  # the paired standard error of each power's precision gain over p = 1
        scores[p]["gain_error"] = _gain_error(weights[p], weights[1.0], covered)
        scores[p]["recall_floor"] = max(_less_two_errors(scores[p]["unweighted_recall"], len(t)),
                                        _less_two_errors(scores[1.0]["recall"], len(t)))
    eligible = [p for p in powers if p == 1.0 or (
        scores[p]["ess_fraction"] * len(s) >= MIN_ESS_ROWS and scores[p]["recall"] >= scores[p]["recall_floor"]
        and scores[p]["precision"] - scores[1.0]["precision"] > 2 * scores[p]["gain_error"])]
    best = one_standard_error({p: scores[p]["precision"] for p in eligible},
                              lambda p, q: _gain_error(weights[p], weights[q], covered))
    return {"power": best, "quantile": quantile, "capped": capped, "unweighted": base,
            "scores": {str(p): v for p, v in scores.items()}, "eligible": [str(p) for p in eligible],
            "data_rows": len(t), "generated_rows": len(s)}


def one_standard_error(precision: dict, error) -> float:
    """The mildest power of ``precision`` (power -> score) whose score the best one's exceeds by
    at most ``error(best, power)``, the standard error of their difference: a sharper power
    must earn its distortion."""
    top = max(precision, key=lambda p: (precision[p], -p))
    return min(p for p in precision if precision[top] - precision[p] <= error(top, p))


def _scores(w: np.ndarray, covered: np.ndarray, recalled: Tensor, rng: np.random.Generator) -> dict:
    """Weighted precision (``covered``: each generated row in a k-NN ball of the data), resampled
    recall (``recalled[i, j]``: data row ``i`` in generated row ``j``'s ball), the recall of as
    many distinct rows drawn without weights, and the effective-sample fraction, for normalised
    weights ``w`` of the generated rows."""
    n, recalls, plain = len(w), [], []
    for _ in range(RESAMPLES):
        keep = np.unique(rng.choice(n, min(n, RECALL_DRAWS), replace=True, p=w / w.sum()))
        recalls.append(_recall(recalled, keep))
        plain.append(_recall(recalled, rng.choice(n, len(keep), replace=False)))
    return {"precision": float(w @ covered), "recall": float(np.mean(recalls)),
            "unweighted_recall": float(np.mean(plain)), "ess_fraction": float(1.0 / (w * w).sum()) / n,
            "distinct_rows": len(keep)}


def _less_two_errors(recall: float, n: int) -> float:
    """``recall`` less twice its binomial standard error on ``n`` data rows."""
    return recall - 2 * math.sqrt(recall * (1 - recall) / n)


def _recall(recalled: Tensor, keep: np.ndarray) -> float:
    """The share of data rows inside the ball of at least one generated row of ``keep``."""
    return float(recalled[:, torch.as_tensor(keep)].any(1).double().mean())


def _recall_balls(t: np.ndarray, s: np.ndarray, rng: np.random.Generator, chunk: int = 2048) -> Tensor:
    """``[i, j]``: data row ``t[i]`` lies within generated row ``s[j]``'s k-NN ball, whose radius
    is the distance from ``s[j]`` to its k-th nearest other row of a uniform draw of
    :data:`RECALL_DRAWS` generated rows (the scale of a resample's own balls, fixed for all)."""
    ref = rng.choice(len(s), min(len(s), RECALL_DRAWS), replace=False)
    tt, ss = torch.from_numpy(t), torch.from_numpy(s)
    in_ref = torch.zeros(len(s), dtype=torch.bool)
    in_ref[torch.as_tensor(ref)] = True
    radii = []
    for i, c in zip(torch.arange(len(s)).split(chunk), ss.split(chunk)):
        d = torch.cdist(c, ss[torch.as_tensor(ref)])
        radii.append(torch.where(in_ref[i], d.kthvalue(K + 1, 1).values, d.kthvalue(K, 1).values))  # not itself
    r = torch.cat(radii)
    return torch.cat([torch.cdist(c, ss) <= r[None, :] for c in tt.split(chunk)])


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
