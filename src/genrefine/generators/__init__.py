"""Generator families. ``FAMILIES`` maps a family name (a ``--base`` name, or one a checkpoint
records) to its class; :func:`as_generator` wraps a user's own model or function."""

from genrefine.generators.adapters import AdaptedGenerator, CallableGenerator, ModuleGenerator, as_generator
from genrefine.generators.base import FAMILIES, Generator, build_generator, generator_spec, register_family, require
from genrefine.generators.realnvp import RealNVPGenerator
from genrefine.generators.wgan import Critic, WGANGenerator

__all__ = ["FAMILIES", "AdaptedGenerator", "CallableGenerator", "Critic", "Generator", "ModuleGenerator",
           "RealNVPGenerator", "WGANGenerator", "as_generator", "build_generator", "generator_spec", "register_family",
           "require"]
