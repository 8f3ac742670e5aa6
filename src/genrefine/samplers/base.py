"""The latent-sampler interface: draw ``z ~ q(z) ∝ p(z) w(z)`` and report diagnostics.

Every sampler (rejection, SIR, MH, HMC, Langevin, gradient ascent, refiner) is a
:class:`LatentSampler`: ``sample(n) -> z`` of shape ``(n, latent_dim)`` on the target's
device, and after each call ``diagnostics`` holds what a user checks (acceptance rate,
effective sample size, bound, timings) as JSON-serialisable numbers.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor
from torch.distributions import Distribution


@dataclass
class LatentTarget:
    """The reweighted latent density ``q(z) ∝ p(z) w(z)``.

    Attributes:
        prior: p(z), a torch Distribution with event shape ``(d,)``.
        log_weight: ``z -> log w(z)``, shape ``(n,)``; ``-inf`` where w = 0. Differentiable
            in z when ``differentiable`` is True (HMC, Langevin, gradient ascent need it).
        differentiable: whether ``log_weight`` can be differentiated.
        bound: an upper bound of w(z) if one is known (rejection uses it), else None.
    """

    prior: Distribution
    log_weight: Callable[[Tensor], Tensor]
    differentiable: bool = True
    bound: float | None = None

    @property
    def dim(self) -> int:
        return int(self.prior.event_shape[0])

    @property
    def device(self) -> torch.device:
        return self.prior.sample((1,)).device

    def log_prob(self, z: Tensor) -> Tensor:
        """Unnormalised ``log q(z) = log p(z) + log w(z)``."""
        return self.prior.log_prob(z) + self.log_weight(z)

    def weight(self, z: Tensor) -> Tensor:
        return self.log_weight(z).exp()


class LatentSampler(ABC):
    """Base class of samplers of a :class:`LatentTarget`."""

    name: str = "sampler"

    def __init__(self, target: LatentTarget) -> None:
        self.target = target
        self.diagnostics: dict = {}

    @abstractmethod
    def sample(self, n: int) -> Tensor:
        """Return ``n`` latent points of shape ``(n, d)`` distributed as q; fill ``diagnostics``."""


def effective_sample_size(w: Tensor) -> float:
    """Kish's effective sample size fraction ``(Σw)² / (n Σw²)`` in [0, 1]."""
    w = w.double()
    s2 = (w * w).sum()
    return float((w.sum() ** 2 / (len(w) * s2)).item()) if s2 > 0 else 0.0


def weight_diagnostics(w: Tensor) -> dict:
    """Summary of a weight vector: ESS fraction, max/mean, non-finite and zero counts."""
    w = torch.as_tensor(w).detach().double().flatten()
    finite = torch.isfinite(w)
    wf = w[finite]
    mean = float(wf.mean()) if len(wf) else math.nan
    return {
        "n": int(len(w)),
        "non_finite": int((~finite).sum()),
        "zeros": int((wf == 0).sum()),
        "mean": mean,
        "max": float(wf.max()) if len(wf) else math.nan,
        "max_over_mean": float(wf.max() / mean) if len(wf) and mean > 0 else math.nan,
        "ess_fraction": effective_sample_size(wf) if len(wf) else 0.0,
    }
