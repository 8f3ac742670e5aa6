"""The shared training loops refuse bad arguments and unusable checkpoints in one line, stop
on a non-finite loss naming the epoch and the value, and resume bit-identically."""

import json
import math

import pytest
import torch
from torch import nn

from genrefine.checkpoint import atomic_save_tensors, module_state
from genrefine.training import regress, train_loop

pytestmark = pytest.mark.usefixtures("one_thread")


def _problem(d=3, n=256, lr=1e-2, opt=torch.optim.Adam):
    """A seeded linear regression: data, net, optimizer and the step the loop calls."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, d, generator=g)
    y = x @ torch.arange(1.0, d + 1) + 0.1 * torch.randn(n, generator=g)
    torch.manual_seed(2)
    net = nn.Linear(d, 1)
    optim = opt(net.parameters(), lr=1e-3)
    optim.param_groups[0]["lr"] = lr  # past torch's own checks, as a scheduler or a user could set it

    def step(xb, yb):
        loss = (net(xb).squeeze(-1) - yb).pow(2).mean()
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        return {"mse": loss.item()}
    return (x, y), net, optim, step


def _fit(epochs=4, batch_size=32, **kw):
    data, net, opt, step = _problem(**{k: kw.pop(k) for k in ("d", "lr", "opt") if k in kw})
    hist = train_loop(step, data, {"net": net}, {"adam": opt}, epochs, batch_size, progress=False, **kw)
    return net, hist


@pytest.mark.parametrize("kw, words", [
    ({"epochs": -1}, "epochs must be a whole number >= 0, got -1"),
    ({"epochs": 2.5}, "epochs must be a whole number"),
    ({"epochs": True}, "epochs must be a whole number"),
    ({"batch_size": 0}, "batch_size must be a whole number >= 1, got 0"),
    ({"batch_size": -64}, "batch_size must be a whole number >= 1"),
    ({"gamma": 0.0}, r"gamma .* must lie in \(0, 1\]"),
    ({"gamma": 1.5}, r"gamma .* must lie in \(0, 1\]"),
    ({"gamma": float("nan")}, r"gamma .* must lie in \(0, 1\]"),
    ({"lr": 0.0}, "learning rate of 'adam' must be a number in \\(0, 1\\]"),
    ({"lr": -1e-3}, "learning rate of 'adam' must be a number in \\(0, 1\\]"),
    ({"lr": float("inf")}, "learning rate of 'adam' must be a number in \\(0, 1\\]"),
    ({"checkpoint_every": 0}, "checkpoint_every must be a whole number >= 1"),
])
def test_bad_arguments_are_refused_in_one_line(kw, words):
    with pytest.raises(ValueError, match=words) as err:
        _fit(**kw)
    assert "\n" not in str(err.value) and str(err.value).startswith("training: ")


def test_zero_epochs_and_whole_floats_are_accepted():
    assert _fit(epochs=0)[1] == []
    assert len(_fit(epochs=2.0)[1]) == 2


def test_divergence_stops_training_naming_the_epoch_and_the_loss(tmp_path):
    ckpt = str(tmp_path / "net")
    with pytest.raises(ValueError, match=r"regression: (non-finite|exploded) loss at epoch \d+ of 20: mse = ") as err:
        _fit(epochs=20, lr=1.0, opt=torch.optim.SGD, desc="regression", checkpoint=ckpt, checkpoint_every=1)
    epoch = int(str(err.value).split("epoch ")[1].split(" ")[0])
    assert "\n" not in str(err.value) and epoch < 20
    info = json.loads(open(ckpt + ".json").read()) if epoch > 1 else {"epoch": 0}
    assert info["epoch"] == epoch - 1  # the last checkpoint is the last finite epoch's


def test_nan_in_one_batch_is_seen_at_its_epoch():
    calls = [0]

    def step(xb):
        calls[0] += 1
        return {"loss": math.nan if calls[0] == 11 else 1.0}  # batch 3 of epoch 3 (4 batches an epoch)
    net = nn.Linear(1, 1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="at epoch 3 of 5: loss = nan"):
        train_loop(step, (torch.zeros(8, 1),), {"net": net}, {"adam": opt}, 5, 2, progress=False, desc="critic")


def test_resume_continues_bit_identically(tmp_path):
    full, _ = _fit(epochs=6)
    ckpt = str(tmp_path / "net")

    def interrupt(epoch):
        if epoch == 3:  # after the epoch-3 checkpoint, during the fourth epoch's bookkeeping
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        _fit(epochs=6, checkpoint=ckpt, checkpoint_every=3, on_epoch_end=interrupt)
    resumed, hist = _fit(epochs=6, checkpoint=ckpt, checkpoint_every=3)
    assert len(hist) == 6
    for a, b in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_mismatched_or_damaged_checkpoints_are_refused_in_one_line(tmp_path):
    ckpt = str(tmp_path / "net")
    _fit(epochs=2, checkpoint=ckpt)
    with pytest.raises(ValueError, match=r"cannot resume from .*net\.safetensors: 'net\.weight' has shape \(1, 4\), "
                                         r"the checkpoint \(1, 3\)") as err:
        _fit(epochs=4, d=4, checkpoint=ckpt)
    assert "\n" not in str(err.value)
    raw = open(ckpt + ".safetensors", "rb").read()
    start = 8 + int.from_bytes(raw[:8], "little")  # after the header: the tensors' bytes
    damaged = bytearray(raw)
    damaged[start + 1] ^= 0xFF
    open(ckpt + ".safetensors", "wb").write(bytes(damaged))  # payload overwritten
    with pytest.raises(ValueError, match="do not match their recorded hash"):
        _fit(epochs=4, checkpoint=ckpt)
    open(ckpt + ".safetensors", "wb").write(raw[: len(raw) // 2])  # truncated
    with pytest.raises(ValueError, match="unreadable training checkpoint") as err:
        _fit(epochs=4, checkpoint=ckpt)
    assert "\n" not in str(err.value)


def test_checkpoint_written_before_the_hash_still_resumes(tmp_path):
    data, net, opt, step = _problem()
    train_loop(step, data, {"net": net}, {"adam": opt}, 2, 32, progress=False)
    tensors, info = module_state({"net": net}, {"adam": opt})
    tensors["rng.cpu"] = torch.get_rng_state()
    info.update(epoch=2, history=[{"mse": 1.0}] * 2, sched_last_epoch=[2])
    atomic_save_tensors(tensors, str(tmp_path / "old.safetensors"))  # the former format: JSON beside
    (tmp_path / "old.json").write_text(json.dumps(info))
    _, hist = _fit(epochs=3, checkpoint=str(tmp_path / "old"))
    assert [h.get("epoch") for h in hist][-1] == 3 and len(hist) == 3


def test_regress_refuses_bad_arguments_and_non_finite_losses():
    x = torch.randn(200, 2)
    net = nn.Linear(2, 1)

    def fit(target, **kw):
        args = {"steps": 50, "batch_size": 16, "lr": 1e-2, **kw}
        regress(lambda v: net(v).squeeze(-1), net.parameters(), x, target, args["steps"], args["batch_size"],
                args["lr"], "student", progress=False)
    fit(x.sum(1))
    bad = [({"steps": -1}, "steps"), ({"batch_size": 0}, "batch_size"), ({"lr": float("nan")}, "learning rate")]
    for kw, words in bad:
        with pytest.raises(ValueError, match=f"student: {words}"):
            fit(x.sum(1), **kw)
    t = x.sum(1)
    t[7] = math.inf
    with pytest.raises(ValueError, match=r"student: non-finite loss by step \d+ of 50"):
        fit(t)


def test_an_early_stop_ends_training_and_a_resume_stops_there_too(tmp_path):
    from genrefine.training import STOP

    net = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x = torch.randn(64, 2)

    def step(xb):
        loss = net(xb).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    seen = []

    def watch(epoch):
        seen.append(epoch)
        return {STOP: epoch == 2, "score": float(epoch)}

    ck = str(tmp_path / "ck")
    hist = train_loop(step, (x,), {"net": net}, {"adam": opt}, epochs=10, batch_size=16, progress=False,
                      checkpoint=ck, on_epoch_end=watch)
    assert [h["epoch"] for h in hist] == [1, 2, 3] and seen == [0, 1, 2]
    assert STOP not in hist[-1] and hist[-1]["score"] == 2.0
    again = train_loop(step, (x,), {"net": net}, {"adam": opt}, epochs=10, batch_size=16, progress=False,
                       checkpoint=ck, on_epoch_end=watch)
    assert len(again) == 3 and seen == [0, 1, 2]  # resumed at its stop: no epoch more
