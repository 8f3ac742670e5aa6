"""Hamiltonian Monte Carlo (LaSeR Sec. 3.2, Eq. 3) on the pulled-back DCTR weights (``hmc``), or on
OmniFold's latent weights (``hmc-omnifold`` in :mod:`genrefine.methods.omnifold`)."""

from __future__ import annotations

from genrefine.methods.base import Method, MethodResult, Needs, register_method
from genrefine.methods.context import RunContext
from genrefine.samplers.hmc import HMCSampler


@register_method
class HMC(Method):
    """HMC chains on ``q(z) ∝ p(z) w(g(z))``. ``paper=True`` takes the paper's settings
    (:meth:`HMCSampler.paper`); ``n_chains="n"`` runs one chain per sample; every other
    setting goes to :class:`~genrefine.samplers.hmc.HMCSampler`."""

    name = "hmc"
    needs = Needs(differentiable=True, weights="dctr")

    def fit(self, ctx: RunContext, paper: bool = False, **sampler_settings) -> MethodResult:
        target = ctx.weights(self.needs.weights)
        if sampler_settings.get("n_chains") == "n":
            sampler_settings["n_chains"] = ctx.n_samples
        def make() -> HMCSampler:
            return (HMCSampler.paper(target, progress=ctx.progress) if paper
                    else HMCSampler(target, progress=ctx.progress, **sampler_settings))
        sampler = make()
        z = ctx.timed(f"sample_{self.name}", lambda: sampler.sample(ctx.n_samples)).detach()
        return MethodResult(z=z, x=ctx.base.generate(z), diagnostics=sampler.diagnostics, sampler_factory=make)
