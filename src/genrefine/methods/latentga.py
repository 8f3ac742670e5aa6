"""latentGA and latentRS+GA (latent reweighting, Alg. 4 and 5): gradient ascent on ``w_φ(z)``
from prior draws, or from latentRS's accepted draws; the number and size of the steps are
fixed or chosen on held-out data (Appendix E)."""

from __future__ import annotations

from typing import ClassVar

from genrefine.methods.base import Method, MethodResult, Needs, register_method
from genrefine.methods.context import RunContext
from genrefine.methods.steps import choose_steps
from genrefine.samplers.latent_ga import LatentGradientAscent


class _GradientAscent(Method):
    family = "lrw"
    needs = Needs(weights="w_phi")
    rejection: ClassVar[bool]

    def fit(self, ctx: RunContext, n_steps: int = 10, step_size: float = 0.05, select: bool = False,
            grid_steps=(0, 2, 5, 10, 50), grid_eps=(0.01, 0.05, 0.1)) -> MethodResult:
        w_phi, target = ctx.w_phi(), ctx.weights("w_phi")

        def make(n: int, eps: float) -> LatentGradientAscent:
            return LatentGradientAscent(target, n, eps, rejection=self.rejection, weight_fn=w_phi)

        st = choose_steps(ctx, self.name, make, n_steps, step_size, select, grid_steps, grid_eps)
        return MethodResult(sampler_factory=lambda: make(st["n_steps"], st["step_size"]))


@register_method
class LatentGA(_GradientAscent):
    """Gradient ascent on ``w_φ`` from prior draws (Alg. 4)."""

    name = "latentga"
    rejection = False


@register_method
class LatentRSGA(_GradientAscent):
    """latentRS, then gradient ascent on ``w_φ`` (Alg. 5)."""

    name = "latentrsga"
    rejection = True
