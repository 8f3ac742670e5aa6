"""The latent-sampler interface: draw ``z ~ q(z) ∝ p(z) w(z)`` and report diagnostics.

Every sampler (rejection, SIR, MH, HMC, Langevin, gradient ascent, refiner) is a
:class:`LatentSampler`: ``sample(n) -> z`` of shape ``(n, latent_dim)`` on the target's
device, and ``run(n)`` returns it with what a user checks (acceptance rate, effective sample
size, bound, timings) as JSON-serialisable numbers.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
from torch import Tensor
from torch.distributions import Distribution

from genrefine.samplers.diagnostics import effective_sample_size, weight_diagnostics  # noqa: F401  (re-exported)
from genrefine.timing import timed
from genrefine.validation import check_count  # noqa: F401  (re-exported: the samplers' count check)


@dataclass
class LatentTarget:
    """The reweighted latent density ``q(z) ∝ p(z) w(z)``.

    Attributes:
        prior: p(z), a torch Distribution with event shape ``(d,)``.
        log_weight: ``z -> log w(z)``, shape ``(n,)``; ``-inf`` where w = 0. Differentiable
            in z when ``differentiable`` is True (HMC, Langevin, gradient ascent need it).
        differentiable: whether ``log_weight`` can be differentiated.
        bound: an upper bound of w(z) if one is known (rejection uses it), else None.
        envelope: ``z -> (lo, hi)`` with ``lo <= log_weight(z) <= hi`` wherever it is called
            (``-inf``/``+inf`` where it does not know), cheaper than ``log_weight``; latent
            rejection then evaluates the weight only where the bounds leave its decision open
            (:mod:`genrefine.samplers.squeeze`). None: every weight is evaluated.
    """

    prior: Distribution
    log_weight: Callable[[Tensor], Tensor]
    differentiable: bool = True
    bound: float | None = None
    envelope: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None

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


class LatentSample(NamedTuple):
    """A sampler's output: latents ``z`` ``(n, d)`` and the diagnostics a user checks."""

    z: Tensor
    diagnostics: dict


class LatentSampler(ABC):
    """Base class of samplers of a :class:`LatentTarget`: one small interface.

    :meth:`run` returns the samples with their diagnostics (a :class:`LatentSample`); a
    subclass implements :meth:`_draw` and gets the argument check, the timing and the common
    keys (``sampler``, ``n``, ``seconds``) from here. :meth:`sample` returns only ``z`` and
    keeps the diagnostics in :attr:`diagnostics`. (A subclass that overrides :meth:`sample`
    instead and fills :attr:`diagnostics` itself still works with :meth:`run`.)
    """

    name: str = "sampler"

    def __init__(self, target: LatentTarget) -> None:
        self.target = target
        self.diagnostics: dict = {}

    def run(self, n: int) -> LatentSample:
        """``n`` latent points ``(n, d)`` distributed as q, with their diagnostics."""
        if type(self)._draw is LatentSampler._draw:
            if type(self).sample is LatentSampler.sample:
                raise NotImplementedError(f"{type(self).__name__} implements neither _draw nor sample")
            return LatentSample(self.sample(n), self.diagnostics)
        check_count(n, "n")
        (z, diagnostics), seconds = timed(lambda: self._draw(int(n)))
        return LatentSample(z, {"sampler": self.name, "n": int(n), **diagnostics, "seconds": seconds})

    def sample(self, n: int) -> Tensor:
        """Return ``n`` latent points of shape ``(n, d)`` distributed as q; fill ``diagnostics``."""
        z, self.diagnostics = self.run(n)
        return z

    def _draw(self, n: int) -> tuple[Tensor, dict]:
        """``n`` points and the sampler's own diagnostics (subclasses implement this)."""
        raise NotImplementedError
