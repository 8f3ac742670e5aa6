"""The introduction paper's training monitor (its Fig. 11): the energy distance between fresh
samples of the generator and held-out data rows, once per epoch.

A GAN's own losses say little about how close it is (they are a saddle point's values); this
number does, for every family alike. The latents come from the monitor's own seeded stream,
so watching a run does not change its training draws.
"""

from __future__ import annotations

import torch

from genrefine.metrics.distances import energy_distance
from genrefine.validation import check_array


class EnergyMonitor:
    """``monitor(epoch) -> {"energy": E}`` for :func:`~genrefine.training.train_loop`'s
    ``on_epoch_end``: the energy distance of ``n`` samples of ``gen`` to up to ``n`` rows of
    ``held_out`` (the same latents every epoch, so the curve shows the model, not the draw)."""

    def __init__(self, gen, held_out, n: int = 1000, seed: int = 0) -> None:
        rows = check_array(held_out, name="monitor rows", dim=gen.data_dim, min_rows=2)
        self.gen = gen
        self.real = torch.as_tensor(rows[: int(n)]).float()
        rng = torch.Generator().manual_seed(int(seed))
        self.z = torch.randn(min(int(n), len(rows)), gen.latent_dim, generator=rng)

    @torch.no_grad()
    def __call__(self, epoch: int) -> dict:
        was_training = self.gen.training
        self.gen.eval()
        x = self.gen.generate(self.z.to(self.gen.device)).cpu()
        self.gen.train(was_training)
        return {"energy": energy_distance(x.double(), self.real.double())}
