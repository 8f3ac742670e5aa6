"""latentRS (latent reweighting, Alg. 2): latent rejection sampling with the latent importance
network, accepting ``z ~ p`` with probability ``min(w_φ(z), m) / m``, or under a tighter bound
when ``w_φ`` stays well below ``m`` (:func:`~genrefine.samplers.rejection.probe_bound`)."""

from __future__ import annotations

from genrefine.methods.base import Method, MethodResult, Needs, register_method
from genrefine.methods.context import RunContext
from genrefine.samplers.rejection import LatentRejectionSampler


@register_method
class LatentRS(Method):
    """Rejection on ``w_φ`` under its target's bound: ``m``, or lower when ``w_φ`` stays well below
    it (:meth:`~genrefine.methods.context.RunContext.weights`): a flat ``w_φ`` accepts ~0.9
    instead of ``1/m``."""

    name = "latentrs"
    family = "lrw"
    needs = Needs(weights="w_phi")

    def fit(self, ctx: RunContext) -> MethodResult:
        w_phi, target = ctx.w_phi(), ctx.weights("w_phi")
        return MethodResult(sampler_factory=lambda: LatentRejectionSampler(target),
                            diagnostics={"bound": target.bound, "m": w_phi.m})
