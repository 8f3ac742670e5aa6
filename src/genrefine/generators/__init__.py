"""Generator families. ``FAMILIES`` maps a ``--base`` name to its class."""

from genrefine.generators.base import FAMILIES, Generator, register_family, require
from genrefine.generators.realnvp import RealNVPGenerator

__all__ = ["FAMILIES", "Generator", "RealNVPGenerator", "register_family", "require"]
