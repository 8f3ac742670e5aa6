"""What one run produced, as :func:`~genrefine.experiments.run.run_refinement` returns it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class RefinementResult:
    """Everything one run produced: unweighted samples and their latents per method, the
    weights of weighted methods (DCTR), models, the samplers of sampler methods, the metrics
    written to ``metrics.json`` and the layout of one data row (``data_shape``)."""

    samples: dict[str, np.ndarray] = field(default_factory=dict)
    latents: dict[str, np.ndarray] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    models: dict[str, object] = field(default_factory=dict)
    samplers: dict[str, Callable] = field(default_factory=dict)  # method -> () -> LatentSampler (not saved)
    metrics: dict = field(default_factory=dict)
    truth: np.ndarray | None = None
    data_shape: tuple[int, ...] | None = None

    @property
    def dctr_weights(self) -> np.ndarray | None:
        """The DCTR method's per-sample weights (None when it did not run)."""
        return self.weights.get("dctr")

    @property
    def ranking(self) -> dict | None:
        """The methods ordered by the run's ranking score, and the recommended one."""
        return self.metrics.get("ranking")
