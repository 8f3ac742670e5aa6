"""Rejection sampling of the reweighted latent ``q(z) ∝ p(z) w(z)`` from its prior.

Propose ``z ~ p`` and accept with probability ``w(z) / M``; accepted points are exact draws
from q whenever ``w(z) <= M`` everywhere, and the acceptance rate is ``E_p[w] / M``.
When no bound is known, ``M`` is estimated as ``safety x`` the largest weight of a pilot
sample; proposals whose weight exceeds it are accepted with probability 1, which biases
the sample towards them, so they are counted and reported with a warning.
"""

from __future__ import annotations

import math
import numbers
import time
import warnings

import torch
from torch import Tensor
from torch.distributions import Distribution

from genrefine.samplers.base import LatentSampler, LatentTarget, weight_diagnostics
from genrefine.validation import check_positive


def finite_log_weight(target: LatentTarget, z: Tensor) -> Tensor:
    """``log w(z) = log q(z) - log p(z)`` from ``target.log_prob``, without gradients.

    NaN and ``+inf`` become ``-inf`` (w = 0: such points are never accepted or resampled).
    """
    return _log_weight_and_non_finite(target, z)[0]


class LatentRejectionSampler(LatentSampler):
    """Exact sampling of q by rejection from the prior (Eq. (3) of the LaSeR paper).

    Args:
        target: the latent target; only ``target.log_prob`` is evaluated.
        bound: an upper bound M of w(z); ``None`` uses ``target.bound``, and if that is None
            too, estimates M as ``safety x max w`` over a pilot sample.
        batch_size: most proposals drawn (and weights evaluated) at once.
        pilot_size: prior points of the pilot sample. They are also the first proposals
            (M then depends on them, an O(1/pilot_size) effect, cheaper than a second
            pass of the weight model). With a known bound, sampling stops with an error
            once this many proposals all had w = 0.
        safety: factor (>= 1) on the pilot's largest weight.
        max_rounds: most proposal batches after the pilot before giving up.

    ``diagnostics`` after :meth:`sample`: ``bound``, ``log_bound``, ``bound_estimated``,
    ``acceptance_rate``, ``exceed_fraction`` (proposals with ``w > M``), ``n_exceeding``,
    ``non_finite`` (NaN / inf weights, treated as w = 0), ``proposals``, ``rounds``,
    ``weights`` (:func:`weight_diagnostics` of the first batch) and ``seconds``.

    Example:
        >>> sampler = LatentRejectionSampler(target)
        >>> z = sampler.sample(100_000)
        >>> sampler.diagnostics["acceptance_rate"], sampler.diagnostics["exceed_fraction"]
    """

    name = "rejection"

    def __init__(
        self,
        target: LatentTarget,
        bound: float | None = None,
        batch_size: int = 100_000,
        pilot_size: int = 100_000,
        safety: float = 1.1,
        max_rounds: int = 1000,
    ) -> None:
        super().__init__(target)
        if bound is not None:
            check_positive(bound, "bound")
        if target.bound is not None:
            check_positive(target.bound, "target.bound")
        _check_int(batch_size, "batch_size")
        _check_int(pilot_size, "pilot_size")
        _check_int(max_rounds, "max_rounds")
        check_positive(safety, "safety")
        if safety < 1:
            raise ValueError(f"safety must be >= 1 (it multiplies the largest pilot weight), got {safety}")
        self.bound = bound
        self.batch_size = int(batch_size)
        self.pilot_size = int(pilot_size)
        self.safety = float(safety)
        self.max_rounds = int(max_rounds)

    def sample(self, n: int) -> Tensor:
        """``n`` exact (up to the bound) draws from q, shape ``(n, d)`` on ``target.device``."""
        _check_int(n, "n")
        start = time.perf_counter()
        prior = self.target.prior
        bound = self.bound if self.bound is not None else self.target.bound
        estimated = bound is None

        # The first batch is the pilot (bound unknown) or a batch sized for n (bound known).
        z = prior.sample((self.pilot_size if estimated else min(self.batch_size, max(2 * n, 4096)),))
        log_w, bad = _log_weight_and_non_finite(self.target, z)
        first_batch = weight_diagnostics(log_w.double().exp())
        if estimated:
            self._check_some_positive(log_w, len(z))
            log_bound = float(log_w.max()) + math.log(self.safety)
        else:
            log_bound = math.log(bound)

        accepted: list[Tensor] = []
        n_accepted = proposals = n_exceeding = non_finite = rounds = 0
        some_positive = False
        while True:
            non_finite += bad
            # log U < log w - log M  <=>  U < w / M; w = 0 (log w = -inf) never passes.
            ratio = log_w - log_bound
            keep = torch.log(torch.rand_like(ratio)) < ratio
            n_exceeding += int((ratio > 0).sum())
            proposals += len(z)
            accepted.append(z[keep])
            n_accepted += int(keep.sum())
            if n_accepted >= n:
                break
            if not some_positive:  # give up once a pilot's worth of proposals all had w = 0
                some_positive = bool(torch.isfinite(log_w).any())
                if not some_positive and proposals >= self.pilot_size:
                    self._check_some_positive(log_w, proposals)
            if rounds == self.max_rounds:
                raise ValueError(
                    f"rejection: only {n_accepted} of {n} samples accepted after {proposals} proposals "
                    f"(max_rounds={self.max_rounds}, acceptance rate {n_accepted / proposals:.3g}); "
                    "raise max_rounds or batch_size, or pass a tighter bound"
                )
            rounds += 1
            rate = n_accepted / proposals
            # size the next batch for what is still missing (+20 %), within batch_size
            want = self.batch_size if rate == 0 else math.ceil(1.2 * (n - n_accepted) / rate) + 64
            z = prior.sample((min(self.batch_size, want),))
            log_w, bad = _log_weight_and_non_finite(self.target, z)

        exceed_fraction = n_exceeding / proposals
        self.diagnostics = {
            "sampler": self.name,
            "n": int(n),
            "bound": math.exp(log_bound) if log_bound < 700 else math.inf,
            "log_bound": log_bound,
            "bound_estimated": estimated,
            "acceptance_rate": n_accepted / proposals,
            "exceed_fraction": exceed_fraction,
            "n_exceeding": n_exceeding,
            "non_finite": non_finite,
            "proposals": proposals,
            "rounds": rounds,
            "weights": first_batch,
            "seconds": time.perf_counter() - start,
        }
        if n_exceeding:
            warnings.warn(
                f"rejection: {n_exceeding} of {proposals} proposals ({exceed_fraction:.2e}) had w(z) above the "
                f"bound M = {self.diagnostics['bound']:.4g}; they were accepted with probability 1, which biases "
                "the samples towards them (pass a larger bound or safety)",
                stacklevel=2,
            )
        return torch.cat(accepted)[:n]

    @staticmethod
    def _check_some_positive(log_w: Tensor, n_seen: int) -> None:
        if not torch.isfinite(log_w).any():
            raise ValueError(
                f"rejection: all {n_seen} weights drawn are zero or non-finite; "
                "check target.log_weight (is the weight model trained and on the right device?)"
            )


# --- rejection steps that thin another sampler's output (the refiners' latent step, the refined
# generator's data-space step): the thinned distribution, the vectorised accept loop, the bound.

#: candidates per round of a refined generator's accept loop (its small networks run inside in
#: chunks of SMALL_NET_CHUNK, the base generator in its own ``chunk_size``)
CANDIDATE_BATCH = 65_536
#: rows per chunk for the rejection steps' small MLPs on CPU: a 4 x 48 MLP ran 200k rows in
#: 0.016 s in chunks of 4096 against 0.024 s in chunks of 32k (2 cores; docs/laser.md)
SMALL_NET_CHUNK = 4096
#: Adam steps (batch 2000) for distilling a rejection step's student: the latent steps' 4 x 48
#: MLPs and the data step's 3 x 32 MLP. At 3000 steps the data student reached a correlation of
#: only 0.78-0.93 with its classifier and lost up to 46 points of LaSeR's share of DCTR's JSD cut
#: (docs/laser.md, "Distilling the students to convergence")
LATENT_STUDENT_STEPS = 10_000
DATA_STUDENT_STEPS = 20_000


class RejectionPrior(Distribution):
    """``proposal`` thinned by an acceptance probability: density ``proposal(y) a(y) / Z``.

    Args:
        proposal: the distribution proposals are drawn from (event shape ``(d,)``).
        log_accept: ``y -> log a(y)`` with ``a <= 1``; differentiable where the caller needs it.
        log_z: ``log Z = log E_proposal[a]``, the acceptance rate (estimated when fitted).
    """

    arg_constraints: dict = {}

    def __init__(self, proposal: Distribution, log_accept, log_z: float) -> None:
        self.proposal, self.log_accept, self.log_z = proposal, log_accept, float(log_z)
        super().__init__(batch_shape=proposal.batch_shape, event_shape=proposal.event_shape, validate_args=False)

    @torch.no_grad()
    def sample(self, sample_shape=torch.Size()) -> Tensor:
        """Accepted proposals, drawn in vectorised batches (:func:`accept_loop`)."""
        shape = torch.Size(sample_shape)
        (y,) = accept_loop(proposals(self.proposal, lambda v: (self.log_accept(v),)), shape.numel(),
                           math.exp(self.log_z))
        return y.reshape(*shape, *self.event_shape)

    def log_prob(self, y: Tensor) -> Tensor:
        return self.proposal.log_prob(y) + self.log_accept(y) - self.log_z

    def log_ratio(self, y: Tensor) -> Tensor:
        """``log`` of this density over the proposal's: ``log a(y) - log Z`` (an importance weight)."""
        return self.log_accept(y) - self.log_z


@torch.no_grad()
def accept_loop(draw, n: int, rate: float, batch_size: int = 32_768, max_rounds: int = 1000) -> tuple[Tensor, ...]:
    """Draw candidates in batches and keep each with probability ``exp(log_a)`` until ``n`` are kept.

    ``draw(m) -> (log_a, *tensors)`` makes at most ``m`` candidates (fewer when it thins them
    itself first, as a chain of rejection steps does); the kept rows of every tensor are
    returned. ``rate`` (the expected acceptance of the ``m`` drawn) sizes the batches of at most
    ``batch_size`` candidates; ``draw`` chunks its own networks (the refiners use
    :data:`CANDIDATE_BATCH` and :data:`SMALL_NET_CHUNK`).
    """
    n = int(n)
    kept: list[tuple[Tensor, ...]] = []
    have, rounds = 0, 0
    rate = min(max(rate, 1e-3), 1.0)
    while have < n:
        if rounds >= max_rounds:
            raise RuntimeError(f"rejection stopped after {rounds} batches with {have} of {n} points accepted")
        m = min(batch_size, max(1024, int((n - have) / rate * 1.05) + 64))
        log_a, *tensors = draw(m)
        keep = torch.rand(len(log_a), device=log_a.device).log() < log_a
        kept.append(tuple(t[keep] for t in tensors))
        have += int(keep.sum())
        rounds += 1
    return tuple(torch.cat(parts)[:n] for parts in zip(*kept))


def proposals(proposal: Distribution, score):
    """A ``draw`` for :func:`accept_loop`: ``m`` draws ``y`` of ``proposal`` and ``score(y) ->
    (log_a, *extra)``, returning ``(log_a, y, *extra)``."""
    def draw(m: int):
        y = proposal.sample((m,))
        log_a, *extra = score(y)
        return (log_a, y, *extra)
    return draw


def check_bound_args(quantile: float, min_acceptance: float, what: str) -> None:
    """One clear error for a rejection step's bound settings (``what`` names the step); called
    before a step is fitted, so a bad setting never leaves a half-fitted step behind."""
    if not 0.0 < float(quantile) <= 1.0:
        raise ValueError(f"{what}: the bound's quantile must be in (0, 1], got {quantile}")
    if not 0.0 <= float(min_acceptance) < 1.0:
        raise ValueError(f"{what}: min_acceptance must be in [0, 1), got {min_acceptance}")


@torch.no_grad()
def quantile_bound(scores: Tensor, quantile: float, what: str, min_acceptance: float = 0.0) -> tuple[Tensor, Tensor]:
    """The bound ``b`` of a rejection step at the ``quantile`` of its ``scores`` (their maximum
    at 1) and the mean acceptance ``E min(1, exp(s - b))`` there; one clear error if either is
    unusable (``what`` names the step). Where that acceptance is below ``min_acceptance`` the
    bound is lowered (bisection) until the acceptance reaches it: a cap on the step's cost,
    paid for by truncating the largest scores."""
    check_bound_args(quantile, min_acceptance, what)
    bound = torch.quantile(scores[:1_000_000].float(), float(quantile)) if quantile < 1 else scores.max()
    acc = torch.exp((scores - bound).clamp(max=0.0)).mean()
    if not (torch.isfinite(bound) and acc > 0):
        raise ValueError(f"{what}: distillation failed (bound {bound.item()}, acceptance {acc.item()})")
    if acc < min_acceptance:
        lo, hi = scores.min(), bound  # acceptance is 1 at lo and falls as the bound rises
        for _ in range(50):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if torch.exp((scores - mid).clamp(max=0.0)).mean() >= min_acceptance else (lo, mid)
        bound = lo
        acc = torch.exp((scores - bound).clamp(max=0.0)).mean()
    return bound, acc


def _log_weight_and_non_finite(target: LatentTarget, z: Tensor) -> tuple[Tensor, int]:
    """``log w(z)`` with NaN / +inf replaced by -inf, and how many were replaced."""
    raw = _raw_log_weight(target, z)
    n_bad = int((torch.isnan(raw) | (raw == math.inf)).sum())
    return torch.where(torch.isfinite(raw), raw, torch.full_like(raw, -math.inf)), n_bad


def _raw_log_weight(target: LatentTarget, z: Tensor) -> Tensor:
    """``log w(z) = log q(z) - log p(z)``, straight from ``target.log_weight`` (no prior terms to
    add and subtract: for latent rejection the weight network is the whole cost)."""
    with torch.no_grad():
        return target.log_weight(z)


def _check_int(value, name: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
