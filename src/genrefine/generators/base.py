"""The Generator interface every base model, refiner and refined model implements.

A generator maps latent points ``z ~ prior`` (shape ``(n, latent_dim)``) to data
``x = g(z)`` (shape ``(n, data_dim)``). Families declare what they offer through class
flags so a method that needs a missing capability can say so in one line
(:func:`require`).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal

from genrefine.nn import largest_activation, rows_per_chunk
from genrefine.validation import check_array, check_count, check_data_shape

#: family name -> class; filled by ``@register_family`` when the package ``genrefine`` imports
#: the modules that define families, so a checkpoint names a family, never code to import
FAMILIES: dict[str, type["Generator"]] = {}


def register_family(name: str) -> Callable[[type["Generator"]], type["Generator"]]:
    """Class decorator: make a generator family loadable by name from a checkpoint config."""

    def wrap(cls: type[Generator]) -> type[Generator]:
        cls.family = name
        FAMILIES[name] = cls
        return cls

    return wrap


class DiagonalNormal(Independent):
    """``Independent(Normal(loc, scale), 1)`` that samples by one ``torch.randn`` scaled in place.

    ``Normal.sample`` expands ``loc`` and ``scale`` to the sample's shape and calls
    ``torch.normal``, which fills standard normals and then multiplies and adds: the same numbers
    from the same random stream, but four times slower on a CPU (30 ms against 100 ms for 3M
    two-dimensional draws), and a rejection sampler draws its prior several times per sample.
    """

    def __init__(self, loc: Tensor, scale: Tensor, validate_args: bool | None = None) -> None:
        super().__init__(Normal(loc, scale, validate_args=validate_args), 1, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        base = self.base_dist.expand(torch.Size(batch_shape) + self.base_dist.batch_shape[-1:])
        return DiagonalNormal(base.loc, base.scale, validate_args=False)

    @torch.no_grad()
    def sample(self, sample_shape=torch.Size()) -> Tensor:
        loc, scale = self.base_dist.loc, self.base_dist.scale
        eps = torch.randn(self._extended_shape(sample_shape), dtype=loc.dtype, device=loc.device)
        if bool((loc == 0).all() and (scale == 1).all()):  # N(0, I): scaling would change nothing
            return eps
        return eps.mul_(scale).add_(loc)


class Generator(nn.Module):
    """Base class: ``x = g(z)`` with ``z ~ prior``, a standard normal by default.

    Subclasses implement :meth:`forward` and :meth:`config` (JSON-serialisable keyword
    arguments of ``__init__``) and set the capability flags. Outputs are flat rows
    ``(n, data_dim)``; ``data_shape`` (``(D,)`` for tabular rows, ``(C, H, W)`` for images,
    ``prod(data_shape) == data_dim``) says how a row is laid out.

    Example:
        >>> x = gen.sample(1000)            # (1000, data_dim), no gradients
        >>> z = gen.prior.sample((1000,))   # latents on the generator's device
        >>> x = gen(z)                      # differentiable where the family is
    """

    family: ClassVar[str] = "generator"
    #: g can be inverted (``inverse`` and ``log_prob`` exist): normalizing flows.
    invertible: ClassVar[bool] = False
    #: gradients flow from x back to z (HMC, Langevin, latent gradient ascent need it).
    differentiable: ClassVar[bool] = True
    #: g(z) depends on hidden randomness besides z (weights are not a function of z).
    stochastic: ClassVar[bool] = False
    #: the family wraps a user's model or function: loading it needs that object (``base=``)
    wraps_user_model: ClassVar[bool] = False
    #: the preset section holding the family's settings when a run trains it (``--base NAME``);
    #: None: a run cannot train the family. :meth:`build` takes the section's ``arch_keys``,
    #: ``fit`` the rest.
    preset_section: ClassVar[str | None] = None
    arch_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, latent_dim: int, data_dim: int, own_prior: bool = True, data_shape=None) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.data_dim = int(data_dim)
        self.data_shape = (self.data_dim,) if data_shape is None else check_data_shape(data_shape)
        if int(np.prod(self.data_shape)) != self.data_dim:
            raise ValueError(f"data_shape {self.data_shape} holds {int(np.prod(self.data_shape))} values per row, "
                             f"but data_dim is {self.data_dim}")
        if own_prior:  # buffers, so the prior follows .to(device) and is saved with the model
            self.register_buffer("prior_loc", torch.zeros(self.latent_dim))
            self.register_buffer("prior_scale", torch.ones(self.latent_dim))

    @property
    def device(self) -> torch.device:
        return self.prior_loc.device

    @property
    def prior(self) -> Distribution:
        """The latent distribution p(z) on the generator's device."""
        return DiagonalNormal(self.prior_loc, self.prior_scale)

    def forward(self, z: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self) -> dict:
        """JSON-serialisable constructor arguments; with the state dict it rebuilds the model."""
        return {"latent_dim": self.latent_dim, "data_dim": self.data_dim, "data_shape": list(self.data_shape)}

    @classmethod
    def from_config(cls, cfg: dict, user: Any = None) -> "Generator":
        """Rebuild an (untrained) generator from :meth:`config`. ``user`` is the user's own model
        or function, needed only by families that wrap one (the adapters)."""
        try:
            return cls(**cfg)
        except TypeError as exc:  # a key missing or extra: the config was edited or is another family's
            raise ValueError(f"the '{cls.family}' generator's config does not fit its family ({exc})") from None

    @classmethod
    def build(cls, data_shape: tuple[int, ...], x, **arch) -> "Generator":
        """An untrained generator of the family for rows of ``data_shape``, sized by ``arch``
        (the preset section's :attr:`arch_keys`); ``x``: the training rows, for what the
        architecture reads off the data (an output range)."""
        raise ValueError(f"the '{cls.family}' family cannot be trained by a run")

    #: rows per chunk of a generator whose activations cannot be measured without side effects
    #: (a stochastic one: a probe pass would draw from its random stream)
    DEFAULT_CHUNK: ClassVar[int] = 50_000

    @property
    def chunk_size(self) -> int:
        """Rows per chunk in :meth:`generate` when no ``batch_size`` is given: sized once per
        device so that the largest activation of a chunk fits the cache (CPU) or fills the GPU
        (:func:`genrefine.nn.rows_per_chunk`), from one probe pass on zeros. Families of many
        small operations set their own."""
        dev = str(self.device)
        cache = self.__dict__.setdefault("_chunk_rows", {})
        if dev not in cache:
            cache[dev] = self.DEFAULT_CHUNK if self.stochastic else self._measured_chunk()
        return cache[dev]

    def _measured_chunk(self) -> int:
        devices = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):  # a model that draws noise leaves the run's stream
                values = largest_activation(self, torch.zeros(2, self.latent_dim, device=self.device))
        except Exception:  # sizing only: the model's own error comes with the first real chunk
            return self.DEFAULT_CHUNK
        return rows_per_chunk(values, self.device)

    @torch.no_grad()
    def generate(self, z: Tensor, batch_size: int | None = None) -> Tensor:
        """``g(z)`` in chunks of ``batch_size`` rows (default :attr:`chunk_size`), without gradients."""
        z = z.to(self.device)
        size = int(batch_size or self.chunk_size)
        return torch.cat([self.check_chunk(self(c)) for c in z.split(size)]) if len(z) else z.new_zeros(0, self.data_dim)

    def check_chunk(self, x: Tensor) -> Tensor:
        """Called on each chunk :meth:`generate` makes; families that cannot vouch for their
        outputs (a user's model) check them here."""
        return x

    @torch.no_grad()
    def sample_with_latents(self, n: int, batch_size: int | None = None) -> tuple[Tensor, Tensor]:
        """Draw ``n`` latents from the prior and return ``(z, g(z))``."""
        check_count(n, "n", minimum=0)
        z = self.prior.sample((int(n),))
        return z, self.generate(z, batch_size)

    @torch.no_grad()
    def propose(self, m: int, batch_size: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``m`` candidates ``(log_a, z, g(z))`` for sampling by rejection: kept with probability
        ``exp(log_a)`` (:func:`~genrefine.samplers.rejection.accept_loop`), they are draws of
        ``(prior, g)``. ``z`` comes from the prior (``log_a = 0``) or, when the prior is a
        thinned one (:class:`~genrefine.samplers.rejection.RejectionPrior`), from its proposal."""
        check_count(m, "m", minimum=0)
        prior = self.prior
        if hasattr(prior, "log_accept") and hasattr(prior, "proposal"):
            z = prior.proposal.sample((int(m),))
            return prior.log_accept(z), z, self.generate(z, batch_size)
        z = prior.sample((int(m),))
        return z.new_zeros(len(z)), z, self.generate(z, batch_size)

    @torch.no_grad()
    def sample(self, n: int, batch_size: int | None = None) -> Tensor:
        """Draw ``n`` samples ``x = g(z)``, ``z ~ prior``."""
        return self.sample_with_latents(n, batch_size)[1]

    def training_rows(self, data, standardise: bool = False) -> Tensor:
        """``data`` checked as ``(n, data_dim)`` rows on the generator's device, with every
        parameter set to train. ``standardise``: a flow's ``data_loc`` / ``data_scale`` buffers
        take the rows' mean and standard deviation (always, so a resumed checkpoint restores the
        same values from the same data)."""
        x = torch.as_tensor(check_array(data, name="training data", dim=self.data_dim, min_rows=2),
                            device=self.device).float()
        if standardise:
            self.data_loc.copy_(x.mean(0))
            self.data_scale.copy_(x.std(0).clamp_min(1e-6))
        for p in self.parameters():
            p.requires_grad_(True)
        return x

    def freeze(self) -> "Generator":
        """Switch to eval mode and stop gradients to parameters (gradients to inputs still flow)."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self


def generator_spec(gen: Generator) -> dict:
    """``{"family", "config"}`` of a generator, nested for composite ones."""
    return {"family": gen.family, "config": gen.config()}


def build_generator(spec: dict, user: Any = None) -> Generator:
    """Rebuild an (untrained) generator from :func:`generator_spec` output via :data:`FAMILIES`;
    ``user`` (the user's model or function) goes to families that wrap one. One ValueError line
    for an unknown family or a config that does not fit."""
    fam = spec.get("family") if isinstance(spec, dict) else None
    if fam not in FAMILIES:
        raise ValueError(f"unknown generator family '{fam}' (known: {', '.join(sorted(FAMILIES))})")
    cfg = spec.get("config")
    if not isinstance(cfg, dict):
        raise ValueError(f"the '{fam}' generator's config is not a JSON object")
    return FAMILIES[fam].from_config(cfg, user)


def spec_wraps_user_model(spec: Any) -> bool:
    """Whether a (nested) generator spec holds a family that wraps a user's model."""
    if isinstance(spec, dict):
        if getattr(FAMILIES.get(spec.get("family")), "wraps_user_model", False):
            return True
        return any(spec_wraps_user_model(v) for v in spec.values())
    return isinstance(spec, list) and any(spec_wraps_user_model(v) for v in spec)


def require(gen: Generator, capability: str, method: str) -> None:
    """Raise ValueError in one line if ``gen`` lacks ``capability`` that ``method`` needs."""
    if not getattr(gen, capability, False):
        raise ValueError(f"{method} needs a {capability} generator; the '{gen.family}' family is not {capability}")
