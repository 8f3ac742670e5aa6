"""The run behind ``genrefine refine``: configuration, data splits, the methods from the
registry, scoring, and the output directory."""

from genrefine.experiments.run import (BASE_FAMILIES, DEFAULT_METHODS, RefinementResult, method_names, parse_methods,
                                       run_refinement)

__all__ = ["BASE_FAMILIES", "DEFAULT_METHODS", "RefinementResult", "method_names", "parse_methods", "run_refinement"]
