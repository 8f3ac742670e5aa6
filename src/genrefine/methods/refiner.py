"""The LaSeR refiner step shared by ``laser`` and ``laser-flow`` (LaSeR Sec. 3.2-3.3): train a
refiner ``z = φ(y)`` on the weighted latents ``(z, w(g(z)))``, compose ``x = g(φ(y))``, and
optionally refine the refined generator again (a new classifier against it, its own latents)."""

from __future__ import annotations

import contextlib
import warnings
from typing import ClassVar

from genrefine.generators.base import Generator
from genrefine.methods.base import Method, MethodResult, Needs
from genrefine.methods.context import RunContext
from genrefine.methods.estimators import ClassifierFit
from genrefine.refine import RefinedGenerator
from genrefine.samplers.base import weight_diagnostics


class RefinerMethod(Method):
    """Base of the refiner methods: a subclass names its refiner class and which settings build
    it (``arch_keys``); the other settings go to the refiner's ``fit``. ``data_rejection``
    (settings of :meth:`RefinedGenerator.fit_data_rejection`) adds the last correction in data
    space. ``ctx.iterations`` refiners are stacked, each on the previous refined generator."""

    needs = Needs(weights="dctr", deterministic=False)
    refiner: ClassVar[type[Generator]]
    arch_keys: ClassVar[tuple[str, ...]]

    def fit(self, ctx: RunContext, data_rejection: dict | None = None, **settings) -> MethodResult:
        arch = {k: settings.pop(k) for k in self.arch_keys if k in settings}
        gen, iterations = ctx.base, []
        for k in range(ctx.iterations):
            tag = f"_{self.name}_it{k + 1}"
            fit_k = self._weighted_latents(ctx, gen, tag, first=k == 0)
            # its own classifiers' warnings (the data-space step's, trained against the refined
            # samples) are not about the run's classifier, whose diagnostics the report shows
            with _named_warnings(f"{self.name} (its own step, against the refined samples)"):
                gen, it = self._refine_once(ctx, gen, fit_k, tag, arch, settings, data_rejection)
            iterations.append(it)
        y, x = ctx.timed(f"sample_{self.name}", lambda: gen.sample_with_latents(ctx.n_samples))
        return MethodResult(z=gen.base_latent(y), x=x, generator=gen, diagnostics={"iterations": iterations})

    def _weighted_latents(self, ctx: RunContext, gen: Generator, tag: str, first: bool) -> ClassifierFit:
        """The latents ``z`` and weights the refiner trains on: the run's shared estimator for
        the base, a new one against ``gen`` for a later iteration (on its own latent)."""
        if self.needs.weights == "omnifold":
            return ctx.omnifold() if first else ctx.fit_omnifold(gen, tag)
        return ctx.classifier() if first else ctx.fit_classifier(gen, tag)

    def _refine_once(self, ctx: RunContext, gen: Generator, fit: ClassifierFit, tag: str, arch: dict,
                     settings: dict, data_rejection: dict | None) -> tuple[RefinedGenerator, dict]:
        phi = self.refiner(gen.latent_dim, **arch).to(ctx.device)
        ctx.timed(f"train{tag}", lambda: phi.fit(fit.z, fit.w, progress=ctx.progress,
                                                 checkpoint=ctx.ckpt("refiner" + tag), **settings))
        refined = RefinedGenerator(gen, phi).freeze()
        it = {"weights": weight_diagnostics(fit.w), "train_seconds": ctx.timings[f"train{tag}"],
              **({"rejection": phi.drs_diagnostics_} if hasattr(phi, "drs_diagnostics_") else {})}
        if data_rejection:  # last correction in data space: the classifier trained on against this refiner
            c = ctx.cfg["classifier"]
            ctx.timed(f"train{tag}_data_rejection", lambda: refined.fit_data_rejection(
                ctx.x_train, classifier=fit.classifier, batch_size=c["batch_size"], lr=c["lr"], gamma=c["gamma"],
                generated_per_data=c.get("generated_per_data", 1), progress=ctx.progress,
                checkpoint=ctx.ckpt("data_rejection" + tag), **data_rejection))
            it["data_rejection"] = refined.data_rejection_diagnostics_
        return refined, it


@contextlib.contextmanager
def _named_warnings(name: str):
    """Warnings raised in the block, given again with ``name:`` in front (a refiner's data-space
    step trains a classifier of its own; a bare "classifier weights are degenerate" would read
    as the run's classifier)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            held = list(caught)
    for w in held:
        warnings.warn(f"{name}: {w.message}", w.category, stacklevel=3)
