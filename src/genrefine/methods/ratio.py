"""The density-ratio baselines of the latent reweighting paper (DRS, MH-GAN, SIR) as methods:
a ratio sampler on a latent target, drawn by the run after every method is fitted."""

from __future__ import annotations

from typing import ClassVar

from genrefine.methods.base import Method, MethodResult
from genrefine.methods.context import RunContext
from genrefine.samplers.base import LatentSampler


class RatioMethod(Method):
    """A ratio sampler (``sampler``) on the latent target of the weights ``needs.weights``
    names; the settings go to the sampler."""

    family = "lrw"
    sampler: ClassVar[type[LatentSampler]]

    def fit(self, ctx: RunContext, **sampler_settings) -> MethodResult:
        target = ctx.weights(self.needs.weights)
        return MethodResult(sampler_factory=lambda: self.sampler(target, **sampler_settings))
