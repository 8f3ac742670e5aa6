"""latentRS (latent reweighting, Alg. 2): latent rejection sampling with the latent importance
network, accepting ``z ~ p`` with probability ``min(w_φ(z), m) / m``, or under a tighter bound
when ``w_φ`` stays well below ``m`` (:func:`~genrefine.samplers.rejection.probe_bound`)."""

from __future__ import annotations

from genrefine.methods.base import Method, MethodResult, Needs, register_method
from genrefine.methods.context import RunContext
from genrefine.samplers.rejection import LatentRejectionSampler, probe_bound


@register_method
class LatentRS(Method):
    """Rejection on ``w_φ`` with its soft-clipping bound ``m`` as the rejection bound, lowered to
    1.1 x the largest ``w_φ`` of a probe of the prior when that is below ``m``: the same
    accepted distribution for fewer proposals (a flat ``w_φ`` accepts ~0.9 instead of ``1/m``)."""

    name = "latentrs"
    family = "lrw"
    needs = Needs(weights="w_phi")

    def fit(self, ctx: RunContext) -> MethodResult:
        w_phi, target = ctx.w_phi(), ctx.weights("w_phi")
        bound = probe_bound(target, w_phi.m)
        return MethodResult(sampler_factory=lambda: LatentRejectionSampler(target, bound=bound),
                            diagnostics={"bound": bound, "m": w_phi.m})
