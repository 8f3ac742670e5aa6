"""Streamed sampling into shards (experiments/shards.py, ``genrefine sample --out DIR``): the rows
depend on the seed alone, whatever the shard size; an interrupted run resumes without redoing
finished shards; foreign or mismatched directories are refused."""

import json
import os

import numpy as np
import pytest

from genrefine import save_generator
from genrefine.cli import main
from genrefine.experiments import shards as S
from genrefine.generators.adapters import as_generator
from genrefine.generators.realnvp import RealNVPGenerator

pytestmark = pytest.mark.usefixtures("one_thread")

N = 2 * S.BLOCK + 5000  # three blocks, the last one partial


def _simulator():
    # numpy, with hidden noise from the generator's own stream: reseeded per block
    return as_generator(lambda z, rng: 2.0 * z + rng.normal(size=z.shape), latent_dim=2, stochastic=True, seed=3)


def test_the_same_rows_whatever_the_shard_size(tmp_path):
    gen = _simulator()
    cuts = {}
    for rows in (40_000, S.BLOCK, 10 ** 6):
        m = S.write_shards(gen, N, str(tmp_path / f"s{rows}"), seed=7, shard_rows=rows, progress=False)
        assert m["complete"] and m["rows_written"] == N and len(m["shards"]) == -(-N // rows)
        cuts[rows] = S.read_shards(str(tmp_path / f"s{rows}"))
    first = cuts[40_000]
    assert first.shape == (N, 2) and all(np.array_equal(first, x) for x in cuts.values())
    other = S.write_shards(gen, N, str(tmp_path / "seed8"), seed=8, shard_rows=S.BLOCK, progress=False)
    assert other["complete"] and not np.array_equal(S.read_shards(str(tmp_path / "seed8")), first)
    # the samples follow the generator: x = 2 z + noise has variance 5 per coordinate
    assert np.allclose(first.var(0), 5.0, rtol=0.03) and abs(first.mean()) < 0.02


def test_an_interrupted_run_resumes_after_its_finished_shards(tmp_path, monkeypatch):
    gen, out = _simulator(), str(tmp_path / "run")
    whole = S.write_shards(gen, N, str(tmp_path / "whole"), seed=1, shard_rows=S.BLOCK, progress=False)
    real = S.draw_block
    calls = []

    def interrupted(g, seed, block, n):
        calls.append(block)
        if block == 2:
            raise KeyboardInterrupt
        return real(g, seed, block, n)

    monkeypatch.setattr(S, "draw_block", interrupted)
    with pytest.raises(KeyboardInterrupt):
        S.write_shards(gen, N, out, seed=1, shard_rows=S.BLOCK, progress=False)
    manifest = json.loads(open(os.path.join(out, S.MANIFEST)).read())
    assert not manifest["complete"] and [s["file"] for s in manifest["shards"]] == ["shard_00000.npy",
                                                                                     "shard_00001.npy"]
    stamp = os.stat(os.path.join(out, "shard_00000.npy")).st_mtime_ns
    with pytest.raises(ValueError, match="not complete"):
        S.read_shards(out)
    monkeypatch.setattr(S, "draw_block", real)
    calls.clear()
    monkeypatch.setattr(S, "draw_block", lambda g, seed, block, n: (calls.append(block), real(g, seed, block, n))[1])
    done = S.write_shards(gen, N, out, seed=1, shard_rows=S.BLOCK, progress=False)
    assert calls == [2] and done["complete"]  # only the missing block was drawn
    assert os.stat(os.path.join(out, "shard_00000.npy")).st_mtime_ns == stamp
    assert np.array_equal(S.read_shards(out), S.read_shards(str(tmp_path / "whole")))
    assert [s["sha256"] for s in done["shards"]] == [s["sha256"] for s in whole["shards"]]


def test_directories_that_are_not_this_request_are_refused(tmp_path):
    gen = _simulator()
    out = str(tmp_path / "run")
    S.write_shards(gen, 1000, out, seed=1, progress=False)
    with pytest.raises(ValueError, match="another request.*seed 1 != 2"):
        S.write_shards(gen, 1000, out, seed=2, progress=False)
    np.save(os.path.join(out, "shard_00000.npy"), np.zeros((1000, 2), np.float32))  # tampered
    with pytest.raises(ValueError, match="does not match"):
        S.write_shards(gen, 1000, out, seed=1, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="no sampling run made"):
        S.write_shards(gen, 1000, str(foreign), seed=1, progress=False)
    assert (foreign / "notes.txt").read_text() == "mine" and sorted(os.listdir(foreign)) == [".genrefine.lock",
                                                                                             "notes.txt"]
    broken = as_generator(lambda z: np.where(np.abs(z) > 3.5, np.nan, z), latent_dim=2)
    with pytest.raises(ValueError, match="NaN or inf"):
        S.write_shards(broken, 3 * S.BLOCK, str(tmp_path / "nan"), seed=0, progress=False)


def test_another_model_of_the_same_shape_is_refused_and_leftovers_are_cleared(tmp_path):
    """A generator without weights (a user's function) has no hash: the resume checks what the
    model does. A killed write's temporary shard is cleared by the next run, not mistaken for a
    user's file."""
    out = str(tmp_path / "run")
    S.write_shards(as_generator(lambda z: 2.0 * z, latent_dim=2), 1000, out, seed=1, progress=False)
    with open(os.path.join(out, ".tmp-killed.npy"), "wb") as fh:
        fh.write(b"half a shard")
    again = S.write_shards(as_generator(lambda z: 2.0 * z, latent_dim=2), 1000, out, seed=1, progress=False)
    assert again["complete"] and ".tmp-killed.npy" not in os.listdir(out)
    with pytest.raises(ValueError, match="another model"):
        S.write_shards(as_generator(lambda z: 0.5 * z + 100.0, latent_dim=2), 1000, out, seed=1, progress=False)
    with pytest.raises(ValueError, match="another model"):
        S.write_shards(as_generator(lambda z: 2.0 * z * 1.01, latent_dim=2), 1000, out, seed=1, progress=False)


def test_cli_streams_a_saved_generator(tmp_path, capsys):
    model = save_generator(RealNVPGenerator(2, 1, [8]).freeze(), str(tmp_path / "flow"))
    out = tmp_path / "shards"
    argv = ["sample", "--model", model, "--n", "70000", "--out", str(out), "--shard-rows", "30000", "--seed", "4"]
    assert main(argv) == 0
    assert "3 shards" in capsys.readouterr().out
    x = S.read_shards(str(out))
    assert x.shape == (70_000, 2) and np.isfinite(x).all()
    assert main(argv) == 0  # a finished run: nothing to redo
    capsys.readouterr()
    assert main([*argv[:-2], "--seed", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another request" in err[0]
    assert main(["sample", "--model", model, "--n", "10", "--out", str(tmp_path / "x.npy"), "--shard-rows", "5"]) == 2
    (tmp_path / "mine.npy").write_bytes(b"the user's")
    for name in ("mine.npy", "x.csv"):  # a user's file is never replaced; a .csv is not a directory's name
        assert main(["sample", "--model", model, "--n", "10", "--out", str(tmp_path / name)]) == 2
    assert (tmp_path / "mine.npy").read_bytes() == b"the user's" and not (tmp_path / "x.csv").exists()
    mode = os.stat(os.path.join(str(out), "shard_00000.npy")).st_mode & 0o777
    assert mode == 0o666 & ~_umask()  # as readable as any file the user makes, not 0600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_two_processes_under_torchrun_write_the_same_rows(tmp_path):
    # a 2-process gloo job: the ranks take the shards in turns, rank 0 keeps the manifest
    import subprocess
    import sys

    model = save_generator(RealNVPGenerator(2, 1, [8]).freeze(), str(tmp_path / "flow"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "genrefine", "sample", "--model", model, "-n", str(N), "--out", str(tmp_path / "two"),
                          "--shard-rows", "50000", "--seed", "9", "--device", "cpu"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("wrote ") == 1  # one rank reports
    assert main(["sample", "--model", model, "-n", str(N), "--out", str(tmp_path / "one"), "--seed", "9"]) == 0
    assert np.array_equal(S.read_shards(str(tmp_path / "two")), S.read_shards(str(tmp_path / "one")))
    bad = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "genrefine", "sample", "--model", model, "-n", "10", "--out", str(tmp_path / "r.npy")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode != 0 and bad.stderr.count("error: under torchrun `genrefine sample` writes shards") == 1
    assert not (tmp_path / "r.npy").exists()


def test_shards_that_cannot_fit_on_the_disk_are_refused_before_any_write(tmp_path, monkeypatch):
    """N rows of 2 float32 values need 8 N bytes; with less free space the request is refused in
    one line and no directory is made. A resumed run counts the shards it already has."""
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(S.shutil, "disk_usage", lambda p: usage(10 ** 12, 0, 4 * N))
    with pytest.raises(ValueError, match="GiB more on disk"):
        S.write_shards(_simulator(), N, str(tmp_path / "full"), progress=False)
    assert not (tmp_path / "full").exists()
    done = tmp_path / "resumed"
    done.mkdir()
    np.save(done / "shard_00000.npy", np.zeros((N // 2, 2), dtype=np.float32))  # half the bytes are there
    monkeypatch.setattr(S.shutil, "disk_usage", lambda p: usage(10 ** 12, 0, 5 * N))
    S.check_disk("resumed", str(done), 8 * N)  # the other half, 4 N bytes, fits in 5 N
    with pytest.raises(ValueError, match="GiB more on disk"):
        S.check_disk("resumed", str(done), 16 * N)
