"""Generators size their sampling chunks from their largest activation (genrefine.nn)."""

from __future__ import annotations

import torch
from torch import nn

from genrefine.generators.adapters import as_generator
from genrefine.nn import CHUNK_BYTES, CHUNK_ROWS, largest_activation, rows_per_chunk


def test_largest_activation_counts_values_per_row_of_every_leaf():
    net = nn.Sequential(nn.Linear(2, 128), nn.ReLU(), nn.Linear(128, 7))
    assert largest_activation(net, torch.zeros(3, 2)) == 128
    conv = nn.Sequential(nn.Unflatten(1, (1, 4, 4)), nn.Conv2d(1, 8, 3, padding=1), nn.Flatten())
    assert largest_activation(conv, torch.zeros(5, 16)) == 8 * 4 * 4


def test_rows_per_chunk_fits_the_cache_within_its_limits():
    low, high = CHUNK_ROWS["cpu"]
    assert rows_per_chunk(128, "cpu") == CHUNK_BYTES["cpu"] // (128 * 4) == 4096
    assert rows_per_chunk(1, "cpu") == high
    assert rows_per_chunk(10**7, "cpu") == low
    assert rows_per_chunk(128, torch.device("cuda", 0)) == CHUNK_BYTES["cuda"] // 512
    assert rows_per_chunk(1, torch.device("cuda", 0)) == CHUNK_ROWS["cuda"][1]


def test_a_generator_measures_its_chunk_without_touching_its_state_or_the_random_stream():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 3))
    net.train()
    gen = as_generator(net, latent_dim=2)
    bn = net[1]
    before = (bn.running_mean.clone(), bn.num_batches_tracked.clone(), torch.random.get_rng_state())
    assert gen.chunk_size == rows_per_chunk(256, "cpu") == 2048
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.num_batches_tracked, before[1])
    assert torch.equal(torch.random.get_rng_state(), before[2])
    z = torch.randn(5000, 2)
    assert torch.allclose(gen.generate(z), gen.generate(z, batch_size=5000), atol=1e-5)


def test_a_stochastic_generator_keeps_the_default_chunk():
    def sim(z, rng):
        return z + rng.normal(size=z.shape)

    gen = as_generator(sim, latent_dim=2, stochastic=True)
    assert gen.chunk_size == gen.DEFAULT_CHUNK


def test_measuring_keeps_every_submodule_in_its_own_mode():
    net = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    net.train()
    net[1].eval()  # mixed modes, as a user may leave them
    largest_activation(net, torch.zeros(2, 2))
    assert net.training and net[0].training and not net[1].training and net[2].training


def test_a_model_that_draws_noise_does_not_move_the_stream_when_measured():
    class Noisy(nn.Module):
        def forward(self, z):
            return z + 0.0 * torch.randn_like(z)

    gen = as_generator(Noisy(), latent_dim=2)
    torch.manual_seed(5)
    state = torch.random.get_rng_state()
    assert gen.chunk_size >= CHUNK_ROWS["cpu"][0]
    assert torch.equal(torch.random.get_rng_state(), state)
