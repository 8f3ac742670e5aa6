"""Generator families. ``FAMILIES`` maps a family name (a ``--base`` name, or one a checkpoint
records) to its class; :func:`as_generator` wraps a user's own model or function."""

from genrefine.generators.adapters import AdaptedGenerator, CallableGenerator, ModuleGenerator, as_generator
from genrefine.generators.base import FAMILIES, Generator, build_generator, generator_spec, register_family, require
from genrefine.generators.critic import Critic, gradient_penalty
from genrefine.generators.gan import (AdversarialGenerator, DCGANGenerator, HingeGPGenerator, WGANClipGenerator,
                                      WGANGenerator)
from genrefine.generators.monitor import EnergyMonitor
from genrefine.generators.otflow import OTFlowGenerator
from genrefine.generators.realnvp import RealNVPGenerator
from genrefine.generators.vae import VAEGenerator

__all__ = ["FAMILIES", "AdaptedGenerator", "AdversarialGenerator", "CallableGenerator", "Critic", "DCGANGenerator",
           "EnergyMonitor", "Generator", "HingeGPGenerator", "ModuleGenerator", "OTFlowGenerator", "RealNVPGenerator",
           "VAEGenerator", "WGANClipGenerator", "WGANGenerator", "as_generator", "build_generator", "generator_spec",
           "gradient_penalty", "register_family", "require"]
