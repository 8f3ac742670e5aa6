"""Step-size adaptation for HMC: an ``init / update / final`` triple over its own state, and the
initial step-size search.

* :class:`DualAveraging` — Hoffman & Gelman (2014), Sec. 3.2: drives the Metropolis
  acceptance probability to ``target_accept``; one ε shared by all chains or one per chain.
* :func:`initial_step_size` — Hoffman & Gelman (2014), Alg. 4, over chains.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from genrefine.samplers.integrators import LogProbAndGrad, leapfrog


class DualAveragingState(NamedTuple):
    """Iteration ``t``, the running mean ``h_bar`` of ``δ - α``, the averaged ``log ε̄``, the
    shrinkage point ``mu = log(10 ε_0)``, and the ``log ε_t`` of the averaging window (None
    until :meth:`DualAveraging.start_window`). Tensors of shape ``(n_chains,)`` or ``(1,)``."""

    t: int
    h_bar: Tensor
    log_step_bar: Tensor
    mu: Tensor
    window: tuple[Tensor, ...] | None


class DualAveraging(NamedTuple):
    """Dual-averaging step-size adaptation (Hoffman & Gelman 2014, Sec. 3.2)::

        h̄_t = (1 - 1/(t+t0)) h̄_{t-1} + (δ - α_t)/(t+t0)
        log ε_t = μ - √t/γ · h̄_t,        μ = log(10 ε_0)
        log ε̄_t = t^-κ log ε_t + (1 - t^-κ) log ε̄_{t-1}

    :meth:`update` returns ε_t (the step to use next); :meth:`final` is ε̄ (the step to
    freeze after burn-in). With a short burn-in ε̄ still remembers the first, wildly swinging
    iterations and comes out too small (acceptance 0.05-0.1 above the target after 50
    iterations); after :meth:`start_window`, :meth:`final` is the geometric mean of the ε_t
    produced since instead.

    Example:
        >>> da = DualAveraging(target_accept=0.75)
        >>> state = da.init(torch.tensor([0.1]))
        >>> state, step = da.update(state, accept_prob)
    """

    target_accept: float = 0.75
    gamma: float = 0.05
    t0: float = 10.0
    kappa: float = 0.75

    def init(self, step_size: Tensor) -> DualAveragingState:
        return DualAveragingState(0, torch.zeros_like(step_size), torch.log(step_size), torch.log(10 * step_size), None)

    def start_window(self, state: DualAveragingState) -> DualAveragingState:
        """From now on :meth:`final` averages only the log ε_t of later updates."""
        return state._replace(window=())

    def update(self, state: DualAveragingState, accept_prob: Tensor) -> tuple[DualAveragingState, Tensor]:
        t = state.t + 1
        w = 1.0 / (t + self.t0)
        h_bar = (1 - w) * state.h_bar + w * (self.target_accept - accept_prob)
        # the clamp keeps one unlucky chain from flying off to ε = 0 or ε = inf.
        log_step = (state.mu - math.sqrt(t) / self.gamma * h_bar).clamp(-25.0, 5.0)
        eta = t ** (-self.kappa)
        log_step_bar = eta * log_step + (1 - eta) * state.log_step_bar
        window = None if state.window is None else state.window + (log_step,)
        return DualAveragingState(t, h_bar, log_step_bar, state.mu, window), log_step.exp()

    def final(self, state: DualAveragingState) -> Tensor:
        if state.window:
            return torch.stack(state.window).mean(0).exp()
        return state.log_step_bar.exp()


def initial_step_size(z: Tensor, log_prob: Tensor, grad: Tensor, step_size: Tensor,
                      log_prob_and_grad: LogProbAndGrad) -> tuple[Tensor, int]:
    """Double or halve ε (all chains together) until one leapfrog step's mean acceptance
    probability crosses 1/2 (Hoffman & Gelman 2014, Alg. 4, over chains). Returns the step and
    the number of ``log_prob_and_grad`` evaluations spent."""
    p = torch.randn_like(z)
    h0 = -log_prob + 0.5 * (p * p).sum(-1)
    calls = 0

    def mean_accept(eps: Tensor) -> float:
        nonlocal calls
        calls += 1
        _, p1, lp1, _ = leapfrog(z, p, log_prob_and_grad, eps, 1, grad=grad)
        dh = -lp1 + 0.5 * (p1 * p1).sum(-1) - h0
        a = torch.where(torch.isfinite(dh), (-dh).clamp_max(0).exp(), torch.zeros_like(dh))
        return float(a.mean())

    step = step_size
    up = mean_accept(step) > 0.5
    for _ in range(30):
        new = step * 2 if up else step / 2
        if (mean_accept(new) > 0.5) != up:
            return (step if up else new), calls
        step = new
    return step, calls
