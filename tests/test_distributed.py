"""Training and refining under torchrun: 2-process gloo jobs on the CPU."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(__file__)
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def torchrun(*args: str, procs: int = 2, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                           str(procs), *args], capture_output=True, text=True, env=ENV, timeout=timeout)


def worker(n: int, procs: int) -> dict:
    script = os.path.join(HERE, "distributed_worker.py")
    run = torchrun(script, str(n), procs=procs) if procs > 1 else subprocess.run(
        [sys.executable, script, str(n)], capture_output=True, text=True, env=ENV, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("n", [100, 101])  # 101: the ranks hold 51 and 50 rows of each batch
def test_two_ranks_take_the_one_process_step(n):
    # full-batch gradient descent: the averaged, share-weighted gradients of the two halves are
    # the whole batch's gradient, so both runs take the same five steps from rank 0's start
    one, two = worker(n, 1), worker(n, 2)
    assert two["world"] == 2 and one["world"] == 1
    np.testing.assert_allclose(two["weight"], one["weight"], atol=1e-6)
    np.testing.assert_allclose(two["bias"], one["bias"], atol=1e-6)
    np.testing.assert_allclose(two["mse"], one["mse"], rtol=1e-5)  # the logged loss is the whole batch's
    assert two["noise"][0] != two["noise"][1]  # each rank draws its own noise in a step
    assert two["after"][0] == two["after"][1]  # and the ranks share one stream again afterwards


def test_refine_under_torchrun_writes_once(tmp_path):
    out = tmp_path / "run"
    run = torchrun("-m", "genrefine", "refine", "--data", "gaussians4", "--methods", "base,dctr,rejection",
                   "--n-samples", "4000", "--set", "base.epochs=2", "--set", "classifier.epochs=2", "--quiet",
                   "--out", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("wrote ") == 1  # rank 0 reports and writes
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["scores"]) == {"base", "dctr", "rejection"}
    assert sorted(os.listdir(tmp_path)) == ["run"]
    again = torchrun("-m", "genrefine", "refine", "--data", "gaussians4", "--methods", "base", "--n-samples", "4000",
                     "--out", str(out / "metrics.json"))
    assert again.returncode != 0
    assert again.stderr.count("error: ") == 1, again.stderr[-2000:]  # rank 0's line only
