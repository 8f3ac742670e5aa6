"""MH-GAN: independent Metropolis-Hastings (Turner et al.) on the DCTR classifier's weights instead of the critic's: the
same sampler and settings as ``mhgan``, the LaSeR weights."""

from __future__ import annotations

from genrefine.methods.base import Needs, register_method
from genrefine.methods.ratio import RatioMethod
from genrefine.samplers.ratio import MHSampler


@register_method
class MHGANDCTR(RatioMethod):
    name = "mhgan-dctr"
    needs = Needs(weights="dctr")
    settings_key = "mhgan"
    sampler = MHSampler
