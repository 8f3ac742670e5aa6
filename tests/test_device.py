"""The CUDA path against the CPU (skipped cleanly where no GPU is present, as on CI; the fuller
device checks are ``python benchmarks/device_check.py``)."""

import pytest
import torch

from genrefine.experiments import shards as S
from genrefine.generators.realnvp import RealNVPGenerator

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@needs_cuda
def test_flow_on_cuda_matches_cpu():
    torch.manual_seed(0)
    cpu = RealNVPGenerator(2, 2, [16]).freeze()
    gpu = RealNVPGenerator(2, 2, [16])
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.freeze().to("cuda")
    z = torch.randn(10_000, 2)
    torch.testing.assert_close(gpu(z.cuda()).cpu(), cpu(z), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(gpu.log_prob(cpu(z).cuda()).cpu(), cpu.log_prob(cpu(z)), atol=1e-3, rtol=1e-4)


@needs_cuda
def test_streamed_sampling_on_cuda(tmp_path):
    torch.manual_seed(0)
    gen = RealNVPGenerator(2, 1, [8]).freeze().to("cuda")
    m = S.write_shards(gen, 70_000, str(tmp_path / "s"), seed=1, progress=False)
    assert m["complete"] and S.read_shards(str(tmp_path / "s")).shape == (70_000, 2)
