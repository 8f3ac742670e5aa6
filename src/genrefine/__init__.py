"""genrefine: post-hoc refinement of trained generative models.

A base generator ``x = g(z)`` is refined by learning latent weights ``w(z)`` (where ``g``
over- or under-produces), sampling ``q(z) ∝ p(z) w(z)``, and composing ``g`` with a refiner
``z = φ(y)``; the result is again a :class:`~genrefine.generators.Generator`.
"""

__version__ = "0.1.0"
