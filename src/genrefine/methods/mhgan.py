"""MH-GAN: independent Metropolis-Hastings (Turner et al.) on the density ratio of the critic fine-tuned with BCE
(the latent reweighting paper's baseline)."""

from __future__ import annotations

from genrefine.methods.base import Needs, register_method
from genrefine.methods.ratio import RatioMethod
from genrefine.samplers.ratio import MHSampler


@register_method
class MHGAN(RatioMethod):
    name = "mhgan"
    needs = Needs(weights="critic_ratio")
    sampler = MHSampler
