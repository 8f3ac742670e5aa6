"""LaSeR's refiners (LaSeR Sec. 3.2): a GAN ``φ(y)`` with auxiliary noise (``laser``), or a
spline flow (``laser-flow``), trained on the DCTR-weighted latents; the ``-omnifold`` variants
(:mod:`genrefine.methods.omnifold`) train on OmniFold's weighted latents."""

from __future__ import annotations

from genrefine.methods.base import register_method
from genrefine.methods.refiner import RefinerMethod
from genrefine.samplers.refiner_flow import RefinerFlow
from genrefine.samplers.refiner_gan import RefinerGAN


@register_method
class LaSeR(RefinerMethod):
    """The refiner GAN (:class:`~genrefine.samplers.refiner_gan.RefinerGAN`), with its latent
    rejection step and, with ``data_rejection``, the data-space one."""

    name = "laser"
    refiner = RefinerGAN
    arch_keys = ("aux_dim", "hidden", "layers", "drs_hidden", "drs_layers")


@register_method
class LaSeRFlow(RefinerMethod):
    """The refiner flow (:class:`~genrefine.samplers.refiner_flow.RefinerFlow`)."""

    name = "laser-flow"
    refiner = RefinerFlow
    arch_keys = ("transforms", "hidden", "bins")
