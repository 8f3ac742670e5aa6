"""Teacher candidates besides the game: weight functions that compete, on the held-out check,
to be what ``w_φ`` learns (``fit(inputs="data", smoothed_ratio=..., calibrate=..., transport=...)``).

- :class:`SmoothedRatio`: ``r_s = (p_data * N_s) / (p_G * N_s)``, the density ratio of both samples
  blurred by Gaussian noise of scale ``s``, from a classifier's odds. It sees mass between modes
  and along a manifold but not a thickness mismatch that no reweighting can fix.
- :class:`CellCalibrated`: any candidate rescaled per k-means cell so that the clipped, reweighted
  generated pool carries the data's share of mass in every cell: ratio estimates err most in
  the mass of whole modes, which is what the EMD punishes most.
- transport weights (:mod:`genrefine.weights.transport`): a latent net regressed on the exact
  W1-optimal reweighting bounded by ``m``; learned in latent space, so nothing is distilled.

A cross-fitted fit averages a kind's fold copies (:class:`AveragedTeacher`).
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import Tensor, nn

from genrefine.weights.calibration import KMeansCells, cell_factors
from genrefine.weights.classifier import DegenerateWeightsWarning, DensityRatioClassifier
from genrefine.weights.transport import fit_on_pairs, fit_transport

TRANSPORT_KIND = "transport weights"  # the candidate learned in latent space


class SmoothedRatio(nn.Module):
    """``r_s(x) ≈ (p_data * N_s)(x) / (p_G * N_s)(x)``: the density ratio of the data and the
    generated samples after both are blurred by Gaussian noise of scale ``s`` (per coordinate,
    in units of the data's standard deviation), from the odds of a classifier trained on the
    blurred samples."""

    def __init__(self, data_dim: int, hidden: int = 64, layers: int = 4) -> None:
        super().__init__()
        self.clf = DensityRatioClassifier(int(data_dim), hidden, layers)

    def fit(self, data: Tensor, generated: Tensor, scale: float, epochs: int = 20,
            progress: bool = True) -> "SmoothedRatio":
        sd = data.std(0, keepdim=True)
        with warnings.catch_warnings():  # a candidate, judged by the held-out check, not a sampler's weights
            warnings.simplefilter("ignore", DegenerateWeightsWarning)
            self.clf.fit(data + scale * sd * torch.randn_like(data),
                         generated + scale * sd * torch.randn_like(generated), epochs=epochs, progress=progress)
        return self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.clf.log_weight(x).clamp(max=30.0).exp()


class CellCalibrated(nn.Module):
    """``w'(x) = min(w(x) · f_c(x), m)``: a weight function rescaled per cell ``c`` so that the
    reweighted generated sample carries the data's share of mass in every cell (iterative
    proportional fitting, with the clip at ``m`` and mean weight 1 as Eq. (6) asks; cells the
    generator never reaches keep ``f = 1``)."""

    def __init__(self, teacher: nn.Module, cells: KMeansCells, m: float) -> None:
        super().__init__()
        self.teacher, self.cells, self.m = teacher, cells, float(m)
        self.register_buffer("factors", torch.ones(len(cells.centres), device=cells.centres.device))

    @torch.no_grad()
    def fit(self, data: Tensor, generated: Tensor, iterations: int = 30) -> "CellCalibrated":
        w = torch.cat([self.teacher(c) for c in generated.split(100_000)])
        f = cell_factors(w, self.cells(generated), self.cells(data), len(self.factors), m=self.m,
                         iterations=iterations, min_generated=1)
        self.factors.copy_(f.float())
        return self

    def forward(self, x: Tensor) -> Tensor:
        return (self.teacher(x) * self.factors[self.cells(x)]).clamp(max=self.m)


class AveragedTeacher(nn.Module):
    """The mean of ``K`` fold copies of one teacher, each clipped at ``m``: what a cross-fitted
    fit distils into ``w_φ``. Read at ``z`` when every copy is a latent net."""

    def __init__(self, teachers: list, m: float) -> None:
        super().__init__()
        self.teachers, self.m = nn.ModuleList(teachers), float(m)
        self.on_latent = all(getattr(t, "on_latent", False) for t in teachers)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([t(x).clamp(max=self.m) for t in self.teachers]).mean(0)


def train_teachers(game: tuple[str, nn.Module], x: Tensor, x_pool: Tensor, generator, m: float, s,
                   new_latent_net: Callable[[], nn.Module], progress: bool = True,
                   pairs: tuple | None = None) -> tuple[list, dict | None]:
    """The candidates of settings ``s``, trained on the rows ``x`` against the generated pool
    ``x_pool``, in this order: the smoothed ratios (only when ``calibrate`` is off), then
    (``calibrate``) the game's kept epoch ``game = (source, h)`` (when a game was played) and
    every ratio calibrated on the same cells, then the transport weights (a fresh ``new_latent_net()``, regressed on ``pairs``
    when given, else on plans solved here). Returns ``[(source, module)]`` and the transport fit's
    statistics (``None`` without transport)."""
    ratios = [(f"smoothed ratio s={sc:g}", SmoothedRatio(generator.data_dim).to(x.device).fit(
        x, x_pool, sc, epochs=int(s.smoothed_epochs), progress=progress)) for sc in s.smoothed_ratio]
    # with cells, a ratio competes calibrated only: uncalibrated it errs in the mass of whole
    # modes, and it scored worst or near it on every Table 1 check (docs/decisions/latent_importance.md)
    candidates = [] if s.calibrate else list(ratios)
    if s.calibrate:
        # at least ~500 training points per cell, so its data share is known to a few %
        cells = KMeansCells(max(2, min(int(s.calibrate), len(x) // 500)), x)
        candidates += [(src + f", calibrated on {len(cells.centres)} cells", CellCalibrated(c, cells, m).fit(x, x_pool))
                       for src, c in ([game] if s.epochs else []) + ratios]  # no game: nothing of it to calibrate
    stats = None
    if s.transport:
        net = new_latent_net()
        if pairs is None:
            stats = fit_transport(net, generator, x, m, passes=int(s.transport), chunk=int(s.transport_chunk),
                                  epochs=int(s.transport_epochs), progress=progress)
        else:
            stats = fit_on_pairs(net, *pairs, epochs=int(s.transport_epochs), passes=int(s.transport),
                                 chunk=int(s.transport_chunk))
        candidates.append((TRANSPORT_KIND, net))
    return candidates, stats
