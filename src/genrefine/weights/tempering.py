"""Tempered weights ``w^β`` with ``β`` chosen on held-out rows.

A classifier that separates real from generated samples almost perfectly (images) gives
weights so spread that sampling them keeps a few of the most realistic samples and loses the
rest of the distribution: precision rises, recall and the Frechet distance suffer. Raising
the weights to a power ``β ∈ [0, 1]`` interpolates between the base (``β = 0``) and the full
correction (``β = 1``). The rule: among the candidates, keep the ``β`` whose reweighted
generated rows lie closest to held-out data rows in energy distance (a distance between whole
distributions, so it charges lost diversity as much as unrealistic samples); both row sets
are ones the classifier did not train on. The kept weights are renormalised to mean 1 over
those generated rows.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genrefine.metrics.distances import energy_distance

#: the default candidates: the full correction, three tempered ones, and none (the base)
CANDIDATES = (1.0, 0.5, 0.25, 0.1, 0.0)


def select_tempering(log_w_gen: Tensor, x_data: Tensor, x_gen: Tensor, candidates=CANDIDATES) -> dict:
    """``{"beta", "log_norm", "scores"}``: the candidate ``β`` whose weights ``w^β`` on the
    generated rows ``x_gen`` (log weights ``log_w_gen``) bring them closest to the data rows
    ``x_data`` in energy distance, and ``log mean w^β`` over ``x_gen``. Ties keep the larger β."""
    betas = sorted({float(b) for b in candidates}, reverse=True)
    if not betas or any(not 0.0 <= b <= 1.0 for b in betas):
        raise ValueError(f"tempering candidates must lie in [0, 1], got {list(candidates)}")
    lw = log_w_gen.double()
    xd, xg = x_data.double().reshape(len(x_data), -1), x_gen.double().reshape(len(x_gen), -1)
    scores = {}
    for b in betas:
        w = torch.softmax(b * lw, 0)
        scores[b] = energy_distance(xd, xg, weights_y=w)
    best = min(betas, key=lambda b: (scores[b], -b))
    log_norm = float(torch.logsumexp(best * lw, 0) - math.log(len(lw)))
    return {"beta": best, "log_norm": log_norm, "scores": {str(b): s for b, s in scores.items()},
            "data_rows": len(xd), "generated_rows": len(xg)}
