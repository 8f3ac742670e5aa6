"""Running methods from the registry on one :class:`RunContext`."""

from __future__ import annotations

import warnings

from genrefine.methods.base import METHODS, MethodResult, get_method
from genrefine.methods.context import RunContext


def fit_methods(ctx: RunContext, names: list[str], params: dict[str, dict] | None = None,
                skip_failures: bool = False) -> dict[str, MethodResult]:
    """Fit every method in ``names`` (in that order) with its settings from ``ctx.cfg``
    (updated by ``params[name]`` where given), and return their results with latents ``z``
    and samples ``x`` filled in.

    Order of the work:

    1. the DCTR classifier, when any method consumes it: first, right after the base sample;
    2. each method's ``fit``; the shared estimators are fitted when first requested;
    3. the latents of methods that returned only a sampler (the latent reweighting protocol:
       every method is fitted before any is sampled), drawn in method order, timed as
       ``sample_<name>``, their sampler's diagnostics kept.

    Each fit and each draw runs on its own random stream (``fit:<name>``, ``sample:<name>``,
    :meth:`RunContext.stream`), so a method's numbers do not depend on the others in the run.
    """
    classes = [get_method(name) for name in names]
    if any(cls.needs.weights == "dctr" for cls in classes):
        ctx.classifier()
    params = params or {}
    results = {}
    for cls in classes:
        settings = {**cls.settings(ctx.cfg), **params.get(cls.name, {})}
        with ctx.stream(f"fit:{cls.name}"):
            _guarded(ctx, cls.name, skip_failures, lambda: results.__setitem__(cls.name, cls().fit(ctx, **settings)))
    for name, r in list(results.items()):
        with ctx.stream(f"sample:{name}"):
            if not _guarded(ctx, name, skip_failures, lambda: _draw(ctx, name, r)):
                del results[name]
    return results


def _draw(ctx: RunContext, name: str, r: MethodResult) -> None:
    """Fill ``r.z`` (from its sampler when the method left it to the run) and ``r.x``."""
    if r.z is None:
        if r.sampler_factory is None:
            raise ValueError(f"method {name} returned neither latents nor a sampler")
        sampler = r.sampler_factory()
        r.z = ctx.timed(f"sample_{name}", lambda: sampler.sample(ctx.n_samples))
        r.diagnostics = {**r.diagnostics, **sampler.diagnostics}
    r.z = r.z.detach()
    if r.x is None:
        r.x = ctx.base.generate(r.z)


def _guarded(ctx: RunContext, name: str, skip_failures: bool, work) -> bool:
    """Run ``work()``; with ``skip_failures`` a method that refuses its input (a ValueError:
    degenerate weights, a sampler past its budget) is recorded in
    ``ctx.diagnostics["failed"]`` and left out, so a comparison goes on with the others."""
    if not skip_failures:
        work()
        return True
    try:
        work()
        return True
    except ValueError as exc:
        ctx.diagnostics.setdefault("failed", {})[name] = str(exc)
        warnings.warn(f"{name} left out of the comparison: {exc}", stacklevel=3)
        return False


__all__ = ["METHODS", "fit_methods"]
