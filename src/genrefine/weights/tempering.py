"""Tempered weights ``w^β`` with ``β`` chosen on held-out rows.

A classifier that separates real from generated samples almost perfectly (images) gives
weights so spread that sampling them keeps a few of the most realistic samples and loses the
rest of the distribution: precision rises, recall and the Frechet distance suffer. Raising
the weights to a power ``β ∈ [0, 1]`` interpolates between the base (``β = 0``) and the full
correction (``β = 1``). The rule: among the candidates, keep the ``β`` whose reweighted
generated rows lie closest to held-out data rows in energy distance (a distance between whole
distributions, so it charges lost diversity as much as unrealistic samples); both row sets
are ones the classifier did not train on. The distance is the unbiased (U-statistic) one: the
plain V-statistic grows by about ``E|Y - Y'| / n_eff`` as the weights concentrate, which
charged every non-flat β for its smaller effective sample rather than for where it puts mass. The kept weights are renormalised to mean 1 over
those generated rows.

Under the ``"guard"`` rule (tabular rows, where a density must be right) the full correction
is kept whenever the held-out rows do not say it is worse than the base; only weights that
make the generator worse on them are tempered (measured on the moons: a WGAN-GP's full DCTR
weights raised the energy distance to held-out truth from 0.0012 to 0.0067, ``w^0.25`` lowered
it to 0.0009; docs/zoo.md).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genrefine.metrics.distances import energy_distance

#: the default candidates: the full correction, three tempered ones, and none (the base)
CANDIDATES = (1.0, 0.5, 0.25, 0.1, 0.0)


#: the most held-out data rows scored (and twice as many generated rows): a seeded random
#: subset of larger sets
MAX_ROWS = 5000
#: the smallest effective sample, as a fraction of the scored generated rows, of a candidate β
#: that may be chosen (β = 0 always may): below it a few rows carry the weighting
MIN_ESS = 0.01
#: how the candidates compete: ``"best"`` keeps the closest; ``"guard"`` keeps the full correction
#: (β = 1) unless it scores worse than none (β = 0), and only then the closest
RULES = ("best", "guard")


def select_tempering(log_w_gen: Tensor, x_data: Tensor, x_gen: Tensor, candidates=CANDIDATES,
                     rule: str = "best") -> dict:
    """``{"beta", "log_norm", "scores", "rule"}``: the candidate ``β`` whose weights ``w^β`` on
    the generated rows ``x_gen`` (log weights ``log_w_gen``) bring them closest to the data rows
    ``x_data`` in energy distance (under ``rule``, :data:`RULES`), and the normaliser
    ``log mean w^β`` over ``x_gen`` of a tempered β (0 for β = 1: the full correction is the
    estimator's own ratio, already of mean one, and stays as it was fitted). Only a β whose weights keep an effective sample of :data:`MIN_ESS` of the
    scored rows competes (β = 0 always does). Ties keep the larger β."""
    betas = sorted({float(b) for b in candidates}, reverse=True)
    if not betas or any(not 0.0 <= b <= 1.0 for b in betas):
        raise ValueError(f"tempering candidates must lie in [0, 1], got {list(candidates)}")
    if rule not in RULES or (rule == "guard" and not {0.0, 1.0} <= set(betas)):
        raise ValueError(f"tempering rule must be one of {', '.join(RULES)} ('guard' needs the candidates 0 and 1), "
                         f"got {rule!r} with {betas}")
    lw = log_w_gen.double()
    # the energy distance costs data x generated pairs: held-out rows beyond these add little
    rd, rg = _subset(len(x_data), MAX_ROWS), _subset(len(x_gen), 2 * MAX_ROWS)
    xd, xg = x_data[rd].double().reshape(len(rd), -1), x_gen[rg].double().reshape(len(rg), -1)
    scores, ess = {}, {}
    for b in betas:
        w = torch.softmax(b * lw[rg], 0)
        ess[b] = float(1.0 / (w * w).sum()) / len(w)
        scores[b] = energy_distance(xd, xg, weights_y=w, unbiased=True)
    # a weighting carried by a handful of rows cannot be scored (its distance swings with them)
    eligible = [b for b in betas if b == 0.0 or ess[b] >= MIN_ESS]
    best = min(eligible or [min(betas)], key=lambda b: (scores[b], -b))
    if rule == "guard" and 1.0 in eligible and scores[1.0] <= scores[0.0]:
        best = 1.0
    log_norm = 0.0 if best == 1.0 else float(torch.logsumexp(best * lw, 0) - math.log(len(lw)))
    return {"beta": best, "log_norm": log_norm, "scores": {str(b): s for b, s in scores.items()},
            "ess_fraction": {str(b): v for b, v in ess.items()}, "eligible": [str(b) for b in eligible],
            "rule": rule, "data_rows": len(xd), "generated_rows": len(xg)}


def _subset(n: int, most: int) -> Tensor:
    """All of ``range(n)``, or ``most`` of them drawn without replacement from a seeded stream
    of their own (the run's random stream is not moved)."""
    if n <= most:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:most]
