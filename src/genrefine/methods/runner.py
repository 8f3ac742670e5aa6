"""Running methods from the registry on one :class:`RunContext`."""

from __future__ import annotations

from genrefine.methods.base import METHODS, MethodResult, get_method
from genrefine.methods.context import RunContext


def fit_methods(ctx: RunContext, names: list[str], params: dict[str, dict] | None = None) -> dict[str, MethodResult]:
    """Fit every method in ``names`` (in that order) with its settings from ``ctx.cfg``
    (updated by ``params[name]`` where given), and return their results with latents ``z``
    and samples ``x`` filled in.

    Order of the work, which is the order of the random stream:

    1. the DCTR classifier, when any method consumes it: first, right after the base sample;
    2. each method's ``fit``; the shared estimators are fitted when first requested;
    3. the latents of methods that returned only a sampler (the latent reweighting protocol:
       every method is fitted before any is sampled), drawn in method order, timed as
       ``sample_<name>``, their sampler's diagnostics kept.
    """
    classes = [get_method(name) for name in names]
    if any(cls.needs.weights == "dctr" for cls in classes):
        ctx.classifier()
    params = params or {}
    results = {cls.name: cls().fit(ctx, **{**cls.settings(ctx.cfg), **params.get(cls.name, {})}) for cls in classes}
    for name, r in results.items():
        if r.z is None:
            if r.sampler_factory is None:
                raise ValueError(f"method {name} returned neither latents nor a sampler")
            sampler = r.sampler_factory()
            r.z = ctx.timed(f"sample_{name}", lambda: sampler.sample(ctx.n_samples))
            r.diagnostics = {**r.diagnostics, **sampler.diagnostics}
        r.z = r.z.detach()
        if r.x is None:
            r.x = ctx.base.generate(r.z)
    return results


__all__ = ["METHODS", "fit_methods"]
