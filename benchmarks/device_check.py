"""The GPU path, checked against the CPU: run whenever a CUDA machine is at hand.

    python benchmarks/device_check.py [--device cuda] [--out docs/device_check.json]

Each check builds the same seeded model on the CPU and on the device and compares what they
compute, within a float32 tolerance, then times the device:

- a real NVP flow: ``g(z)``, ``inverse`` and ``log_prob`` on the same latents;
- the DCTR classifier: trained on each device from the same seed, its held-out BCE (the
  training differs by rounding, so the losses are compared within noise);
- a refined generator (refiner flow on a flow base): ``g(φ(y))`` on the same ``y``;
- streamed sampling throughput of the raw flow (rows per second, device and CPU).

Without CUDA it says so and exits 0 without writing anything (the CI machine has no GPU);
``--device cpu`` runs every check CPU against CPU, to try the script itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from genrefine.checkpoint import atomic_write_text
from genrefine.generators.realnvp import RealNVPGenerator
from genrefine.refine import RefinedGenerator
from genrefine.samplers.refiner_flow import RefinerFlow
from genrefine.weights.classifier import DensityRatioClassifier


def _same(a: torch.Tensor, b: torch.Tensor, atol: float) -> dict:
    diff = float((a.cpu() - b.cpu()).abs().max())
    return {"max_abs_diff": diff, "ok": diff <= atol}


def check_flow(dev: torch.device) -> dict:
    torch.manual_seed(0)
    cpu = RealNVPGenerator(2, 4, [32, 32]).freeze()
    gpu = RealNVPGenerator(2, 4, [32, 32]).freeze()
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.to(dev)
    z = torch.randn(100_000, 2)
    x = cpu(z)
    return {"forward": _same(x, gpu(z.to(dev)), 1e-4), "inverse": _same(cpu.inverse(x), gpu.inverse(x.to(dev)), 1e-4),
            "log_prob": _same(cpu.log_prob(x), gpu.log_prob(x.to(dev)), 1e-3)}


def check_classifier(dev: torch.device) -> dict:
    g = torch.Generator().manual_seed(1)
    data = torch.randn(40_000, 2, generator=g) * 0.8 + 0.5
    gen = torch.randn(40_000, 2, generator=g)
    losses = []
    for where in ("cpu", dev):
        torch.manual_seed(2)
        clf = DensityRatioClassifier(2, hidden=64, layers=4).to(where)
        clf.fit(data.to(where), gen.to(where), epochs=20, batch_size=2000, progress=False)
        losses.append(clf.diagnostics_["bce"])
    a, b = losses
    return {"held_out_bce": {"cpu": a, str(dev): b}, "ok": abs(a - b) <= 0.01}


def check_refined(dev: torch.device) -> dict:
    torch.manual_seed(3)
    base = RealNVPGenerator(2, 2, [16]).freeze()
    phi = RefinerFlow(2, transforms=2, hidden=[16, 16], bins=8)
    cpu = RefinedGenerator(base, phi).freeze()
    gpu = RefinedGenerator(RealNVPGenerator(2, 2, [16]), RefinerFlow(2, transforms=2, hidden=[16, 16], bins=8))
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.freeze().to(dev)
    y = torch.randn(50_000, 2)
    return {"forward": _same(cpu.base(cpu.refiner(y)), gpu.base(gpu.refiner(y.to(dev))), 1e-3)}


def throughput(dev: torch.device, n: int = 2_000_000) -> dict:
    out = []
    for where in ("cpu", dev):
        torch.manual_seed(4)
        flow = RealNVPGenerator(2, 12, [48, 48, 48]).freeze().to(where)
        flow.sample(1000)
        if torch.device(where).type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        flow.sample(n)
        if torch.device(where).type == "cuda":
            torch.cuda.synchronize()
        out.append(n / (time.perf_counter() - t0))
    return {"rows_per_second": {"cpu": out[0], str(dev): out[1]}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default="docs/device_check.json")
    args = ap.parse_args()
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: nothing checked, nothing written (--device cpu runs the checks CPU against CPU)")
        return 0
    rec = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "torch": torch.__version__, "flow": check_flow(dev),
           "classifier": check_classifier(dev), "refined": check_refined(dev), "throughput": throughput(dev)}
    ok = all(v.get("ok", True) for part in ("flow", "refined") for v in rec[part].values()) and rec["classifier"]["ok"]
    rec["ok"] = ok
    atomic_write_text(args.out, json.dumps(rec, indent=1))
    print(json.dumps(rec, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
