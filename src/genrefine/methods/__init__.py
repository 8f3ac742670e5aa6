"""Refinement methods as plug-ins: each module defines one registered :class:`Method` (a variant
may share its base method's module as a configured subclass).

Importing this package registers every method below in :data:`METHODS`, in the order of the
imports: the run's canonical order (it is also the order of the random stream, so new methods
go last). Adding a method is one new module and one import line here.
"""

from genrefine.methods.base import (METHODS, Method, MethodResult, Needs, check_method, get_method,
                                    register_method)
from genrefine.methods.context import RunContext
from genrefine.methods.runner import fit_methods

# LaSeR (DCTR weights pulled back to the latent space)
from genrefine.methods import dctr  # noqa: E402,F401  (registration)
from genrefine.methods import rejection  # noqa: E402,F401
from genrefine.methods import hmc  # noqa: E402,F401
from genrefine.methods import laser  # noqa: E402,F401  (laser, laser-flow)
# latent reweighting (Issenhuth et al.) and its baselines
from genrefine.methods import latentrs  # noqa: E402,F401
from genrefine.methods import latentga  # noqa: E402,F401  (latentga, latentrsga)
from genrefine.methods import drs  # noqa: E402,F401
from genrefine.methods import mhgan  # noqa: E402,F401
from genrefine.methods import sir  # noqa: E402,F401
from genrefine.methods import dot  # noqa: E402,F401
from genrefine.methods import drs_dctr  # noqa: E402,F401
from genrefine.methods import mhgan_dctr  # noqa: E402,F401
from genrefine.methods import sir_dctr  # noqa: E402,F401
from genrefine.methods import ddls  # noqa: E402,F401
# OmniFold's latent weights, for generators with hidden randomness: omnifold and the -omnifold
# variants of rejection, hmc, ddls, laser, laser-flow
from genrefine.methods import omnifold  # noqa: E402,F401

__all__ = ["METHODS", "Method", "MethodResult", "Needs", "RunContext", "check_method", "fit_methods",
           "get_method", "register_method"]
