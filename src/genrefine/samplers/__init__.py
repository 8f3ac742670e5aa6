"""Latent samplers of ``q(z) ∝ p(z) w(z)``: one interface (``run(n) -> (z, diagnostics)``,
``sample(n) -> z``), kernels built from named parts (integrator, adaptation, diagnostics)."""

from genrefine.samplers.base import LatentSample, LatentSampler, LatentTarget, effective_sample_size, weight_diagnostics
from genrefine.samplers.data_rejection import DataRejection
from genrefine.samplers.hmc import HMCInfo, HMCSampler, HMCState, leapfrog
from genrefine.samplers.latent_ga import LatentGradientAscent
from genrefine.samplers.ratio import DRSSampler, MHSampler, SIRSampler
from genrefine.samplers.refiner_flow import RefinerFlow
from genrefine.samplers.refiner_gan import RefinerGAN
from genrefine.samplers.rejection import LatentRejectionSampler, accept_loop

__all__ = ["DRSSampler", "DataRejection", "HMCInfo", "HMCSampler", "HMCState", "LatentGradientAscent",
           "LatentRejectionSampler", "LatentSample", "LatentSampler", "LatentTarget", "MHSampler", "RefinerFlow",
           "RefinerGAN", "SIRSampler", "accept_loop", "effective_sample_size", "leapfrog", "weight_diagnostics"]
