"""Generator families. ``FAMILIES`` maps a ``--base`` name to its class."""

from genrefine.generators.base import FAMILIES, Generator, register_family, require
from genrefine.generators.realnvp import RealNVPGenerator
from genrefine.generators.wgan import Critic, WGANGenerator

__all__ = ["FAMILIES", "Critic", "Generator", "RealNVPGenerator", "WGANGenerator", "register_family", "require"]
