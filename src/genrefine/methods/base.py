"""The method interface: one small base class, a registry by name, and the up-front check.

A method turns a frozen base generator and the shared weight estimators of a run
(:class:`~genrefine.methods.context.RunContext`) into samples of the refined distribution:
unweighted latents and samples, weighted samples (DCTR), or a refined generator. It declares
what it needs (:class:`Needs`), so a generator that lacks it is refused before any training
(:func:`check_method`).

Adding a method is one new file with a registered subclass, and one import line in
``genrefine/methods/__init__.py``::

    @register_method
    class MyMethod(Method):
        name = "mine"
        needs = Needs(differentiable=True, weights="dctr")

        def fit(self, ctx, n_steps: int = 10) -> MethodResult:
            target = ctx.weights("dctr")          # q(z) ∝ p(z) w(g(z)), shared by the run
            z = MySampler(target, n_steps).sample(ctx.n_samples)
            return MethodResult(z=z, x=ctx.base.generate(z))

Its settings are the preset section of its name (``cfg["mine"]``, ``cfg["lrw"]["mine"]`` for
the latent reweighting family), passed to ``fit`` as keyword arguments.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar, Literal

from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from genrefine.generators.base import Generator
    from genrefine.methods.context import RunContext
    from genrefine.samplers.base import LatentSampler

#: the shared weight estimators a method can ask the run for (see RunContext)
WEIGHT_KINDS = ("dctr", "w_phi", "critic_ratio", "dot_critic", "omnifold")


@dataclass(frozen=True)
class Needs:
    """What a method requires of the base generator and of the run.

    Attributes:
        differentiable: gradients flow from ``x = g(z)`` back to ``z`` (HMC, Langevin, DOT).
        invertible: ``g`` has an inverse and a density (flows).
        deterministic: the weights are a function of ``z``: ``g`` carries no hidden randomness
            (every weight pulled back to the latent space needs it; DCTR's weights on ``x`` do not).
        weights: the shared estimator the method consumes: ``"dctr"`` (the post-hoc classifier,
            LaSeR Sec. 3), ``"w_phi"`` (the latent importance network, latent reweighting Eq. 6),
            ``"critic_ratio"`` (the critic fine-tuned with BCE, for DRS / MH-GAN / SIR),
            ``"dot_critic"`` (the critic fine-tuned with the WGAN-GP loss, for DOT),
            ``"omnifold"`` (OmniFold's latent weights, a function of ``z`` even for a generator
            with hidden randomness), or None.
    """

    differentiable: bool = False
    invertible: bool = False
    deterministic: bool = True
    weights: str | None = None

    def __post_init__(self) -> None:
        if self.weights is not None and self.weights not in WEIGHT_KINDS:
            raise ValueError(f"weights: unknown kind {self.weights!r} (choose from {', '.join(WEIGHT_KINDS)})")


@dataclass
class MethodResult:
    """What one method delivered.

    Attributes:
        z: latents in the base generator's latent space, ``(n, latent_dim)``; None when the
            run is to draw them from ``sampler_factory`` (after every method has been fitted).
        x: samples ``g(z)``, ``(n, data_dim)``; None to let the run compute ``base.generate(z)``.
        weights: per-sample weights of ``x`` (DCTR), ``(n,)``; None for unweighted samples.
        generator: a generator to save and time (a refined generator), or None.
        models: further models to save, by name.
        diagnostics: what a user checks (acceptance, ESS, selected steps), JSON-serialisable.
        sampler_factory: ``() -> LatentSampler`` drawing this method's latents end to end; the
            latent reweighting protocol times it against the raw generator (inference cost).
    """

    z: Tensor | None = None
    x: Tensor | None = None
    weights: Tensor | None = None
    generator: "Generator | None" = None
    models: dict[str, object] = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    sampler_factory: "Callable[[], LatentSampler] | None" = None


class Method(ABC):
    """Base class of the refinement methods (one subclass per method, registered by name).

    Class attributes:
        name: the name users pass (``--methods name``).
        needs: a :class:`Needs`.
        family: ``"laser"`` (settings in ``cfg[name]``, scored by histograms) or ``"lrw"``
            (settings in ``cfg["lrw"][name]``, scored by the latent reweighting paper's metrics).
        settings_key: the preset section when it is not ``name`` (a variant sharing its base's).
        sampled_by: for a method that gives weighted samples, not a generator, the method that
            samples the same weights (what :func:`genrefine.refine` offers instead).
    """

    name: ClassVar[str]
    needs: ClassVar[Needs] = Needs()
    family: ClassVar[Literal["laser", "lrw"]] = "laser"
    settings_key: ClassVar[str | None] = None
    sampled_by: ClassVar[str | None] = None

    @abstractmethod
    def fit(self, ctx: "RunContext", **params) -> MethodResult:
        """Fit what the method learns on ``ctx`` and return its :class:`MethodResult`."""

    @classmethod
    def settings_path(cls) -> tuple[str, ...]:
        """Where this method's settings sit in a run configuration: ``(name,)``, or
        ``("lrw", name)`` for the latent reweighting family (a variant names its base's)."""
        key = cls.settings_key or cls.name
        return ("lrw", key) if cls.family == "lrw" else (key,)

    @classmethod
    def settings(cls, cfg: dict) -> dict:
        """A copy of this method's settings in the run configuration ``cfg`` ({} when none)."""
        section = cfg
        for key in cls.settings_path():
            section = section.get(key) or {}
        return dict(section)


#: every registered method by name, in registration order (the run's canonical order)
METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make ``cls`` available by ``cls.name``."""
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"method {cls.name!r} is registered twice ({METHODS[cls.name].__name__}, {cls.__name__})")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[Method]:
    """The registered method ``name``; ValueError listing the known names otherwise."""
    if name not in METHODS:
        raise ValueError(f"method: unknown {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name]


def check_method(generator, name: str) -> type[Method]:
    """Refuse, in one line, a method whose needs ``generator`` lacks; return its class.

    ``generator`` is a :class:`~genrefine.generators.base.Generator` (or its class): its flags
    ``differentiable``, ``invertible`` and ``stochastic`` are compared with the method's
    :class:`Needs`. Call it before any training.
    """
    if not isinstance(name, str):
        raise TypeError(f"method: expected one method's name (a string), got {type(name).__name__}")
    cls = get_method(name)
    needs = cls.needs
    family = getattr(generator, "family", type(generator).__name__)
    for flag in ("differentiable", "invertible"):
        if getattr(needs, flag) and not getattr(generator, flag, False):
            variant = f"{name}-omnifold"
            hint = (f"; {variant} samples OmniFold's latent weights, which need no gradient of g"
                    if flag == "differentiable" and variant in METHODS else "")
            raise ValueError(f"{name} needs a {flag} generator; '{family}' generators are not {flag}{hint}")
    if needs.deterministic and getattr(generator, "stochastic", False):
        raise ValueError(f"{name} needs weights that are a function of z, but '{family}' generators carry hidden "
                         f"randomness besides z; use one on OmniFold's latent weights "
                         f"({', '.join(n for n, c in METHODS.items() if c.needs.weights == 'omnifold')}) "
                         f"or on data-space weights (dctr)")
    return cls
