"""Latent discriminator optimal transport (DOT, Tanaka 2019), the latent reweighting paper's
baseline: a few gradient steps per latent on ``|z - z_y + δ| - D(G(z)) / k_eff`` with the
critic fine-tuned by the WGAN-GP loss; steps fixed or chosen on held-out data (Appendix E)."""

from __future__ import annotations

from genrefine.methods.base import Method, MethodResult, Needs, register_method
from genrefine.methods.context import RunContext
from genrefine.methods.steps import choose_steps
from genrefine.samplers.dot import DOTSampler, effective_lipschitz


@register_method
class DOT(Method):
    """:class:`~genrefine.samplers.dot.DOTSampler` on the DOT critic; ``k_eff`` is estimated once
    and shared by every candidate of the step grid."""

    name = "dot"
    family = "lrw"
    needs = Needs(differentiable=True, weights="dot_critic")

    def fit(self, ctx: RunContext, n_steps: int = 10, step_size: float = 0.01, select: bool = False,
            grid_steps=(0, 2, 5, 10, 50), grid_eps=(0.01, 0.05, 0.1)) -> MethodResult:
        critic = ctx.dot_critic()
        k_eff = effective_lipschitz(ctx.base, critic)

        def make(n: int, eps: float) -> DOTSampler:
            return DOTSampler(ctx.base, critic, n_steps=n, step_size=eps, k_eff=k_eff)

        st = choose_steps(ctx, self.name, make, n_steps, step_size, select, grid_steps, grid_eps)
        return MethodResult(sampler_factory=lambda: make(st["n_steps"], st["step_size"]))
