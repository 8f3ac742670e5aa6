"""Density-ratio samplers on generated samples: SIR, MH-GAN and DRS.

All three take a :class:`LatentTarget` whose ``log_weight(z)`` is ``log r(G(z))``, an estimate
of ``p_data / p_G`` at the generated point (a discriminator's logit, or the DCTR classifier's
weights pulled back by :func:`genrefine.weights.latent_target`); they draw ``z ~ p`` and
select among the proposals, so they deliver latents like every other sampler:

- :class:`SIRSampler` (Grover et al. 2019): for each output, ``N`` proposals and one picked
  with probability proportional to its weight.
- :class:`MHSampler` (MH-GAN, Turner et al. 2019): an independence Metropolis-Hastings chain
  per output with ``K`` proposals, accepting ``z'`` with ``min(1, r(z') / r(z))``; chains run
  vectorised and start from a proposal.
- :class:`DRSSampler` (Azadi et al. 2019): rejection with the acceptance probability
  ``σ(F)``, ``F = ΔD - log(1 - exp(ΔD - ε)) - γ`` where ``ΔD = log r - log r_max``; ``γ`` is the
  ``gamma_quantile`` quantile of F over each batch (the DRS paper's 95th percentile) or 0
  (``gamma_quantile=None``: exact rejection sampling when ``r_max`` bounds r).

Each output costs ``N`` (SIR), ``K`` (MH) or ``1/acceptance`` (DRS) weight evaluations,
i.e. generator-plus-discriminator passes: what the cost table measures.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from genrefine.samplers.base import LatentSampler, LatentTarget, check_count, weight_diagnostics
from genrefine.samplers.diagnostics import warn_low_ess, warn_non_finite
from genrefine.samplers.rejection import MAX_PROPOSALS, _log_weight_and_non_finite, accept_loop_with_info, proposals
from genrefine.validation import check_positive


def _log_weights(target: LatentTarget, z: Tensor, batch_size: int) -> tuple[Tensor, int]:
    outs = [_log_weight_and_non_finite(target, c) for c in z.split(batch_size)]
    return torch.cat([o[0] for o in outs]), sum(o[1] for o in outs)


def _require_some(log_w: Tensor, who: str) -> None:
    if not torch.isfinite(log_w).any():
        raise ValueError(f"{who}: every density ratio drawn is zero or non-finite; check the weight model")


def _report_weights(log_w: Tensor, non_finite: int, total: int, who: str) -> dict:
    """The first proposals' :func:`weight_diagnostics`, with the warnings a user must see at
    once: a degenerate pool (low ESS fraction) and NaN / inf ratios (counted as zero)."""
    summary = weight_diagnostics(log_w.double().exp())
    warn_low_ess(summary, who, stacklevel=5)
    warn_non_finite(non_finite, total, who, stacklevel=5)
    return summary


class SIRSampler(LatentSampler):
    """Sampling-importance-resampling with ``n_candidates`` proposals per delivered sample.

    Rows whose candidates all have weight 0 are redrawn (counted in ``diagnostics``).
    """

    name = "sir"

    def __init__(self, target: LatentTarget, n_candidates: int = 10, batch_size: int = 100_000) -> None:
        super().__init__(target)
        check_count(n_candidates, "n_candidates")
        check_count(batch_size, "batch_size")
        self.n_candidates, self.batch_size = int(n_candidates), int(batch_size)

    def _draw(self, n: int) -> tuple[Tensor, dict]:
        N, d = self.n_candidates, self.target.dim
        out = torch.empty(0, d, device=self.target.device)
        redrawn = non_finite = rounds = proposed = 0
        first = None
        while len(out) < n:
            m = n - len(out)
            z = self.target.prior.sample((m * N,))
            log_w, bad = _log_weights(self.target, z, self.batch_size)
            non_finite += bad
            proposed += len(z)
            _require_some(log_w, "SIR")
            if first is None:
                first = weight_diagnostics(log_w.double().exp())
                warn_low_ess(first, self.name, stacklevel=4)
            lw = log_w.view(m, N)
            ok = torch.isfinite(lw).any(1)
            redrawn += int((~ok).sum())
            lw = lw[ok]
            probs = (lw - lw.max(1, keepdim=True).values).exp()
            pick = torch.multinomial(probs, 1).squeeze(1)
            out = torch.cat([out, z.view(m, N, d)[ok][torch.arange(len(lw), device=z.device), pick]])
            rounds += 1
            if rounds > 100:
                raise ValueError("SIR: too many all-zero candidate sets; the density ratios are almost all zero")
        warn_non_finite(non_finite, proposed, self.name, stacklevel=4)
        return out[:n], {"n_candidates": N, "rows_redrawn": redrawn, "non_finite": non_finite, "weights": first}


class MHSampler(LatentSampler):
    """Independence Metropolis-Hastings (MH-GAN) with ``chain_length`` proposals per sample."""

    name = "mhgan"

    def __init__(self, target: LatentTarget, chain_length: int = 10, batch_size: int = 100_000) -> None:
        super().__init__(target)
        check_count(chain_length, "chain_length")
        check_count(batch_size, "batch_size")
        self.chain_length, self.batch_size = int(chain_length), int(batch_size)

    def _draw(self, n: int) -> tuple[Tensor, dict]:
        prior = self.target.prior
        z = prior.sample((int(n),))
        log_w, non_finite = _log_weights(self.target, z, self.batch_size)
        _require_some(log_w, "MH-GAN")
        first = weight_diagnostics(log_w.double().exp())
        warn_low_ess(first, self.name, stacklevel=4)
        accepted = 0
        for _ in range(self.chain_length - 1):
            zp = prior.sample((int(n),))
            lp, bad = _log_weights(self.target, zp, self.batch_size)
            non_finite += bad
            # accept with min(1, r'/r); a current state with r = 0 always moves
            diff = torch.where(torch.isfinite(log_w), lp - log_w, torch.full_like(lp, math.inf))
            acc = torch.log(torch.rand_like(lp)) < diff
            z = torch.where(acc[:, None], zp, z)
            log_w = torch.where(acc, lp, log_w)
            accepted += int(acc.sum())
        warn_non_finite(non_finite, n * self.chain_length, self.name, stacklevel=4)
        stuck = int((~torch.isfinite(log_w)).sum())
        return z, {"chain_length": self.chain_length,
                   "acceptance_rate": accepted / max(1, n * (self.chain_length - 1)),
                   "chains_at_zero_weight": stuck, "non_finite": non_finite, "weights": first}


class DRSSampler(LatentSampler):
    """Discriminator rejection sampling.

    Args:
        gamma_quantile: quantile of F per batch used as the shift γ (0.95 in the DRS paper);
            ``None`` means γ = 0 (exact rejection sampling of ``p r`` when ``r <= r_max``).
        eps: the ε inside the log (1e-6).
        pilot_size: proposals of the first batch, which set ``log r_max`` (then updated as a
            running max).
        batch_size: most proposals per later batch; max_rounds: most batches after the first.
        max_proposals: most proposals for one call (refused at once beyond it; see
            :func:`~genrefine.samplers.rejection.accept_loop_with_info`).
    """

    name = "drs"

    def __init__(self, target: LatentTarget, gamma_quantile: float | None = 0.95, eps: float = 1e-6,
                 pilot_size: int = 10_000, batch_size: int = 100_000, max_rounds: int = 1000,
                 max_proposals: float = MAX_PROPOSALS, progress: bool = False) -> None:
        super().__init__(target)
        if gamma_quantile is not None and not 0.0 <= gamma_quantile <= 1.0:
            raise ValueError(f"gamma_quantile must lie in [0, 1] or be None, got {gamma_quantile}")
        check_count(pilot_size, "pilot_size")
        check_count(batch_size, "batch_size")
        check_count(max_rounds, "max_rounds")
        check_positive(max_proposals, "max_proposals")
        self.gamma_quantile, self.eps = gamma_quantile, float(eps)
        self.pilot_size, self.batch_size, self.max_rounds = int(pilot_size), int(batch_size), int(max_rounds)
        self.max_proposals, self.progress = float(max_proposals), bool(progress)

    def _draw(self, n: int) -> tuple[Tensor, dict]:
        score = _DRSAcceptance(self.target, self.gamma_quantile, self.eps, self.batch_size)
        (z,), info = accept_loop_with_info(
            proposals(self.target.prior, score), n, sizes=_drs_batches(self.pilot_size, self.batch_size),
            batch_size=self.batch_size, max_rounds=self.max_rounds + 1, max_proposals=self.max_proposals,
            who="DRS", progress=self.progress)
        warn_non_finite(score.non_finite, info.drawn, self.name, stacklevel=4)
        return z, {"acceptance_rate": info.acceptance, "acceptance_probe": info.probe_rate,
                   "low_acceptance": info.warned, "proposals": info.drawn, "log_ratio_max": score.log_max,
                   "gamma_quantile": self.gamma_quantile, "non_finite": score.non_finite, "weights": score.first}


class _DRSAcceptance:
    """DRS's ``score`` for :func:`~genrefine.samplers.rejection.proposals`: ``log σ(F)`` with
    ``F = ΔD - log(1 - exp(ΔD - ε)) - γ``, ``ΔD = log r - log r_max`` and ``log r_max`` the
    running maximum; tallies the non-finite ratios and summarises the first batch."""

    def __init__(self, target: LatentTarget, gamma_quantile: float | None, eps: float, batch_size: int) -> None:
        self.target, self.gamma_quantile, self.eps, self.batch_size = target, gamma_quantile, eps, batch_size
        self.log_max = -math.inf
        self.non_finite = 0
        self.first: dict | None = None

    def __call__(self, z: Tensor) -> tuple[Tensor]:
        lw, bad = _log_weights(self.target, z, self.batch_size)
        self.non_finite += bad
        if self.first is None:
            _require_some(lw, "DRS")
            self.first = weight_diagnostics(lw.double().exp())
            warn_low_ess(self.first, "drs", stacklevel=6)
        finite = torch.isfinite(lw)
        self.log_max = max(self.log_max, float(lw[finite].max()) if finite.any() else self.log_max)
        dd = lw - self.log_max  # <= 0
        f = dd - torch.log1p(-torch.exp(dd - self.eps))
        if self.gamma_quantile is not None:
            kept = f[torch.isfinite(f)]
            f = f - (torch.quantile(kept.double(), self.gamma_quantile).to(f.dtype) if len(kept) else 0.0)
        # U < σ(F) as log U < log σ(F): the one accept rule (σ(-inf) = 0 never passes)
        return (torch.log(torch.sigmoid(f)),)


def _drs_batches(first: int, batch_size: int) -> Callable[[int, int, int], int]:
    """DRS's batches: the pilot, then the missing count over the acceptance so far (at least
    1e-3), +20 %, at most ``batch_size``."""

    def sizes(missing: int, kept: int, drawn: int) -> int:
        if not drawn:
            return first
        return min(batch_size, int(1.2 * missing / max(kept / drawn, 1e-3)) + 64)
    return sizes
