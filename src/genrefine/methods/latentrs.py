"""latentRS (latent reweighting, Alg. 2): latent rejection sampling with the latent importance
network, accepting ``z ~ p`` with probability ``w_φ(z) / m``."""

from __future__ import annotations

from genrefine.methods.base import Method, MethodResult, Needs, register_method
from genrefine.methods.context import RunContext
from genrefine.samplers.rejection import LatentRejectionSampler


@register_method
class LatentRS(Method):
    """Rejection on ``w_φ`` with its soft-clipping bound ``m`` as the rejection bound."""

    name = "latentrs"
    family = "lrw"
    needs = Needs(weights="w_phi")

    def fit(self, ctx: RunContext) -> MethodResult:
        w_phi, target = ctx.w_phi(), ctx.weights("w_phi")
        return MethodResult(sampler_factory=lambda: LatentRejectionSampler(target, bound=w_phi.m))
