"""Rejection sampling: the one accept loop, latent rejection from the prior, and the pieces of
the rejection steps that thin another sampler's output.

Latent rejection (Eq. (3) of the LaSeR paper): propose ``z ~ p`` and accept with probability
``w(z) / M``; accepted points are exact draws from ``q(z) ∝ p(z) w(z)`` whenever
``w(z) <= M`` everywhere, and the acceptance rate is ``E_p[w] / M``. When no bound is known,
``M`` is estimated as ``safety x`` the largest weight of a pilot sample; proposals whose weight
exceeds it are accepted with probability 1, which biases the sample towards them, so they are
counted and reported with a warning.

Every rejection-style step (latent rejection, DRS, the refiners' latent step, the data-space
step) runs :func:`accept_loop`: after its first batch it knows the acceptance rate, so on
degenerate weights it warns at once with the numbers, and it refuses work beyond its budget
instead of grinding.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Callable, NamedTuple

import torch
from torch import Tensor
from torch.distributions import Distribution
from tqdm.auto import tqdm

from genrefine import distributed
from genrefine.samplers.base import LatentSampler, LatentTarget, check_count, weight_diagnostics
from genrefine.samplers.diagnostics import LOW_ACCEPTANCE, warn_non_finite
from genrefine.samplers.squeeze import SQUEEZE_BUILD_SAMPLES, SQUEEZE_MIN_ROWS, settle_open, squeeze_decisions
from genrefine.timing import timed
from genrefine.validation import check_positive

#: most proposals a rejection step may draw for one call: beyond this a call would run for
#: hours at any realistic weight cost, so it is refused up front (a lower bound or another
#: method is the fix, not patience).
MAX_PROPOSALS = 1_000_000_000
#: seconds before a rejection loop shows its progress bar (short runs stay quiet)
PROGRESS_DELAY = 2.0
#: what to do about a low acceptance rate, said by every warning and refusal
LOW_ACCEPTANCE_ADVICE = ("lower the bound (a quantile of the weights instead of their maximum), temper the weights "
                         "(w**t with t < 1), or use another method (SIR, HMC, a refiner)")


# --- the accept loop -----------------------------------------------------------------------------


class AcceptInfo(NamedTuple):
    """What one :func:`accept_loop` call did: ``kept`` candidates accepted (may exceed ``n``),
    ``drawn`` candidates asked of ``draw``, ``rounds`` batches, ``seconds`` spent drawing and thinning,
    ``probe_rate`` the acceptance of the first batch, ``warned`` whether the low-acceptance
    warning was given."""

    kept: int
    drawn: int
    rounds: int
    seconds: float
    probe_rate: float
    warned: bool

    @property
    def acceptance(self) -> float:
        return self.kept / self.drawn if self.drawn else math.nan


@torch.no_grad()
def accept_loop(draw, n: int, rate: float = 1.0, batch_size: int = 32_768, max_rounds: int = 1000,
                **kwargs) -> tuple[Tensor, ...]:
    """The kept rows of :func:`accept_loop_with_info` (same arguments)."""
    return accept_loop_with_info(draw, n, rate, batch_size, max_rounds, **kwargs)[0]


@torch.no_grad()
def accept_loop_with_info(draw, n: int, rate: float = 1.0, batch_size: int = 32_768, max_rounds: int = 1000,
                          sizes: Callable[[int, int, int], int] | None = None, max_proposals: float = MAX_PROPOSALS,
                          who: str = "rejection", progress: bool = False) -> tuple[tuple[Tensor, ...], AcceptInfo]:
    """Draw candidates in batches and keep each with probability ``exp(log_a)`` until ``n`` are kept.

    ``draw(m) -> (log_a, *tensors)`` makes at most ``m`` candidates (fewer when it thins them
    itself first, as a chain of rejection steps does); the first ``n`` kept rows of every tensor
    are returned with an :class:`AcceptInfo`. ``sizes(missing, kept, drawn) -> m`` sets each
    batch; by default batches are sized for an expected acceptance ``rate`` of the ``m`` drawn,
    at most ``batch_size`` (the refiners use :data:`CANDIDATE_BATCH`; ``draw`` chunks its own
    networks).

    After every batch the acceptance so far bounds the work still to do: one warning (the
    acceptance, the proposals and time ``n`` needs, what to do) when it is below
    :data:`~genrefine.samplers.diagnostics.LOW_ACCEPTANCE`, and a ValueError, before the work,
    when even an optimistic rate (a 95 % upper bound) needs more than ``max_proposals``
    candidates or ``max_rounds`` batches. ``who`` names the step in those messages;
    ``progress`` shows a bar when the loop runs longer than :data:`PROGRESS_DELAY` seconds.
    """
    n = int(n)
    sizes = sizes or fixed_rate_batches(rate, batch_size)
    kept: list[tuple[Tensor, ...]] = []
    have = drawn = rounds = 0
    seconds, probe, warned = 0.0, math.nan, False
    bar = tqdm(total=n, desc=who, unit="sample", disable=not progress, delay=PROGRESS_DELAY, leave=False)
    try:
        while have < n:
            if rounds >= max_rounds:
                raise ValueError(f"{who}: only {have} of {n} samples accepted after {drawn} proposals in {rounds} "
                                 f"batches (max_rounds={max_rounds}); raise max_rounds or batch_size, or "
                                 f"{LOW_ACCEPTANCE_ADVICE}")
            m = sizes(n - have, have, drawn)
            part, secs = timed(lambda: thin(*draw(m)))
            kept.append(part)
            got = len(part[0])
            bar.update(min(got, n - have))
            have, drawn, rounds, seconds = have + got, drawn + m, rounds + 1, seconds + secs
            probe = have / drawn if rounds == 1 else probe
            if have < n:
                budget = (max_proposals, max_rounds, batch_size)
                warned = _check_work(n, have, drawn, rounds, seconds, budget, who, warned)
    finally:
        bar.close()
    info = AcceptInfo(have, drawn, rounds, seconds, probe, warned)
    return tuple(torch.cat(parts)[:n] for parts in zip(*kept)), info


def fixed_rate_batches(rate: float, batch_size: int) -> Callable[[int, int, int], int]:
    """Batches sized for a known acceptance ``rate`` (clipped to [1e-3, 1]): the missing count
    over the rate, +5 %, at least 1024 and at most ``batch_size``."""
    rate = min(max(rate, 1e-3), 1.0)

    def sizes(missing: int, kept: int, drawn: int) -> int:
        return min(batch_size, max(1024, int(missing / rate * 1.05) + 64))
    return sizes


def _check_work(n: int, have: int, drawn: int, rounds: int, seconds: float, budget: tuple, who: str,
                warned: bool) -> bool:
    """Refuse (ValueError) work beyond ``budget = (max_proposals, max_rounds, batch_size)``; warn
    once on a low acceptance. Returns whether the warning has been given."""
    max_proposals, max_rounds, batch_size = budget
    rate = have / drawn
    # ~95 % upper bound of a rate seen as `have` of `drawn` (Poisson, 3 when none was kept)
    upper = min(1.0, (have + 2 * math.sqrt(have) + 3) / drawn)
    fewest = (n - have) / upper  # further proposals needed even at the optimistic rate
    if drawn + fewest > max_proposals:
        raise ValueError(f"{_work_line(n, have, drawn, seconds, upper, who)}; that is more than "
                         f"max_proposals={max_proposals:.3g}: {LOW_ACCEPTANCE_ADVICE} (or raise max_proposals)")
    if rounds + math.ceil(fewest / batch_size) > max_rounds:
        raise ValueError(f"{_work_line(n, have, drawn, seconds, upper, who)}; that is more than "
                         f"max_rounds={max_rounds} batches of at most {batch_size}: raise max_rounds or batch_size, "
                         f"or {LOW_ACCEPTANCE_ADVICE}")
    low = upper < LOW_ACCEPTANCE or (have >= 10 and rate < LOW_ACCEPTANCE)
    if low and not warned:
        warnings.warn(f"{_work_line(n, have, drawn, seconds, upper, who)}; {LOW_ACCEPTANCE_ADVICE}", stacklevel=4)
    return warned or low


def _work_line(n: int, have: int, drawn: int, seconds: float, upper: float, who: str) -> str:
    """``who: acceptance ... (k of m proposals kept): n samples need about N proposals, about T``."""
    rate, about = (have / drawn, "about") if have else (upper, "at least")
    total = n / rate
    per_second = drawn / seconds if seconds > 0 else math.inf
    shown = f"{rate:.2g}" if have else f"below {upper:.2g}"
    return (f"{who}: acceptance {shown} ({have} of {drawn} proposals kept): {n} samples need {about} "
            f"{total:.3g} proposals, {about} {_duration(total / per_second)} at {per_second:.3g} proposals/s")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.2g} s"
    return f"{seconds / 60:.3g} min" if seconds < 5400 else f"{seconds / 3600:.3g} h"


def thin(log_a: Tensor, *tensors: Tensor) -> tuple[Tensor, ...]:
    """One round of the accept rule without the loop: the rows of ``tensors`` kept with
    probability ``exp(log_a)`` (the same draws :func:`accept_loop` makes). A boolean ``log_a``
    is a decision already taken (a ``draw`` that drew its own uniforms): its rows are kept."""
    keep = log_a if log_a.dtype == torch.bool else torch.rand_like(log_a).log() < log_a
    rows = keep.nonzero().squeeze(1)  # one index for every tensor (a boolean mask finds it per tensor)
    return tuple(t.index_select(0, rows) for t in tensors)


# --- latent rejection from the prior ----------------------------------------------------------


class LatentRejectionSampler(LatentSampler):
    """Exact sampling of q by rejection from the prior (Eq. (3) of the LaSeR paper).

    Args:
        target: the latent target; only ``target.log_weight`` is evaluated.
        bound: an upper bound M of w(z); ``None`` uses ``target.bound``, and if that is None
            too, estimates M as ``safety x max w`` over a pilot sample.
        batch_size: most proposals drawn (and weights evaluated) at once.
        pilot_size: prior points of the pilot sample. They are also the first proposals
            (M then depends on them, an O(1/pilot_size) effect, cheaper than a second
            pass of the weight model). With a known bound, sampling stops with an error
            once this many proposals all had w = 0.
        safety: factor (>= 1) on the pilot's largest weight.
        max_rounds: most proposal batches after the first before giving up.
        max_proposals: most proposals for one call; a call the first batches show would need
            more is refused at once (ValueError), and one whose acceptance is below
            :data:`~genrefine.samplers.diagnostics.LOW_ACCEPTANCE` warns at once.
        progress: a progress bar for runs longer than a couple of seconds.

    ``diagnostics`` after :meth:`sample` (or with :meth:`run`): ``bound``, ``log_bound``,
    ``bound_estimated``, ``acceptance_rate``, ``acceptance_probe`` (of the first batch),
    ``low_acceptance`` (whether it warned), ``exceed_fraction`` (proposals with ``w > M``),
    ``n_exceeding``, ``non_finite`` (NaN / inf weights, treated as w = 0, with a warning),
    ``proposals``, ``weights_evaluated`` (proposals whose weight was computed: all of them
    unless ``target.envelope`` decided some), ``rounds``, ``weights`` (:func:`weight_diagnostics`
    of the first batch) and
    ``seconds``.

    Example:
        >>> sampler = LatentRejectionSampler(target)
        >>> z, diagnostics = sampler.run(100_000)
        >>> diagnostics["acceptance_rate"], diagnostics["exceed_fraction"]
    """

    name = "rejection"

    def __init__(self, target: LatentTarget, bound: float | None = None, batch_size: int = 100_000,
                 pilot_size: int = 100_000, safety: float = 1.1, max_rounds: int = 1000,
                 max_proposals: float = MAX_PROPOSALS, progress: bool = True) -> None:
        super().__init__(target)
        if bound is not None:
            check_positive(bound, "bound")
        if target.bound is not None:
            check_positive(target.bound, "target.bound")
        check_count(batch_size, "batch_size")
        check_count(pilot_size, "pilot_size")
        check_count(max_rounds, "max_rounds")
        check_positive(max_proposals, "max_proposals")
        check_positive(safety, "safety")
        if safety < 1:
            raise ValueError(f"safety must be >= 1 (it multiplies the largest pilot weight), got {safety}")
        self.bound = bound
        self.batch_size = int(batch_size)
        self.pilot_size = int(pilot_size)
        self.safety = float(safety)
        self.max_rounds = int(max_rounds)
        self.max_proposals = float(max_proposals)
        self.progress = bool(progress)

    def _draw(self, n: int) -> tuple[Tensor, dict]:
        bound = self.bound if self.bound is not None else self.target.bound
        # The first batch is the pilot (bound unknown) or a batch sized for n (bound known).
        first = self.pilot_size if bound is None else min(self.batch_size, max(2 * n, 4096))
        score = _BoundedWeights(self.target, bound, self.safety, self.pilot_size)
        envelope = self.target.envelope
        squeeze = envelope is not None and (n >= SQUEEZE_BUILD_SAMPLES or getattr(envelope, "ready", True))
        draw = squeezed_proposals(self.target.prior, score) if squeeze else proposals(self.target.prior, score)
        (z,), info = accept_loop_with_info(
            draw, n, sizes=_running_rate_batches(first, self.batch_size),
            batch_size=self.batch_size, max_rounds=self.max_rounds + 1, max_proposals=self.max_proposals,
            who=self.name, progress=self.progress)
        warn_non_finite(score.non_finite, info.drawn, self.name, stacklevel=4)
        log_bound = score.log_bound
        diagnostics = {
            "bound": math.exp(log_bound) if log_bound < 700 else math.inf,
            "log_bound": log_bound,
            "bound_estimated": bound is None,
            "acceptance_rate": info.acceptance,
            "acceptance_probe": info.probe_rate,
            "low_acceptance": info.warned,
            "exceed_fraction": score.exceeding / info.drawn,
            "n_exceeding": score.exceeding,
            "non_finite": score.non_finite,
            "proposals": info.drawn,
            "weights_evaluated": score.evaluated,
            "rounds": info.rounds - 1,
            "weights": score.first,
        }
        if score.exceeding:
            warnings.warn(
                f"rejection: {score.exceeding} of {info.drawn} proposals ({score.exceeding / info.drawn:.2e}) had w(z) "
                f"above the bound M = {diagnostics['bound']:.4g}; they were accepted with probability 1, which biases "
                "the samples towards them (pass a larger bound or safety)",
                stacklevel=3,
            )
        return z, diagnostics


class _BoundedWeights:
    """The latent rejection step's ``score``: ``log w(z) - log M`` for :func:`proposals`, with
    M fixed or estimated from the first batch, and the tallies its diagnostics report
    (proposals above M, non-finite weights, the first batch's weight summary)."""

    def __init__(self, target: LatentTarget, bound: float | None, safety: float, pilot_size: int) -> None:
        self.target, self.safety, self.pilot_size = target, safety, pilot_size
        self.log_bound = None if bound is None else math.log(bound)
        self.first: dict | None = None
        self.proposals = self.exceeding = self.non_finite = self.evaluated = 0
        self.some_positive = False

    def __call__(self, z: Tensor) -> tuple[Tensor]:
        log_w, bad = _log_weight_and_non_finite(self.target, z)
        self.non_finite, self.evaluated = self.non_finite + bad, self.evaluated + len(z)
        if self.first is None:
            self.first = weight_diagnostics(log_w.double().exp())
            if self.log_bound is None:
                _check_some_positive(log_w, len(z))
                # under torchrun every rank rejects under the same bound: the largest pilot's
                self.log_bound = distributed.agree_max(float(log_w.max())) + math.log(self.safety)
        # log U < log w - log M  <=>  U < w / M; w = 0 (log w = -inf) never passes.
        return (self._tally(log_w - self.log_bound, len(z)),)

    def _tally(self, ratio: Tensor, drawn: int, top: float = -math.inf) -> Tensor:
        """Count ``drawn`` proposals and those of ``ratio`` (their ``log w - log M``) above the
        bound; ``top`` is a lower bound of the largest ``ratio`` of the proposals not in it."""
        self.proposals += drawn
        top = max(top, float(ratio.max()) if len(ratio) else -math.inf)
        # with a known bound, give up once a pilot's worth of proposals all had w = 0
        self.some_positive = self.some_positive or top > -math.inf
        if not self.some_positive and self.proposals >= self.pilot_size:
            _check_some_positive(ratio, self.proposals)
        if top > 0:
            self.exceeding += int((ratio > 0).sum())
        return ratio

    def decide(self, z: Tensor, log_u: Tensor) -> Tensor:
        """Which proposals rejection keeps (``log U < log w - log M``), evaluating ``w`` only
        where ``target.envelope`` leaves it open or ``w`` may pass the bound (counted). The
        first batch evaluates every weight (its summary, and the pilot's bound), and so does a
        small one (where building the envelope's table would cost more than it saves)."""
        if self.first is None or len(z) < SQUEEZE_MIN_ROWS:
            return log_u < self(z)[0]
        # the bounds less log M, as the full path subtracts it from log w: where a bound is the
        # clipped weight itself, both compare the same float32 number with log U
        lo, hi = (b - self.log_bound for b in self.target.envelope(z))
        keep, open_ = squeeze_decisions(log_u, lo, hi)
        top = -math.inf if self.some_positive else float(lo.max())

        def evaluate(rows: Tensor) -> Tensor:
            log_w, bad = _log_weight_and_non_finite(self.target, z.index_select(0, rows))
            self.non_finite, self.evaluated = self.non_finite + bad, self.evaluated + len(rows)
            return self._tally(log_w - self.log_bound, len(z), top)
        return settle_open(keep, open_ | (hi > 0), log_u, evaluate)


def _running_rate_batches(first: int, batch_size: int) -> Callable[[int, int, int], int]:
    """Latent rejection's batches: ``first``, then the missing count over the acceptance so far,
    +20 %, at most ``batch_size`` (the whole ``batch_size`` while nothing was accepted)."""

    def sizes(missing: int, kept: int, drawn: int) -> int:
        if not drawn:
            return first
        rate = kept / drawn
        return min(batch_size, batch_size if rate == 0 else math.ceil(1.2 * missing / rate) + 64)
    return sizes


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
#: rows per call of a rejection target's weight (a weight network, or a pull-back through the
#: generator): the proposal batch is larger, and its activations would leave the cache
#: (a 4 x 32 w_φ took 0.10 s per 1M rows in chunks of 8-16k, 0.125 s in chunks of 100k)
WEIGHT_CHUNK = 8192
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
                           math.exp(self.log_z), who="rejection prior")
        return y.reshape(*shape, *self.event_shape)

    def log_prob(self, y: Tensor) -> Tensor:
        return self.proposal.log_prob(y) + self.log_accept(y) - self.log_z

    def log_ratio(self, y: Tensor) -> Tensor:
        """``log`` of this density over the proposal's: ``log a(y) - log Z`` (an importance weight)."""
        return self.log_accept(y) - self.log_z


def proposals(proposal: Distribution, score):
    """A ``draw`` for :func:`accept_loop`: ``m`` draws ``y`` of ``proposal`` and ``score(y) ->
    (log_a, *extra)``, returning ``(log_a, y, *extra)``."""
    def draw(m: int):
        y = proposal.sample((m,))
        log_a, *extra = score(y)
        return (log_a, y, *extra)
    return draw


def squeezed_proposals(proposal: Distribution, score: _BoundedWeights):
    """:func:`proposals` for latent rejection with an envelope: ``m`` draws ``y`` and their
    uniforms (drawn as :func:`thin` would draw them, so the samples are those of
    :func:`proposals`), decided by :meth:`_BoundedWeights.decide`; returns ``(keep, y)``."""
    def draw(m: int):
        y = proposal.sample((m,))
        log_u = torch.rand(m, dtype=y.dtype, device=y.device).log()
        return score.decide(y, log_u), y
    return draw


def check_bound_args(quantile: float, min_acceptance: float, what: str) -> None:
    """One clear error for a rejection step's bound settings (``what`` names the step); called
    before a step is fitted, so a bad setting never leaves a half-fitted step behind."""
    if not 0.0 < float(quantile) <= 1.0:
        raise ValueError(f"{what}: the bound's quantile must be in (0, 1], got {quantile}")
    if not 0.0 <= float(min_acceptance) < 1.0:
        raise ValueError(f"{what}: min_acceptance must be in [0, 1), got {min_acceptance}")


#: prior draws of the probe that tightens a known rejection bound (:func:`probe_bound`)
PROBE_SIZE = 1 << 20


@torch.no_grad()
def probe_bound(target: LatentTarget, cap: float, n: int = PROBE_SIZE, safety: float = 1.1,
                batch_size: int = 65_536) -> float:
    """A rejection bound no looser than it must be: ``min(cap, safety x max w)`` over ``n`` prior
    draws. Rejection under ``cap`` accepts at rate ``E[min(w, cap)] / cap``; where ``w`` never
    comes near ``cap`` (a flat or mildly reweighted latent), the largest ``w`` seen, with a
    margin, bounds it as well and accepts proportionally more of the same draws. Under
    ``cap`` the accepted distribution is unchanged as long as ``w <= bound`` wherever ``w <
    cap``; the sampler counts proposals above the bound (``exceed_fraction``) and warns when
    there are any. The probe draws from its own copy of the random stream, so the run's stream
    is not moved, and under torchrun every rank takes the largest of the ranks' maxima."""
    check_positive(cap, "cap")
    top = distributed.agree_max(probe_weights(target, n, batch_size)[0])
    return float(min(cap, safety * math.exp(top))) if math.isfinite(top) else float(cap)


@torch.no_grad()
def probe_log_weights(target: LatentTarget, n: int, batch_size: int = 65_536) -> Tensor:
    """``log w`` (``-inf`` where w is zero or not finite) at ``n`` prior draws from a random
    stream of their own (seed 0; the run's stream is not moved)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return torch.cat([finite_log_weight(target, target.prior.sample((min(batch_size, int(n) - i),)))
                          for i in range(0, int(n), batch_size)])


def probe_weights(target: LatentTarget, n: int, batch_size: int = 65_536) -> tuple[float, float]:
    """``(max log w, mean w)`` over :func:`probe_log_weights`."""
    lw = probe_log_weights(target, n, batch_size)
    return float(lw.max()), float(lw.double().exp().sum()) / max(int(n), 1)


#: prior draws of the probe that checks whether a pulled-back weight's cap is a practical bound
PRACTICAL_PROBE = 1 << 16


#: the sharpened bound's margin in log space: its weights ``power * (min(log w, cap) - cap)`` are
#: at most 0 in any float arithmetic (the cap is subtracted before the power multiplies)
SHARPEN_BOUND_SLACK = 1e-6


def sharpen_log_cap(target: LatentTarget, quantile: float = 0.99, n: int = PRACTICAL_PROBE) -> float:
    """``log c``, ``c`` the ``quantile`` of ``target``'s weights over ``n`` prior draws (their own
    seeded stream; the largest when ``quantile`` is 1), the same on every rank under torchrun."""
    if not 0 < quantile <= 1:
        raise ValueError(f"sharpen: the quantile must lie in (0, 1], got {quantile}")
    lw = probe_log_weights(target, n)
    lw = lw[torch.isfinite(lw)]
    if not len(lw):
        raise ValueError("sharpen: every probed weight is zero or non-finite")
    cap = float(torch.quantile(lw[:1_000_000].float(), quantile)) if quantile < 1 else float(lw.max())
    return distributed.agree_max(cap)


def sharpened(target: LatentTarget, power: float, quantile: float = 0.99, n: int = PRACTICAL_PROBE,
              log_cap: float | None = None) -> LatentTarget:
    """The precision-first target ``q'(z) ∝ p(z) min(w(z), c)^power``, ``c`` the ``quantile`` of
    ``w`` over ``n`` prior draws (:func:`sharpen_log_cap`, unless ``log_cap`` gives it), its
    weights divided by ``c^power`` so that their exact bound is 1 (no power overflows it).

    ``power > 1`` leans further toward the points the weights call most realistic, as the
    truncation trick does; the cap keeps the few extreme weights (an extrapolating classifier's)
    from taking the sample over. Its samples do not follow the data: use it where typical
    samples matter more than the density (images), never where the density must be right. On
    zoo MNIST generators, resampling a 200,000-image pool: WGAN-GP precision 62.6 -> 66.1 (w:
    64.8), VAE 75.1 -> 81.1 (w: 78.8), recall and Frechet distance both better than the base's
    (docs/image_bar.md)."""
    if not (math.isfinite(power) and power >= 1):
        raise ValueError(f"sharpen: the power must be a number >= 1 (below 1 is tempering), got {power}")
    cap = sharpen_log_cap(target, quantile, n) if log_cap is None else float(log_cap)

    def log_weight(z: Tensor) -> Tensor:
        return power * (target.log_weight(z).clamp(max=cap) - cap)
    return LatentTarget(target.prior, log_weight, target.differentiable, bound=math.exp(SHARPEN_BOUND_SLACK))


def practical_bound(target: LatentTarget, n: int = PRACTICAL_PROBE, safety: float = 1.1) -> LatentTarget:
    """``target`` with a bound rejection can use. Its own bound (a pulled-back weight's cap) holds
    everywhere and is kept while rejection under it accepts at least ``LOW_ACCEPTANCE`` of a
    probe of the prior (``mean w / bound``). Above that, where the cap was set by data rows far
    from anything the generator makes (images), the bound becomes ``safety x`` the probe's
    largest weight: rejection becomes possible, at the risk of proposals above the bound, which
    the sampler counts and warns about."""
    if target.bound is None:
        return target
    top, mean = probe_weights(target, n)
    top, mean = distributed.agree_max(top), -distributed.agree_max(-mean)
    if not math.isfinite(top) or mean / target.bound >= LOW_ACCEPTANCE:
        return target
    return dataclasses.replace(target, bound=float(min(target.bound, safety * math.exp(top))))


@torch.no_grad()
def quantile_bound(scores: Tensor, quantile: float, what: str, min_acceptance: float = 0.0) -> tuple[Tensor, Tensor]:
    """The bound ``b`` of a rejection step at the ``quantile`` of its ``scores`` (their maximum
    at 1) and the mean acceptance ``E min(1, exp(s - b))`` there; one clear error if either is
    unusable (``what`` names the step). Where that acceptance is below ``min_acceptance`` the
    bound is lowered (bisection) until the acceptance reaches it: a cap on the step's cost,
    paid for by truncating the largest scores."""
    check_bound_args(quantile, min_acceptance, what)
    bound = torch.quantile(scores[:1_000_000].float(), float(quantile)) if quantile < 1 else scores.max()
    bound = bound.new_tensor(distributed.agree_max(float(bound)))  # one bound for every rank under torchrun
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


def finite_log_weight(target: LatentTarget, z: Tensor) -> Tensor:
    """``log w(z)`` from ``target.log_weight``, without gradients.

    NaN and ``+inf`` become ``-inf`` (w = 0: such points are never accepted or resampled).
    """
    return _log_weight_and_non_finite(target, z)[0]


def _log_weight_and_non_finite(target: LatentTarget, z: Tensor) -> tuple[Tensor, int]:
    """``log w(z)`` with NaN / +inf replaced by -inf, and how many were replaced."""
    raw = _raw_log_weight(target, z)
    if not len(raw) or float(raw.max()) < math.inf:  # the max is NaN or +inf when any value is
        return raw, 0
    n_bad = int((torch.isnan(raw) | (raw == math.inf)).sum())
    return torch.where(torch.isfinite(raw), raw, torch.full_like(raw, -math.inf)), n_bad


def _raw_log_weight(target: LatentTarget, z: Tensor) -> Tensor:
    """``log w(z) = log q(z) - log p(z)``, straight from ``target.log_weight`` (no prior terms to
    add and subtract: for latent rejection the weight network is the whole cost), in chunks of
    :data:`WEIGHT_CHUNK` rows."""
    with torch.no_grad():
        if len(z) <= WEIGHT_CHUNK:
            return target.log_weight(z)
        return torch.cat([target.log_weight(c) for c in z.split(WEIGHT_CHUNK)])


#: the shared count check under its former name (other modules import it from here)
_check_int = check_count
