"""Latent samplers of ``q(z) ∝ p(z) w(z)``: one interface (``sample(n) -> z`` + ``diagnostics``)."""

from genrefine.samplers.base import LatentSampler, LatentTarget, effective_sample_size, weight_diagnostics
from genrefine.samplers.data_rejection import DataRejection
from genrefine.samplers.hmc import HMCSampler, leapfrog
from genrefine.samplers.refiner_flow import RefinerFlow
from genrefine.samplers.refiner_gan import RefinerGAN
from genrefine.samplers.rejection import LatentRejectionSampler

__all__ = ["DataRejection", "HMCSampler", "LatentRejectionSampler", "LatentSampler", "LatentTarget", "RefinerFlow", "RefinerGAN",
           "effective_sample_size", "leapfrog", "weight_diagnostics"]
