"""genrefine: post-hoc refinement of trained generative models.

A base generator ``x = g(z)`` is refined by learning latent weights ``w(z)`` (where ``g``
over- or under-produces), sampling ``q(z) ∝ p(z) w(z)``, and composing ``g`` with a refiner
``z = φ(y)``; the result is again a :class:`~genrefine.generators.Generator`.

Importing the package registers every saveable generator family (the registry lives in
:mod:`genrefine.generators.base`, filled by the modules imported here), so a checkpoint names a
family and never code to import.
"""

__version__ = "0.1.0"

# the modules that register generator families: base families and adapters, refined
# generators, and the refiners
from genrefine import generators, refine, samplers  # noqa: E402,F401
from genrefine.api import compare, load_generator, refine, save_generator  # noqa: E402
from genrefine.generators import Generator, as_generator  # noqa: E402
from genrefine.methods import METHODS  # noqa: E402
from genrefine.refine import RefinedGenerator, SampledGenerator  # noqa: E402
from genrefine.report import Report, Score  # noqa: E402

__all__ = ["METHODS", "Generator", "RefinedGenerator", "Report", "SampledGenerator", "Score", "as_generator", "compare",
           "load_generator", "refine", "save_generator"]
