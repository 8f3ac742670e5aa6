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
import time

import torch
from torch import Tensor

from genrefine.samplers.base import LatentSampler, LatentTarget, weight_diagnostics
from genrefine.samplers.rejection import _check_int, _log_weight_and_non_finite


def _log_weights(target: LatentTarget, z: Tensor, batch_size: int) -> tuple[Tensor, int]:
    outs = [_log_weight_and_non_finite(target, c) for c in z.split(batch_size)]
    return torch.cat([o[0] for o in outs]), sum(o[1] for o in outs)


def _require_some(log_w: Tensor, who: str) -> None:
    if not torch.isfinite(log_w).any():
        raise ValueError(f"{who}: every density ratio drawn is zero or non-finite; check the weight model")


class SIRSampler(LatentSampler):
    """Sampling-importance-resampling with ``n_candidates`` proposals per delivered sample.

    Rows whose candidates all have weight 0 are redrawn (counted in ``diagnostics``).
    """

    name = "sir"

    def __init__(self, target: LatentTarget, n_candidates: int = 10, batch_size: int = 100_000) -> None:
        super().__init__(target)
        _check_int(n_candidates, "n_candidates")
        self.n_candidates, self.batch_size = int(n_candidates), int(batch_size)

    def sample(self, n: int) -> Tensor:
        _check_int(n, "n")
        t0 = time.perf_counter()
        N, d = self.n_candidates, self.target.dim
        out = torch.empty(0, d, device=self.target.device)
        redrawn = non_finite = rounds = 0
        first = None
        while len(out) < n:
            m = n - len(out)
            z = self.target.prior.sample((m * N,))
            log_w, bad = _log_weights(self.target, z, self.batch_size)
            non_finite += bad
            _require_some(log_w, "SIR")
            if first is None:
                first = weight_diagnostics(log_w.double().exp())
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
        self.diagnostics = {"sampler": self.name, "n": int(n), "n_candidates": N, "rows_redrawn": redrawn,
                            "non_finite": non_finite, "weights": first, "seconds": time.perf_counter() - t0}
        return out[:n]


class MHSampler(LatentSampler):
    """Independence Metropolis-Hastings (MH-GAN) with ``chain_length`` proposals per sample."""

    name = "mhgan"

    def __init__(self, target: LatentTarget, chain_length: int = 10, batch_size: int = 100_000) -> None:
        super().__init__(target)
        _check_int(chain_length, "chain_length")
        self.chain_length, self.batch_size = int(chain_length), int(batch_size)

    def sample(self, n: int) -> Tensor:
        _check_int(n, "n")
        t0 = time.perf_counter()
        prior = self.target.prior
        z = prior.sample((int(n),))
        log_w, non_finite = _log_weights(self.target, z, self.batch_size)
        _require_some(log_w, "MH-GAN")
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
        stuck = int((~torch.isfinite(log_w)).sum())
        self.diagnostics = {"sampler": self.name, "n": int(n), "chain_length": self.chain_length,
                            "acceptance_rate": accepted / max(1, n * (self.chain_length - 1)),
                            "chains_at_zero_weight": stuck, "non_finite": non_finite,
                            "seconds": time.perf_counter() - t0}
        return z


class DRSSampler(LatentSampler):
    """Discriminator rejection sampling.

    Args:
        gamma_quantile: quantile of F per batch used as the shift γ (0.95 in the DRS paper);
            ``None`` means γ = 0 (exact rejection sampling of ``p r`` when ``r <= r_max``).
        eps: the ε inside the log (1e-6).
        pilot_size: proposals used to estimate ``log r_max`` (then updated as a running max).
    """

    name = "drs"

    def __init__(self, target: LatentTarget, gamma_quantile: float | None = 0.95, eps: float = 1e-6,
                 pilot_size: int = 10_000, batch_size: int = 100_000, max_rounds: int = 1000) -> None:
        super().__init__(target)
        if gamma_quantile is not None and not 0.0 <= gamma_quantile <= 1.0:
            raise ValueError(f"gamma_quantile must lie in [0, 1] or be None, got {gamma_quantile}")
        _check_int(pilot_size, "pilot_size")
        self.gamma_quantile, self.eps = gamma_quantile, float(eps)
        self.pilot_size, self.batch_size, self.max_rounds = int(pilot_size), int(batch_size), int(max_rounds)

    def sample(self, n: int) -> Tensor:
        _check_int(n, "n")
        t0 = time.perf_counter()
        prior = self.target.prior
        pilot = prior.sample((self.pilot_size,))
        lw, non_finite = _log_weights(self.target, pilot, self.batch_size)
        _require_some(lw, "DRS")
        log_max = float(lw[torch.isfinite(lw)].max())
        out, n_acc, proposals, rounds = [], 0, 0, 0
        z = pilot
        while True:
            log_max = max(log_max, float(lw[torch.isfinite(lw)].max()) if torch.isfinite(lw).any() else log_max)
            dd = lw - log_max  # <= 0
            f = dd - torch.log1p(-torch.exp(dd - self.eps))
            if self.gamma_quantile is not None:
                finite = f[torch.isfinite(f)]
                f = f - (torch.quantile(finite.double(), self.gamma_quantile).to(f.dtype) if len(finite) else 0.0)
            keep = torch.rand_like(f) < torch.sigmoid(f)
            out.append(z[keep])
            n_acc += int(keep.sum())
            proposals += len(z)
            if n_acc >= n:
                break
            rounds += 1
            if rounds > self.max_rounds:
                raise ValueError(f"DRS: only {n_acc} of {n} samples accepted after {proposals} proposals")
            rate = max(n_acc / proposals, 1e-3)
            z = prior.sample((min(self.batch_size, int(1.2 * (n - n_acc) / rate) + 64),))
            lw, bad = _log_weights(self.target, z, self.batch_size)
            non_finite += bad
        self.diagnostics = {"sampler": self.name, "n": int(n), "acceptance_rate": n_acc / proposals,
                            "proposals": proposals, "log_ratio_max": log_max, "gamma_quantile": self.gamma_quantile,
                            "non_finite": non_finite, "seconds": time.perf_counter() - t0}
        return torch.cat(out)[:n]
