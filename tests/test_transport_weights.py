"""Transport weights (the exact W1-optimal bounded reweighting) on cases with known answers."""

import numpy as np
import pytest
import torch

from genrefine.generators.base import Generator
from genrefine.weights.latent_importance import LatentImportanceNetwork
from genrefine.weights.transport import fit_transport, transport_weights

MU = torch.tensor([0.6, 0.0])


class Identity(Generator):
    def forward(self, z):
        return z


def two_clusters(n_left: int, n_right: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.randn(n_left + n_right, 2, generator=g)
    x[:n_left, 0] -= 3.0
    x[n_left:, 0] += 3.0
    return x


def test_transport_weights_move_each_clusters_mass():
    """Generated 1000 / 1000 in two far clusters, data 1500 / 500: moving mass between the
    clusters costs 6 per unit, so the optimum gives every cluster the data's share exactly
    (mean weight 1.5 and 0.5), with every weight in [0, m] and mean 1."""
    xg, xr = two_clusters(1000, 1000, 0), two_clusters(1500, 500, 1)
    w = transport_weights(xg, xr, m=3.0)
    assert w.shape == (2000,) and float(w.min()) >= 0 and float(w.max()) <= 3.0 + 1e-9
    assert float(w.mean()) == pytest.approx(1.0, abs=1e-9)
    assert float(w[:1000].mean()) == pytest.approx(1.5, abs=1e-6)
    assert float(w[1000:].mean()) == pytest.approx(0.5, abs=1e-6)


def test_transport_weights_respect_the_bound_and_overflow_locally():
    """Data 1800 / 200 against generated 1000 / 1000 at m = 1.5: the left cluster can carry at
    most 1.5 x 0.5 = 0.75 of the mass, so all its points are filled to m and the data's
    remaining 0.9 - 0.75 has to travel to the right cluster (right mean (1 - 0.75) / 0.5 = 0.5)."""
    xg, xr = two_clusters(1000, 1000, 0), two_clusters(1800, 200, 1)
    w = transport_weights(xg, xr, m=1.5)
    assert float(w[:1000].min()) == pytest.approx(1.5, abs=1e-6)
    assert float(w[1000:].mean()) == pytest.approx(0.5, abs=1e-6)
    # at m = 1 nothing can move: every weight is 1
    assert torch.allclose(transport_weights(xg, xr, m=1.0), torch.ones(2000, dtype=xg.dtype))


def test_transport_weights_bad_input():
    x = torch.randn(10, 2)
    with pytest.raises(ValueError, match="m must be"):
        transport_weights(x, x, m=0.5)
    with pytest.raises(ValueError, match="empty"):
        transport_weights(x[:0], x, m=2.0)


def test_fit_transport_learns_a_known_reweighting():
    """Base N(0, I), data N(mu, I): the W1-optimal reweighting is the tilt exp(mu.z - |mu|^2/2)
    (it exceeds m = 3 on 1.7% of the prior only). The latent net regressed on chunks of exact
    transport weights must follow it: the reweighted mean moves to mu and the weights correlate
    with the tilt; a wrong sign or a flat net fails both."""
    torch.manual_seed(0)
    data = torch.randn(20_000, 2) + MU
    net = LatentImportanceNetwork(2, hidden=32, layers=3, m=3.0)
    stats = fit_transport(net, Identity(2, 2).freeze(), data, m=3.0, passes=3, chunk=2000, epochs=30,
                          progress=False)
    assert stats["pairs"] == 60_000 and 0 < stats["used_fraction"] < 1
    z = torch.randn(50_000, 2)
    with torch.no_grad():
        w = net(z).clamp(max=3.0)
    tilt = torch.exp(z @ MU - 0.5 * MU.pow(2).sum())
    assert float(w.mean()) == pytest.approx(1.0, abs=0.08)
    assert float((w * z[:, 0]).sum() / w.sum()) == pytest.approx(0.6, abs=0.12)
    assert abs(float((w * z[:, 1]).sum() / w.sum())) < 0.08
    assert np.corrcoef(w.numpy(), tilt.clamp(max=3.0).numpy())[0, 1] > 0.9


def test_transport_pairs_do_not_depend_on_the_thread_count():
    """The plans are solved side by side on torch's threads; the generated points are drawn in
    order first, so a seeded draw gives the same pairs on one thread and on two."""
    from genrefine.weights.transport import transport_pairs

    data = torch.randn(3000, 2) + MU
    before = torch.get_num_threads()
    out = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            torch.manual_seed(4)
            out.append(transport_pairs(Identity(2, 2).freeze(), data, m=3.0, passes=2, chunk=700, progress=False))
    finally:
        torch.set_num_threads(before)
    (z1, w1), (z2, w2) = out
    assert len(w1) == 2 * 4 * 700 and torch.equal(z1, z2) and torch.equal(w1, w2)
    assert float(w1.mean()) == pytest.approx(1.0, abs=1e-5) and 0 <= float(w1.min()) and float(w1.max()) <= 3.0


def test_map_solves_keeps_the_order_of_its_inputs():
    from genrefine.threads import map_solves

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert map_solves(lambda v: v * v, range(50)) == [v * v for v in range(50)]
        assert map_solves(lambda v: v, []) == []
    finally:
        torch.set_num_threads(before)


class TiltTeacher(torch.nn.Module):
    """A data-space teacher with a known answer: the tilt exp(mu.x - |mu|^2/2) read at x = G(z)."""

    def forward(self, x):
        return torch.exp(x @ MU - 0.5 * MU.pow(2).sum())


def test_distillation_stops_early_and_keeps_its_best_epoch():
    """A 2-d student distilled from the tilt: with held-out draws it stops before its 40 epochs
    once they stop improving, keeps the best epoch's weights (its recorded held-out error is the
    final net's), and still follows the teacher as closely as a fit that runs every epoch."""
    from genrefine.weights.latent_importance.distillation import distil

    gen = Identity(2, 2).freeze()
    out = {}
    for patience in (None, 2):
        torch.manual_seed(0)
        net = LatentImportanceNetwork(2, hidden=32, layers=3, m=3.0)
        out[patience] = (distil(net, gen, TiltTeacher(), n=20_000, epochs=40, patience=patience), net)
    full, (early, net) = out[None][0], out[2]
    assert full["epochs_run"] == 40 and early["epochs"] == 40
    assert 3 <= early["epochs_run"] < 40
    assert net.regress_["best_epoch"] <= early["epochs_run"]
    assert full["corr"] > 0.98 and early["corr"] > full["corr"] - 0.01


def test_regression_with_held_out_rows_returns_its_best_epoch():
    """regress_epochs with val rows: the weights it returns are those of the epoch whose
    held-out error it records (re-measured exactly), and no later epoch beat it by 1%."""
    from genrefine.weights.transport import _held_out_error, regress_epochs

    torch.manual_seed(1)
    z, zv = torch.randn(8000, 2), torch.randn(2000, 2)
    t, tv = TiltTeacher()(z).clamp(max=3.0), TiltTeacher()(zv).clamp(max=3.0)
    net = regress_epochs(LatentImportanceNetwork(2, hidden=16, layers=2, m=3.0), z, t, 25, 500, val=(zv, tv), patience=2)
    rec = net.regress_
    assert _held_out_error(net, zv, tv) == pytest.approx(rec["val_mse"], rel=1e-6)
    assert rec["best_epoch"] <= rec["epochs_run"] <= 25
    assert rec["val_mse"] < 0.1 * float(tv.var())
