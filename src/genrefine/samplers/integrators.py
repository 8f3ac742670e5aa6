"""The integrator of HMC (and of any sampler that follows gradients of ``log q``): leapfrog, and
the one way the samplers evaluate ``log q(z)`` with its gradient.

Both are plain functions of tensors, vectorised over chains, each testable alone (the
blackjax layout: the kernel in :mod:`genrefine.samplers.hmc` is built from them).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from genrefine.samplers.base import LatentTarget

#: ``z -> (log q(z), ∇ log q(z))``, shapes ``(n,)`` and ``(n, d)``
LogProbAndGrad = Callable[[Tensor], tuple[Tensor, Tensor]]


def log_prob_and_grad(target: LatentTarget, z: Tensor) -> tuple[Tensor, Tensor]:
    """``(log q(z), ∇_z log q(z))`` by autograd through ``target.log_prob``, both detached.

    A blown-up trajectory must not reach the model (torch distributions reject NaN): rows
    with a non-finite ``z`` are evaluated at 0 and reported as NaN, which the kernel rejects.
    A ``log q`` that does not depend on ``z`` has gradient 0.
    """
    bad = ~torch.isfinite(z).all(-1, keepdim=True)
    any_bad = bool(bad.any())
    if any_bad:
        z = torch.where(bad, torch.zeros_like(z), z)
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        log_prob = target.log_prob(z)
        (grad,) = torch.autograd.grad(log_prob.sum(), z, allow_unused=True)
    grad = torch.zeros_like(z) if grad is None else grad
    log_prob = log_prob.detach()
    if any_bad:
        log_prob = torch.where(bad.squeeze(-1), torch.full_like(log_prob, math.nan), log_prob)
        grad = torch.where(bad, torch.full_like(grad, math.nan), grad)
    return log_prob, grad


def leapfrog(
    z: Tensor,
    p: Tensor,
    log_prob_and_grad: LogProbAndGrad,
    step_size: float | Tensor,
    n_steps: int,
    grad: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Integrate Hamilton's equations for ``H(z, p) = -log q(z) + |p|²/2`` with leapfrog.

    One step is ``p ← p + ε/2 ∇log q(z);  z ← z + ε p;  p ← p + ε/2 ∇log q(z)``; consecutive
    half-steps of ``p`` are fused, so ``n_steps`` steps cost ``n_steps`` evaluations of
    ``log_prob_and_grad`` when ``grad`` (the gradient at the starting ``z``) is given, one
    more otherwise. The map is volume-preserving and reversible (negating ``p`` and
    integrating again returns to the start), and its energy error is O(ε²) over a fixed
    integration time.

    Args:
        z: positions, shape ``(n_chains, d)``.
        p: momenta, same shape.
        log_prob_and_grad: ``z -> (log q(z), ∇_z log q(z))`` (:func:`log_prob_and_grad`).
        step_size: ε, a number or a per-chain tensor of shape ``(n_chains,)``.
        n_steps: number of leapfrog steps L >= 1.
        grad: ``∇ log q`` at ``z`` if already known (saves one evaluation).

    Returns:
        ``(z, p, log_prob, grad)`` after L steps, ``log q`` and its gradient at the returned ``z``.

    Example:
        >>> z1, p1, lp1, g1 = leapfrog(z, torch.randn_like(z), lambda z: (-0.5 * (z * z).sum(-1), -z), 0.1, 20)
    """
    if isinstance(step_size, Tensor) and step_size.dim() > 0:
        step_size = step_size.reshape(-1, *([1] * (z.dim() - 1)))
    g = log_prob_and_grad(z)[1] if grad is None else grad
    log_prob = None
    p = p + 0.5 * step_size * g
    for i in range(n_steps):
        z = z + step_size * p
        log_prob, g = log_prob_and_grad(z)
        # the last half-step of p closes the final step; the others fuse two half-steps.
        p = p + (step_size if i < n_steps - 1 else 0.5 * step_size) * g
    return z, p, log_prob, g
