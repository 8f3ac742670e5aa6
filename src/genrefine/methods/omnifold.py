"""OmniFold (LaSeR Sec. 3; Andreassen et al. 2020) for a generator with hidden randomness: the
weights ``ν(z)`` of :mod:`genrefine.weights.omnifold`, a function of ``z`` however noisy ``g`` is.

- ``omnifold``: the base's own samples ``x = g(z, ε)`` weighted by ``ν(z)`` (weighted, not
  resampled, as DCTR is in data space);
- ``rejection-omnifold``, ``hmc-omnifold``, ``ddls-omnifold``: the latent samplers of
  ``rejection``, ``hmc``, ``ddls`` on ``q(z) ∝ p(z) ν(z)`` (HMC and Langevin differentiate
  ``ν``, never ``g``), with those methods' settings;
- ``laser-omnifold``, ``laser-flow-omnifold``: the refiners trained on ``(z, ν(z))``.

The refined generator draws ``z`` from ``q`` and runs ``g`` with fresh hidden noise.
"""

from __future__ import annotations

from genrefine.methods.base import Method, MethodResult, Needs, register_method
from genrefine.methods.context import RunContext
from genrefine.methods.ddls import DDLS
from genrefine.methods.hmc import HMC
from genrefine.methods.laser import LaSeR, LaSeRFlow
from genrefine.methods.rejection import Rejection
from genrefine.samplers.base import weight_diagnostics

#: what every OmniFold method needs: its weights, and nothing of g (no gradient, no determinism)
OMNIFOLD_NEEDS = Needs(weights="omnifold", deterministic=False)


@register_method
class OmniFoldWeights(Method):
    """The base samples weighted by ``ν(z)`` of their latent points. It takes no settings of its
    own: the ``omnifold`` section of a run's settings configures the shared estimator."""

    name = "omnifold"
    needs = OMNIFOLD_NEEDS
    settings_key = "omnifold-samples"  # no such section: "omnifold" is the estimator's
    sampled_by = "rejection-omnifold"

    def fit(self, ctx: RunContext) -> MethodResult:
        ctx.omnifold()
        z, x = ctx.base_sample()
        w = ctx.models["omnifold_weights"].weight(z)
        return MethodResult(z=z, x=x, weights=w, diagnostics=weight_diagnostics(w))


@register_method
class RejectionOmniFold(Rejection):
    """Accept ``z ~ p`` with probability ``ν(z) / M``."""

    name = "rejection-omnifold"
    needs = OMNIFOLD_NEEDS
    settings_key = "rejection"


@register_method
class HMCOmniFold(HMC):
    """HMC chains on ``q(z) ∝ p(z) ν(z)``."""

    name = "hmc-omnifold"
    needs = OMNIFOLD_NEEDS
    settings_key = "hmc"


@register_method
class DDLSOmniFold(DDLS):
    """Langevin chains on ``q(z) ∝ p(z) ν(z)``."""

    name = "ddls-omnifold"
    needs = OMNIFOLD_NEEDS
    settings_key = "ddls"


@register_method
class LaSeROmniFold(LaSeR):
    """The refiner GAN on OmniFold's weighted latents ``(z, ν(z))``."""

    name = "laser-omnifold"
    needs = OMNIFOLD_NEEDS
    settings_key = "laser"


@register_method
class LaSeRFlowOmniFold(LaSeRFlow):
    """The refiner flow on OmniFold's weighted latents ``(z, ν(z))``."""

    name = "laser-flow-omnifold"
    needs = OMNIFOLD_NEEDS
    settings_key = "laser-flow"
