"""Sampling-importance-resampling on the density ratio of the critic fine-tuned with BCE
(the latent reweighting paper's baseline)."""

from __future__ import annotations

from genrefine.methods.base import Needs, register_method
from genrefine.methods.ratio import RatioMethod
from genrefine.samplers.ratio import SIRSampler


@register_method
class SIR(RatioMethod):
    name = "sir"
    needs = Needs(weights="critic_ratio")
    sampler = SIRSampler
