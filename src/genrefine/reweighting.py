"""Compatibility module: the latent reweighting methods (Issenhuth et al.) are now registered
classes in :mod:`genrefine.methods` (family ``"lrw"``), their shared estimators in
:mod:`genrefine.methods.estimators`, and their scores in :mod:`genrefine.experiments.scoring`."""

from genrefine.experiments.scoring import inference_cost, score_lrw
from genrefine.methods import METHODS
from genrefine.methods.steps import select_by_val_emd
from genrefine.samplers.ratio import DRSSampler, MHSampler, SIRSampler

#: the latent reweighting family's methods, in canonical order
LRW_METHODS = tuple(name for name, cls in METHODS.items() if cls.family == "lrw")
RATIO_SAMPLERS = {"drs": DRSSampler, "mhgan": MHSampler, "sir": SIRSampler}

__all__ = ["LRW_METHODS", "RATIO_SAMPLERS", "inference_cost", "score_lrw", "select_by_val_emd"]
