"""DDLS (Che et al. 2020; LaSeR ref. [72]): Langevin dynamics in the latent space on the
pulled-back DCTR weights, ``q(z) ∝ p(z) w(g(z))`` (``ddls``), or on OmniFold's latent weights
(``ddls-omnifold`` in :mod:`genrefine.methods.omnifold`), one chain per sample started from the prior."""

from __future__ import annotations

from genrefine.methods.base import Method, MethodResult, Needs, register_method
from genrefine.methods.context import RunContext
from genrefine.samplers.ddls import DDLSSampler


@register_method
class DDLS(Method):
    """:class:`~genrefine.samplers.ddls.DDLSSampler` on the DCTR latent target; settings
    (``step_size``, ``n_steps``, ``batch_size``) go to the sampler."""

    name = "ddls"
    needs = Needs(differentiable=True, weights="dctr")

    def fit(self, ctx: RunContext, **sampler_settings) -> MethodResult:
        def make() -> DDLSSampler:
            return DDLSSampler(ctx.weights(self.needs.weights), progress=ctx.progress, **sampler_settings)
        sampler = make()
        z = ctx.timed(f"sample_{self.name}", lambda: sampler.sample(ctx.n_samples))
        return MethodResult(z=z, x=ctx.base.generate(z), diagnostics=sampler.diagnostics, sampler_factory=make)
