"""Discriminator-driven latent sampling (DDLS; Che et al. 2020, *Your GAN is secretly an
energy-based model*; LaSeR ref. [72]): unadjusted Langevin dynamics on the reweighted latent
``q(z) ∝ p(z) w(z)``.

One step of every chain is

    z_{t+1} = z_t + (ε/2) ∇_z log q(z_t) + √ε ξ_t,    ξ_t ~ N(0, I),
    log q(z) = log p(z) + log w(z)

(Che et al.'s Langevin step on the latent energy ``E(z) = -log p(z) - d(G(z))``, ``w = exp d``). There is
no Metropolis correction, so the chains sample q only up to an O(ε) bias: on a Gaussian
``q = N(μ, σ²)`` the stationary law is ``N(μ, σ² / (1 - ε / (4σ²)))``. Every chain keeps its
last point: one independent chain per sample, all batched.

Che et al. start the chains from the prior (``init="prior"``). Langevin chains seldom cross
a valley of ``q`` between modes, so from the prior they keep the prior's share of each mode
whatever ``w`` says (measured on a 0.5 / 0.5 generator against 0.8 / 0.2 data: 0.52 after
200 steps, 0.55 after 3000). By default (``init="sir"``) the chains start from an
importance-resampled prior sample (:func:`~genrefine.samplers.hmc.sir_starts`), which carries
the modes' masses over; the steps then spread the repeated starts within their modes.


The kernel has the blackjax shape: :meth:`DDLSSampler.init` ``(z) -> state`` and
:meth:`DDLSSampler.step` ``(state) -> (state, info)``. A move to a point where ``log q`` or its
gradient is not finite is refused (the chain stays, and the move counts as a divergence);
a chain that starts at such a point moves by noise alone until it reaches a finite one.
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from typing import NamedTuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from genrefine.samplers.base import LatentSampler, LatentTarget
from genrefine.samplers.hmc import sir_starts
from genrefine.validation import check_positive

#: a share of refused moves above which the step size is reported as too large
DIVERGENCE_WARNING = 0.1
#: prior points per chain of the pool that ``init="sir"`` resamples (at least 100,000): a small
#: multiple, as every chain then takes ``n_steps`` gradient steps of its own
SIR_POOL_PER_CHAIN = 4


class LangevinState(NamedTuple):
    """Chains' positions ``z`` ``(n, d)``, ``log q(z)`` ``(n,)`` and ``∇ log q(z)`` ``(n, d)``
    (zero where it is not finite)."""

    z: Tensor
    log_prob: Tensor
    grad: Tensor


def log_prob_and_grad(target: LatentTarget, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(log q(z), ∇ log q(z), finite)``: the gradient by autograd with non-finite rows set
    to zero, and a mask of the rows where both are finite."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        log_prob = target.log_prob(z)
        (grad,) = torch.autograd.grad(log_prob.sum(), z, allow_unused=True)
    grad = torch.zeros_like(z) if grad is None else grad.detach()
    log_prob = log_prob.detach()
    finite = torch.isfinite(log_prob) & torch.isfinite(grad).all(-1)
    return log_prob, torch.where(finite.unsqueeze(-1), grad, torch.zeros_like(grad)), finite


class DDLSSampler(LatentSampler):
    """Langevin chains on ``target`` (see the module docstring), one per requested sample.

    Args:
        target: ``q(z) ∝ p(z) w(z)`` with a differentiable ``log_weight``.
        step_size: ε > 0 (the noise variance per step; the drift is ε/2 times the gradient).
        n_steps: Langevin steps per chain (>= 1).
        batch_size: chains run together (memory).
        init: ``"sir"`` (start from an importance-resampled prior sample) or ``"prior"`` (the paper).
        sir_pool_size: prior points resampled by ``init="sir"``; ``None`` is
            ``max(100_000, SIR_POOL_PER_CHAIN x n)``.
        progress: show a progress bar over the steps.

    ``diagnostics``: the settings, mean ``log q`` at the start and the end, the share of
    refused moves (``divergent_fraction``), chains that started where ``log q`` is not finite,
    the mean distance moved, and seconds.

    Example:
        >>> z = DDLSSampler(latent_target(gen, classifier), step_size=0.01, n_steps=200).sample(10_000)
    """

    name = "ddls"

    def __init__(self, target: LatentTarget, step_size: float = 0.01, n_steps: int = 100, batch_size: int = 100_000,
                 init: str = "sir", sir_pool_size: int | None = None, progress: bool = False) -> None:
        super().__init__(target)
        if not target.differentiable:
            raise ValueError("DDLS needs a differentiable target (log w(z) must have a gradient in z)")
        check_positive(step_size, "step_size")
        for value, what in ((n_steps, "n_steps"), (batch_size, "batch_size")):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
        if init not in ("sir", "prior"):
            raise ValueError(f"init must be 'sir' or 'prior', got {init!r}")
        if sir_pool_size is not None and (isinstance(sir_pool_size, bool) or not isinstance(sir_pool_size, numbers.Integral)
                                          or sir_pool_size < 1):
            raise ValueError(f"sir_pool_size must be an integer >= 1 or None, got {sir_pool_size!r}")
        self.step_size, self.n_steps, self.batch_size = float(step_size), int(n_steps), int(batch_size)
        self.init_method, self.sir_pool_size = init, sir_pool_size
        self.progress = bool(progress)

    def init(self, z: Tensor) -> LangevinState:
        """The state at positions ``z`` ``(n, d)``."""
        log_prob, grad, _ = log_prob_and_grad(self.target, z)
        return LangevinState(z.detach(), log_prob, grad)

    def step(self, state: LangevinState) -> tuple[LangevinState, dict]:
        """One Langevin move of every chain; ``info["divergent"]`` marks the refused ones."""
        eps = self.step_size
        proposal = state.z + 0.5 * eps * state.grad + math.sqrt(eps) * torch.randn_like(state.z)
        log_prob, grad, finite = log_prob_and_grad(self.target, proposal)
        lost = ~torch.isfinite(state.log_prob)  # not yet where q > 0: move by noise until there
        move = finite | lost
        keep = move.unsqueeze(-1)
        new = LangevinState(torch.where(keep, proposal, state.z), torch.where(move, log_prob, state.log_prob),
                            torch.where(keep, grad, state.grad))
        return new, {"divergent": ~move}

    def _run(self, z0: Tensor, bar) -> tuple[Tensor, dict]:
        state = self.init(z0)
        stats = {"log_prob_start": state.log_prob, "start_non_finite": int((~torch.isfinite(state.log_prob)).sum())}
        divergent = 0
        for _ in range(self.n_steps):
            state, info = self.step(state)
            divergent += int(info["divergent"].sum())
            bar.update(1)
        stats.update(log_prob_end=state.log_prob, divergent=divergent, move=(state.z - z0).norm(dim=-1))
        return state.z, stats

    def sample(self, n: int) -> Tensor:
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        t0 = time.perf_counter()
        init_info = None
        if self.init_method == "sir":
            pool = self.sir_pool_size or max(100_000, SIR_POOL_PER_CHAIN * int(n))
            z0, init_info = sir_starts(self.target, int(n), pool, who="DDLS")
            z0 = z0[torch.randperm(int(n), device=z0.device)]  # resampled rows come sorted by pool index
        else:
            z0 = self.target.prior.sample((int(n),))
        chunks = z0.split(self.batch_size)
        with tqdm(total=self.n_steps * len(chunks), desc="ddls", disable=not self.progress, leave=False) as bar:
            runs = [self._run(c, bar) for c in chunks]
        z = torch.cat([r[0] for r in runs])
        divergent_fraction = sum(r[1]["divergent"] for r in runs) / (int(n) * self.n_steps)

        def mean_finite(key: str) -> float:
            v = torch.cat([r[1][key] for r in runs])
            v = v[torch.isfinite(v)]
            return float(v.mean()) if len(v) else math.nan

        self.diagnostics = {
            "sampler": self.name, "n": int(n), "n_steps": self.n_steps, "step_size": self.step_size,
            "log_prob_start": mean_finite("log_prob_start"), "log_prob_end": mean_finite("log_prob_end"),
            "divergent_fraction": divergent_fraction,
            "start_non_finite": sum(r[1]["start_non_finite"] for r in runs),
            "mean_move": mean_finite("move"), "init": self.init_method, "seconds": time.perf_counter() - t0}
        if init_info is not None:
            self.diagnostics["init_weights"] = init_info
        if divergent_fraction > DIVERGENCE_WARNING:
            warnings.warn(f"DDLS: {divergent_fraction:.1%} of the Langevin moves reached points where log q or its "
                          f"gradient is not finite and were refused; lower step_size (now {self.step_size:g})",
                          stacklevel=2)
        return z
