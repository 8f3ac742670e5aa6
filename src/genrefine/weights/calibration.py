"""Cell calibration: weights rescaled so the reweighted generated sample carries the data's
share of mass in every cell of a partition of data space.

A ratio estimate ``w ≈ p_data / p_g`` errs most in the mass of whole regions: in many
dimensions a classifier that separates modes well still gets their relative weights wrong, and
that mismatch is what distribution distances punish most. With cells ``c`` from k-means on the
data, the calibrated weight is

    w'(x) = w(x) · f_c(x),   f_c = (share of data rows in c) / (share of Σ w over generated points in c),

then scaled so that the mean of ``w'`` over generated points is 1. Inside a cell the estimator's
shape is kept; between cells the masses are the data's. A cell the generator barely reaches
(fewer than :data:`MIN_GENERATED_PER_CELL` generated points) keeps ``f = 1``: its share is
not known well enough to correct; no factor moves a cell's mass by more than
:data:`MAX_CELL_FACTOR` either way, and :func:`uncovered_share` says how much of the data lies
where the generator barely goes. With a clip ``m`` the factors are found by iterative
proportional fitting, since clipping moves mass between cells.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: a cell needs this many generated points before its factor is corrected
MIN_GENERATED_PER_CELL = 20
#: at least this many data rows per cell, so each cell's data share is known to a few percent
MIN_DATA_PER_CELL = 500
#: largest correction of a cell's mass, either way: a cell whose generated share is far below
#: its data share holds the spill-over of other modes, not the region the data put there (a
#: missing mode's cell got a factor of 2672, which dragged tail points toward the missing mode
#: and left the generator's spurious mode in place)
MAX_CELL_FACTOR = 10.0


def cell_count(requested: int, n_data: int) -> int:
    """How many cells ``n_data`` rows support: ``requested``, at most one per
    :data:`MIN_DATA_PER_CELL` rows; 0 (no calibration) when that leaves fewer than 2."""
    k = min(int(requested), int(n_data) // MIN_DATA_PER_CELL)
    return k if k >= 2 else 0


class KMeansCells(nn.Module):
    """A partition of data space into ``k`` k-means cells of (a subsample of) the flat data rows."""

    def __init__(self, k: int, data: Tensor, max_points: int = 50_000, seed: int = 0) -> None:
        super().__init__()
        from sklearn.cluster import KMeans

        data = data.reshape(len(data), -1)
        rows = torch.randperm(len(data), device=data.device)[:max_points]  # torch's seeded stream
        km = KMeans(int(k), n_init=1, random_state=int(seed)).fit(data[rows].double().cpu().numpy())
        self.register_buffer("centres", torch.as_tensor(km.cluster_centers_, dtype=data.dtype, device=data.device))

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """The cell index of each row of ``x`` (rows of any shape, flattened)."""
        if not len(x):
            return torch.zeros(0, dtype=torch.long, device=x.device)
        x = x.reshape(len(x), -1).to(self.centres.dtype)
        return torch.cat([torch.cdist(c, self.centres).argmin(1) for c in x.split(50_000)])


@torch.no_grad()
def cell_factors(w: Tensor, cells_gen: Tensor, cells_data: Tensor, k: int, m: float | None = None,
                 iterations: int = 30, min_generated: int = MIN_GENERATED_PER_CELL) -> Tensor:
    """Per-cell factors ``f`` (float64, length ``k``) such that the weights ``min(w · f[cell], m)``
    of the generated points have mean 1 and give the cells the generator reaches (``min_generated``
    points or more) their data shares relative to each other.

    ``w``: the weights of the generated points; ``cells_gen`` / ``cells_data``: the cell of each
    generated point and each data row. A cell not reached keeps the estimator's weights times
    the common scale. Without ``m`` one step is exact; with it, iterative proportional fitting.
    Each factor stays within ``[1 / MAX_CELL_FACTOR, MAX_CELL_FACTOR]`` before the common scale."""
    w = w.double()
    reached = torch.bincount(cells_gen, minlength=k) >= int(min_generated)
    target = torch.bincount(cells_data, minlength=k).double() * reached
    target = target / target.sum().clamp_min(1e-300)
    clip = (lambda v: v.clamp(max=m)) if m is not None else (lambda v: v)
    g = torch.ones(k, dtype=torch.float64, device=w.device)  # the factors of the reached cells
    scale = 1.0
    on_reached = reached[cells_gen]
    for _ in range(1 if m is None else int(iterations)):
        mass = torch.bincount(cells_gen[on_reached], weights=clip(scale * w * g[cells_gen])[on_reached], minlength=k)
        mass = mass / mass.sum().clamp_min(1e-300)
        step = (target / mass.clamp_min(1e-300)).clamp(1.0 / MAX_CELL_FACTOR, MAX_CELL_FACTOR)
        g = torch.where(reached & (mass > 0), (g * step).clamp(1.0 / MAX_CELL_FACTOR, MAX_CELL_FACTOR), g)
        scale = scale / float(clip(scale * w * g[cells_gen]).mean().clamp_min(1e-300))
    return scale * g


def uncovered_share(cells_gen: Tensor, cells_data: Tensor, k: int, ratio: float = MAX_CELL_FACTOR) -> float:
    """The share of the data rows that lie in cells whose share of the generated points is below
    their data share / ``ratio``: the part of the data the generator barely reaches (a missing
    mode or region, which reweighting cannot fill)."""
    gen = torch.bincount(cells_gen, minlength=k).double()
    data = torch.bincount(cells_data, minlength=k).double()
    gen, data = gen / gen.sum().clamp_min(1.0), data / data.sum().clamp_min(1.0)
    return float(data[gen < data / ratio].sum())
