"""Tabulated bounds of a latent log-weight, the *squeeze* of rejection sampling.

Rejection keeps a proposal ``z`` when ``log U < log w(z) - log M``. Where ``lo <= log w <= hi`` is
known for the cell of a grid that holds ``z``, ``log U < lo - log M`` accepts and
``log U >= hi - log M`` rejects without evaluating ``w``; only the proposals between the two
need the weight network (Marsaglia's squeeze). The decisions, and so the samples, are those
of evaluating ``w`` everywhere. A grid pays off in few latent dimensions, where small cells
are affordable: :data:`GRID_CELLS` cells in all, at most :data:`MAX_DIM` dimensions.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

#: the grid's cells in all (its memory: two float32 tables of this many entries): the share of
#: decisions left open falls with the cells' width, the time to build grows with their number
#: (measured in docs/squeeze.md)
GRID_CELLS = 1 << 14
#: cells of a latent weight's table: w_φ varies more steeply than a refiner's students
WEIGHT_GRID_CELLS = 1 << 16
#: most latent dimensions a grid is built for (cells per axis: GRID_CELLS ** (1 / d))
MAX_DIM = 2
#: the grid spans the prior's mean ± this many standard deviations per axis; proposals outside
#: it are evaluated
SPAN_SIGMAS = 5.0
#: the fewest rows a batch needs for its decisions to go through a table: below it every value
#: is evaluated
SQUEEZE_MIN_ROWS = 50_000
#: the fewest samples a latent rejection call must be asked for to build a weight's table (a
#: call this large saves about the table's cost); a table already built is always used
SQUEEZE_BUILD_SAMPLES = 1_000_000
#: how much wider than its cell (a fraction of its width) each bounded box is
CELL_PAD = 1e-3
#: relative margin on a network's tabulated bounds: its float32 pass rounds each of its few
#: hundred sums by about 1e-7 of their magnitude, far inside this
ROUNDING_MARGIN = 1e-5
#: cells bounded per call while the table is built
BUILD_CHUNK = 2048


class GridEnvelope:
    """``lo(z) <= log w(z) <= hi(z)`` by table lookup on a regular grid of the latent box.

    Args:
        bounds: ``(center (k, d), half (d,)) -> (lo (k,), hi (k,))``, guaranteed bounds of
            ``log w`` over each box, wide enough to hold ``log w`` as the weight's own pass
            rounds it (for example from :func:`genrefine.nn.mlp_bounds` plus a margin).
        low, high: the grid's corners, shape ``(d,)``.
        cells: cells in all (``cells ** (1 / d)`` per axis, rounded down).

    Outside the grid the bounds are ``(-inf, +inf)``: such proposals are always evaluated.

    Example:
        >>> env = GridEnvelope(bounds, low=-5 * torch.ones(2), high=5 * torch.ones(2))
        >>> lo, hi = env(z)
    """

    def __init__(self, bounds: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]], low: Tensor, high: Tensor,
                 cells: int = GRID_CELLS) -> None:
        low, high = low.double(), high.double()
        d = len(low)
        k = self.per_axis = max(1, int(math.floor(cells ** (1.0 / d) + 1e-9)))
        width = (high - low) / k
        axes = [torch.arange(k, device=low.device, dtype=torch.float64) for _ in range(d)]
        center = low + (torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d) + 0.5) * width
        # each box a little wider than its cell: a point the float32 lookup rounds into a
        # neighbouring cell still lies in that cell's box
        parts = [bounds(c, width / 2 * (1 + CELL_PAD)) for c in center.split(BUILD_CHUNK)]  # cache-sized pieces
        inner = [torch.cat(p).float().reshape((k,) * d) for p in zip(*parts)]
        # a border of cells that know nothing, (-inf, +inf), takes every point outside the grid
        self.lo, self.hi = (torch.nn.functional.pad(t, (1, 1) * d, value=v).reshape(-1)
                            .nan_to_num(nan=v, posinf=math.inf, neginf=-math.inf)
                            for t, v in zip(inner, (-math.inf, math.inf)))
        self.scale = (1 / width).float()
        self.shift = (1 - low / width).float()  # cell i of the grid is row i + 1 of the table
        self.strides = [(k + 2) ** (d - 1 - i) for i in range(d)]

    def __call__(self, z: Tensor) -> tuple[Tensor, Tensor]:
        # truncation is the floor on the clamped (non-negative) positions
        pos = torch.addcmul(self.shift, z, self.scale).clamp_(0, self.per_axis + 1.5).to(torch.int32)
        cell = pos[:, -1]
        for i, stride in enumerate(self.strides[:-1]):
            cell = cell + pos[:, i] * stride
        return self.lo.index_select(0, cell), self.hi.index_select(0, cell)


def prior_box(prior: Distribution, sigmas: float = SPAN_SIGMAS) -> tuple[Tensor, Tensor] | None:
    """``mean ± sigmas x stddev`` of ``prior`` per axis, or None where the distribution does not
    say (then no grid is built)."""
    try:
        mean, std = prior.mean, prior.stddev
    except NotImplementedError:
        return None
    if mean.ndim != 1 or not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
        return None
    return mean - sigmas * std, mean + sigmas * std


def squeeze_decisions(log_u: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """``(accept, undecided)``: the proposals the bounds accept outright (``log U < lo``) and
    those they cannot decide (``lo <= log U < hi``), for bounds ``lo <= log a <= hi`` of the
    acceptance ``a``."""
    accept = log_u < lo
    return accept, (log_u < hi) ^ accept  # accept implies log U < hi, as lo <= hi


class TabulatedBounds:
    """A :class:`GridEnvelope` of ``bounds`` over the box ``[low, high]``, built on the first
    call and built again whenever a parameter or buffer of ``owner`` has changed (moved, or
    modified in place) since. It is the ``envelope`` of the owner's acceptance or weight."""

    def __init__(self, owner: nn.Module, bounds: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]], low: Tensor,
                 high: Tensor, cells: int = GRID_CELLS) -> None:
        self.owner, self.bounds, self.low, self.high, self.cells = owner, bounds, low, high, int(cells)
        self.key: tuple | None = None
        self.grid: GridEnvelope | None = None

    def _owner_key(self) -> tuple:
        return tuple((t.data_ptr(), t._version) for t in (*self.owner.parameters(), *self.owner.buffers()))

    @property
    def ready(self) -> bool:
        """Whether the table is built for the owner as it is now (a call costs only the lookup)."""
        return self.grid is not None and self.key == self._owner_key()

    def __call__(self, z: Tensor) -> tuple[Tensor, Tensor]:
        if not self.ready:
            self.grid = GridEnvelope(self.bounds, self.low.to(z.device), self.high.to(z.device), self.cells)
            self.key = self._owner_key()
        return self.grid(z)


def squeezed_keep(log_u: Tensor, x: Tensor, log_a: Callable[[Tensor], Tensor],
                  envelope: Callable[[Tensor], tuple[Tensor, Tensor]], chunk: int) -> Tensor:
    """Which rows of ``x`` rejection keeps, ``log U < log a(x)``, evaluating ``log_a`` (in
    chunks of ``chunk`` rows) only where ``envelope`` leaves the decision open."""
    keep, open_ = squeeze_decisions(log_u, *envelope(x))

    def evaluate(rows: Tensor) -> Tensor:
        xs = x.index_select(0, rows)
        return torch.cat([log_a(c) for c in xs.split(chunk)]) if len(xs) else log_u.new_zeros(0)
    return settle_open(keep, open_, log_u, evaluate)


def settle_open(keep: Tensor, open_: Tensor, log_u: Tensor, evaluate: Callable[[Tensor], Tensor]) -> Tensor:
    """``keep`` with its open rows decided: ``evaluate(rows)`` gives ``log a`` at the row indices
    ``rows`` of ``open_``, and each is kept where ``log U < log a``."""
    rows = open_.nonzero().squeeze(1)
    return keep.index_put_((rows,), log_u.index_select(0, rows) < evaluate(rows))


def student_bounds(net: nn.Sequential, bound: Tensor) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Bounds over boxes of a rejection step's ``log a = min(0, s - b)``, ``s`` the student MLP
    ``net`` with one output and ``b`` the bound: :func:`genrefine.nn.mlp_bounds` of ``s``, widened
    by :data:`ROUNDING_MARGIN` for the student's float32 pass, through the monotone ``min(0, · - b)``."""
    from genrefine.nn import mlp_bounds

    def bounds(center: Tensor, half: Tensor) -> tuple[Tensor, Tensor]:
        lo, hi = (b.squeeze(-1) for b in mlp_bounds(net, center, half))
        margin = ROUNDING_MARGIN * (1 + torch.maximum(lo.abs(), hi.abs()))
        b = float(bound)
        return (lo - margin - b).clamp(max=0.0), (hi + margin - b).clamp(max=0.0)
    return bounds
