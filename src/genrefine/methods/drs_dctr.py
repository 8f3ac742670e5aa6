"""Discriminator rejection sampling (Azadi et al.) on the DCTR classifier's weights instead of the critic's: the
same sampler and settings as ``drs``, the LaSeR weights."""

from __future__ import annotations

from genrefine.methods.base import Needs, register_method
from genrefine.methods.ratio import RatioMethod
from genrefine.samplers.ratio import DRSSampler


@register_method
class DRSDCTR(RatioMethod):
    name = "drs-dctr"
    needs = Needs(weights="dctr")
    settings_key = "drs"
    sampler = DRSSampler
