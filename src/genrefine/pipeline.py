"""Compatibility module: the run now lives in :mod:`genrefine.experiments` (``run_refinement``)
and the methods in :mod:`genrefine.methods` (one registered class per method)."""

from genrefine.experiments.config import build_config
from genrefine.experiments.outputs import write_outputs
from genrefine.experiments.run import (BASE_FAMILIES, DEFAULT_METHODS, RefinementResult, method_names, parse_methods,
                                       run_refinement)
from genrefine.experiments.scoring import score_sample

#: the default LaSeR run (a flow base)
LASER_METHODS = DEFAULT_METHODS["realnvp"]
#: ``base`` and every registered method, in canonical order
METHODS = method_names()

__all__ = ["BASE_FAMILIES", "LASER_METHODS", "METHODS", "RefinementResult", "build_config", "parse_methods",
           "run_refinement", "score_sample", "write_outputs"]
