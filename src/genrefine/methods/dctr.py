"""DCTR: the base's own samples with the post-hoc classifier's weights ``w(x) = f/(1-f)``
(LaSeR Sec. 3): weighted, not resampled."""

from __future__ import annotations

from genrefine.methods.base import Method, MethodResult, Needs, register_method
from genrefine.methods.context import RunContext
from genrefine.samplers.base import weight_diagnostics


@register_method
class DCTR(Method):
    """The base samples ``x = g(z)`` weighted by the DCTR classifier's ``w(x)``."""

    name = "dctr"
    needs = Needs(weights="dctr", deterministic=False)
    sampled_by = "rejection"

    def fit(self, ctx: RunContext) -> MethodResult:
        clf = ctx.classifier().classifier
        z, x = ctx.base_sample()
        w = clf.weight(x)
        return MethodResult(z=z, x=x, weights=w, diagnostics=weight_diagnostics(w))
