"""k-nearest-neighbour precision and recall (Kynkäänniemi et al. 2019), as the latent
reweighting paper defines them (Appendix C, k = 3), and repeated evaluation with intervals.

Precision: the fraction of generated points that fall inside at least one real point's
k-NN ball (radius = distance from that real point to its k-th nearest other real point).
Recall: the same with the roles swapped.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from genrefine.validation import check_array


def _kth_nn_radius(a: torch.Tensor, k: int, chunk: int = 4096) -> torch.Tensor:
    """Distance of each row of ``a`` to its k-th nearest other row."""
    out = []
    for c in a.split(chunk):
        d = torch.cdist(c, a)
        out.append(d.kthvalue(k + 1, dim=1).values)  # +1: the point itself at distance 0
    return torch.cat(out)


def _covered(queries: torch.Tensor, ref: torch.Tensor, radii: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """For each query: is it within ``radii[j]`` of some ``ref[j]``?"""
    out = []
    for c in queries.split(chunk):
        out.append((torch.cdist(c, ref) <= radii[None, :]).any(1))
    return torch.cat(out)


def coverage(real, fake, k: int = 3) -> np.ndarray:
    """Per row of ``fake``: does it lie in the k-NN ball of some row of ``real`` (k-NN precision's
    per-point term; a weighted precision is ``sum(w * coverage) / sum(w)``)."""
    r = torch.as_tensor(check_array(real, name="real samples", min_rows=k + 1), dtype=torch.float64)
    f = torch.as_tensor(check_array(fake, name="generated samples", min_rows=1, dim=r.shape[1]), dtype=torch.float64)
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return _covered(f, r, _kth_nn_radius(r, k)).numpy()


def precision_recall(real, fake, k: int = 3, weights_fake=None) -> tuple[float, float | None]:
    """``(precision, recall)`` of ``fake`` against ``real`` with k-NN balls (k = 3 by default).

    With ``weights_fake`` the precision is the weighted fraction of covered fake points and
    the recall (which needs the fake points' own k-NN balls) is None."""
    covered = torch.as_tensor(coverage(real, fake, k)).double()
    if weights_fake is not None:
        from genrefine.validation import check_weights

        w = torch.as_tensor(check_weights(weights_fake, name="fake weights", n=len(covered)), dtype=torch.float64)
        return float((w * covered).sum() / w.sum()), None
    r = torch.as_tensor(check_array(real, name="real samples"), dtype=torch.float64)
    f = torch.as_tensor(check_array(fake, name="generated samples", min_rows=k + 1), dtype=torch.float64)
    recall = _covered(r, f, _kth_nn_radius(f, k)).double().mean().item()
    return covered.mean().item(), recall


def mean_interval(values, level: float = 0.97) -> dict:
    """Mean and the half-width of the ``level`` confidence interval of i.i.d. normal values
    (Student t with n - 1 degrees of freedom; the paper's "97% confidence interval" over 10
    evaluations)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    n = len(v)
    mean = float(v.mean()) if n else math.nan
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return {"mean": mean, "interval": half, "level": level, "values": v.tolist()}
