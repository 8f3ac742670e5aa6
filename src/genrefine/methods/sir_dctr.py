"""Sampling-importance-resampling on the DCTR classifier's weights instead of the critic's: the
same sampler and settings as ``sir``, the LaSeR weights."""

from __future__ import annotations

from genrefine.methods.base import Needs, register_method
from genrefine.methods.ratio import RatioMethod
from genrefine.samplers.ratio import SIRSampler


@register_method
class SIRDCTR(RatioMethod):
    name = "sir-dctr"
    needs = Needs(weights="dctr")
    settings_key = "sir"
    sampler = SIRSampler
