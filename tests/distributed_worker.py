"""Run by tests/test_distributed.py under ``torchrun`` (and alone): full-batch gradient descent
through :func:`genrefine.training.train_loop` on a fixed linear regression, and a GAN-style
step that draws its own noise; prints rank 0's results as one JSON line."""

import json
import os
import sys

import torch

from genrefine import distributed
from genrefine.training import train_loop


def main() -> None:
    distributed.init("cpu")
    n = int(sys.argv[1])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(n, 1, generator=g)
    torch.manual_seed(1 + distributed.rank_and_size()[0])  # ranks start apart: the loop must align them
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)

    def step(xb, yb):
        loss = (net(xb) - yb).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"mse": loss.item()}

    hist = train_loop(step, (x, y), {"net": net}, {"sgd": opt}, epochs=5, batch_size=n, gamma=1.0, progress=False)
    noise = []

    def noisy(xb):  # what a GAN step draws: must differ between the ranks
        noise.append(torch.randn(1).item())
        return {"zero": 0.0}

    train_loop(noisy, (x,), {}, {}, epochs=1, batch_size=n, gamma=1.0, progress=False)
    after = torch.randn(1).item()  # the ranks are back on one stream
    rank, world = distributed.rank_and_size()
    rec = {"weight": net.weight.detach().flatten().tolist(), "bias": float(net.bias.detach()), "mse": [h["mse"] for h in hist],
           "noise": distributed.gather(noise[0]), "after": distributed.gather(after), "world": world}
    distributed.finish()
    if rank == 0:
        print(json.dumps(rec))
    if world > 1:
        distributed.leave(0)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
