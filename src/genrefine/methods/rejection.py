"""Latent rejection sampling (LaSeR Sec. 3.2, first option) of the pulled-back DCTR weights,
``q(z) ∝ p(z) w(g(z))`` (``rejection``; for a generator with hidden randomness, one noisy draw of
the weight per proposal: the direct pull-back), or of OmniFold's latent weights
``q(z) ∝ p(z) ν(z)`` (``rejection-omnifold``, in :mod:`genrefine.methods.omnifold`)."""

from __future__ import annotations

from genrefine.methods.base import Method, MethodResult, Needs, register_method
from genrefine.methods.context import RunContext
from genrefine.samplers.rejection import LatentRejectionSampler


@register_method
class Rejection(Method):
    """Accept ``z ~ p`` with probability ``w(g(z)) / M``; settings go to
    :class:`~genrefine.samplers.rejection.LatentRejectionSampler`."""

    name = "rejection"
    needs = Needs(weights="dctr", deterministic=False)

    def fit(self, ctx: RunContext, **sampler_settings) -> MethodResult:
        def make() -> LatentRejectionSampler:
            return LatentRejectionSampler(ctx.weights(self.needs.weights),
                                          **{"progress": ctx.progress, **sampler_settings})
        sampler = make()
        z = ctx.timed(f"sample_{self.name}", lambda: sampler.sample(ctx.n_samples))
        return MethodResult(z=z, x=ctx.base.generate(z), diagnostics=sampler.diagnostics, sampler_factory=make)
