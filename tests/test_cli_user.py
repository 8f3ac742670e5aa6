"""``genrefine refine --base python:FILE.py:NAME``: a user's nn.Module and a user's numpy function
refined end to end through the command line (suite scores with floors, a ranking, a saved model
that ``genrefine sample --base`` loads back); every bad input at the new edges is one
``error:`` line, exit code 2, and nothing written in --out."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from genrefine.cli import main

# tiny models: one intra-op thread (two thrash on a busy 2-core machine: 10x slower measured)
pytestmark = pytest.mark.usefixtures("one_thread")

USER_FILE = textwrap.dedent("""
    import numpy as np
    import torch
    from torch import nn

    class Widened(nn.Module):
        '''x = 2 z: a 2-D Gaussian twice too wide for a data set of two modes.'''
        latent_dim = 2
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2, bias=False)
            with torch.no_grad():
                self.lin.weight.copy_(2 * torch.eye(2))
        def forward(self, z):
            return self.lin(z)

    def numpy_gen(z):
        return 1.5 * np.asarray(z)          # numpy only: a torch tensor with gradients is refused

    def simulator(z, rng):
        return 1.5 * np.asarray(z) + 0.1 * rng.normal(size=z.shape)

    def raises(z):
        raise RuntimeError("the user's model is broken")

    def too_few_rows(z):
        return z[:-1]

    def nan_out(z):
        return np.full_like(z, np.nan)

    def extra_column(z):
        return np.concatenate([z, z[:, :1]], axis=1)

    def strips(z):
        return np.repeat(z[:, :1], 16, axis=1).reshape(len(z), 2, 8)

    def sim_fails_later(z, rng):       # passes the probe, fails on the run's large batches
        if len(z) > 300:
            raise RuntimeError("detector offline")
        return np.asarray(z) + rng.normal(size=z.shape)

    def sim_nan_later(z, rng):
        x = np.asarray(z) + rng.normal(size=z.shape)
        if len(z) > 300:
            x[0, 0] = np.nan
        return x

    def sim_shape_later(z, rng):
        return np.asarray(z)[:, :3] if len(z) > 300 else np.asarray(z) + rng.normal(size=z.shape)

    def sim_strings_later(z, rng):
        return np.full(z.shape, "a") if len(z) > 300 else np.asarray(z)

    class NoLatentAttr(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 4)
        def forward(self, z):
            return self.lin(z)
""")

# the smallest settings that still run every default method (through the same --set path as users)
TINY = ["classifier.hidden=32", "classifier.layers=2", "classifier.epochs=20", "classifier.batch_size=256",
        "classifier.lr=0.003",
        "hmc.n_chains=100", "hmc.burn_in=5", "hmc.adapt_chains=100", "hmc.sir_pool_size=5000",
        "laser.hidden=16", "laser.layers=2", "laser.epochs=1", "laser.batch_size=500", "laser.drs.n=4000",
        "laser.drs.steps=20", "laser.data_rejection.epochs=1", "laser.data_rejection.steps=20",
        "laser.data_rejection.boost.n=4000", "laser.data_rejection.boost.steps=20", "laser-flow.transforms=1",
        "laser-flow.hidden=[16]", "laser-flow.epochs=1", "laser-flow.batch_size=500"]


def _sets(items=TINY):
    return [a for s in items for a in ("--set", s)]


@pytest.fixture()
def user_file(tmp_path):
    p = tmp_path / "mymodel.py"
    p.write_text(USER_FILE)
    return str(p)


@pytest.fixture()
def two_modes(tmp_path):
    """1,500 rows of two Gaussians at (+-2, 0), std 0.5: the user's 2-D data."""
    rng = np.random.default_rng(0)
    x = np.c_[rng.choice([-2.0, 2.0], 1500), np.zeros(1500)] + 0.5 * rng.standard_normal((1500, 2))
    np.save(tmp_path / "two.npy", x.astype(np.float32))
    return str(tmp_path / "two.npy")


def _run_cli(argv, capsys):
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, [ln for ln in cap.err.strip().splitlines() if ln]


def _check_suite_metrics(metrics: dict, methods: list[str], dim: int) -> None:
    assert metrics["scoring"] == "suite" and metrics["methods"] == methods and metrics["dim"] == dim
    for m in methods:
        for key in ("energy", "exact_emd", "precision", "recall", "c2st_auc"):
            s = metrics["scores"][m][key]
            assert np.isfinite(s["value"]) and np.isfinite(s["floor"]) and s["n"] >= 10, (m, key, s)
    base = metrics["scores"]["base"]
    assert base["energy"]["value"] > 5 * base["energy"]["floor"]  # the widened base is visibly off
    r = metrics["ranking"]
    assert r["key"] == "energy" and [e["method"] for e in r["ranking"]][0] == r["best"]
    values = [e["value"] for e in r["ranking"]]
    assert values == sorted(values) and set(e["method"] for e in r["ranking"]) == set(methods)
    assert r["recommended"] in methods


def test_users_module_end_to_end_and_sample_back(tmp_path, capsys, user_file, two_modes):
    out = tmp_path / "run"
    code, printed, err = _run_cli(["refine", "--data", two_modes, "--base", f"python:{user_file}:Widened",
                                   "--n-samples", "600", "--out", str(out), "--quiet", *_sets()], capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    # a differentiable module gets HMC besides the gradient-free methods; 2-D data, but a
    # user's model: scored by the suite (with the 2-D histograms), not the LaSeR tables
    methods = ["base", "dctr", "rejection", "hmc", "laser", "laser-flow", "sir-dctr"]
    _check_suite_metrics(metrics, methods, 2)
    assert "hist_jsd" in metrics["scores"]["base"] and metrics["base_family"] == "module"
    # DCTR reweights the too-wide Gaussian towards the modes: a wrong weight would not close a third
    gaps = {e["method"]: e["gap_closed"] for e in metrics["ranking"]["ranking"]}
    assert gaps["dctr"] > 0.4 and gaps["rejection"] > 0.6, gaps
    assert metrics["ranking"]["recommended"] != "base" and metrics["ranking"]["best_beats_base"]
    assert "recommended: " in printed and "ranking by energy" in printed
    assert (out / "figures" / "refinement.png").exists() and (out / "models" / "laser").is_dir()
    s = tmp_path / "s.npy"
    code, _, err = _run_cli(["sample", "--model", str(out / "models" / "laser"), "--base",
                             f"python:{user_file}:Widened", "--n", "50", "--out", str(s)], capsys)
    assert code == 0, err
    x = np.load(s)
    assert x.shape == (50, 2) and np.isfinite(x).all()
    code, _, err = _run_cli(["sample", "--model", str(out / "models" / "laser"), "--n", "50", "--out",
                             str(tmp_path / "t.npy")], capsys)
    assert code == 2 and len(err) == 1 and "--base python:" in err[0] and not (tmp_path / "t.npy").exists()


def test_users_numpy_function_end_to_end(tmp_path, capsys, user_file):
    rng = np.random.default_rng(1)
    data = tmp_path / "four.npy"
    np.save(data, (rng.standard_normal((1200, 4)) + np.array([1.0, 0, 0, 0])).astype(np.float32))
    out = tmp_path / "run"
    code, printed, err = _run_cli(["refine", "--data", str(data), "--base", f"python:{user_file}:numpy_gen",
                                   "--latent-dim", "4", "--n-samples", "500", "--out", str(out), "--quiet",
                                   "--config", _config(tmp_path), "--set", "classifier.epochs=20", *_sets(TINY[5:])],
                                  capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    # a numpy function passes no gradients: no HMC in its default set
    _check_suite_metrics(metrics, ["base", "dctr", "rejection", "laser", "laser-flow", "sir-dctr"], 4)
    assert "hist_jsd" not in metrics["scores"]["base"]  # histograms only for D = 2
    assert metrics["config"]["classifier"]["hidden"] == 32 and metrics["config"]["classifier"]["epochs"] == 20
    assert (out / "figures" / "pairs_laser.png").exists() and not (out / "figures" / "refinement.png").exists()
    assert "recommended: " in printed


def _config(tmp_path) -> str:
    """--config gives the classifier's settings; --set classifier.epochs=20 is laid over it."""
    p = tmp_path / "cfg.json"
    p.write_text(json.dumps({"classifier": {"hidden": 32, "layers": 2, "epochs": 2, "batch_size": 256, "lr": 0.003}}))
    return str(p)


@pytest.fixture()
def four_d(tmp_path):
    np.save(tmp_path / "four.npy", np.random.default_rng(0).standard_normal((200, 4)).astype(np.float32))
    return str(tmp_path / "four.npy")


@pytest.mark.parametrize("target, extra, words", [
    ("/no/such/file.py:g", [], "no such file"),
    ("{f}:nope", ["--latent-dim", "4"], "no such name"),
    ("{f}:raises", ["--latent-dim", "4"], "the user's model is broken"),
    ("{f}:too_few_rows", ["--latent-dim", "4"], "one row per latent point"),
    ("{f}:nan_out", ["--latent-dim", "4"], "NaN"),
    ("{f}:extra_column", ["--latent-dim", "4"], "5-d samples"),              # data is 4-D
    ("{f}:numpy_gen", ["--latent-dim", "4", "--data-shape", "1,2,3"], "data_shape"),  # declared 6 values, makes 4
    ("{f}:Widened", ["--latent-dim", "3"], "latent_dim"),                     # the module says 2
    ("{f}:NoLatentAttr", ["--latent-dim", "3"], "raised"),                     # nn.Linear(2, 4) fed 3-d z
    ("{f}:NoLatentAttr", [], "--latent-dim"),
    ("{f}:numpy_gen", ["--latent-dim", "4", "--methods", "base,hmc"], "hmc needs a differentiable"),
    ("{f}:simulator", ["--latent-dim", "4", "--methods", "base,sir-dctr"], "hidden randomness"),
    ("{f}:simulator", ["--latent-dim", "4", "--methods", "base,hmc"], "hmc-omnifold"),
    ("{f}:numpy_gen", ["--latent-dim", "4", "--set", "classifier.nope=1"], "classifier.nope"),
    ("{f}:numpy_gen", ["--latent-dim", "4", "--set", "nosuch.x=1"], "unknown section"),
    ("{f}:numpy_gen", ["--latent-dim", "4", "--set", "classifier.epochs=-3"], "classifier.epochs"),
    ("{f}:numpy_gen", ["--latent-dim", "4", "--scoring", "laser"], "2-D data"),
    ("{f}:numpy_gen", ["--latent-dim", "4", "--n-samples", str(10 ** 13)], "GiB"),
    ("{f}:numpy_gen", ["--latent-dim", "4", "--device", "gpu"], "device"),
    ("{f}:numpy_gen", ["--latent-dim", "4", "--device", "meta"], "device"),
])
def test_bad_user_input_is_one_line_and_writes_nothing(tmp_path, capsys, user_file, four_d, target, extra, words):
    out = tmp_path / "o"
    code, _, err = _run_cli(["refine", "--data", four_d, "--base", "python:" + target.format(f=user_file),
                             "--out", str(out), "--quiet", *extra], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and words in err[0], err
    assert not out.exists()


def test_data_shape_the_generator_does_not_make(tmp_path, capsys, user_file):
    np.save(tmp_path / "img.npy", np.random.default_rng(0).random((200, 4, 4)).astype(np.float32))
    out = tmp_path / "o"
    code, _, err = _run_cli(["refine", "--data", str(tmp_path / "img.npy"), "--base", f"python:{user_file}:strips",
                             "--latent-dim", "2", "--out", str(out), "--quiet"], capsys)
    assert code == 2 and len(err) == 1 and "(1, 2, 8)" in err[0] and "(1, 4, 4)" in err[0], err
    assert not out.exists()


def test_other_cli_edges(tmp_path, capsys, user_file, four_d):
    bad_cfg = tmp_path / "list.json"
    bad_cfg.write_text("[1, 2]")
    for argv, words in (
            (["--base", "realnvp", "--latent-dim", "3"], "--latent-dim"),
            (["--base", "flow"], "python:FILE.py:NAME"),
            (["--config", str(bad_cfg)], "JSON object"),
            (["--config", str(tmp_path / "none.json")], "no such file"),
            (["--set", "classifier"], "SECTION.PARAM=VALUE")):
        out = tmp_path / "o"
        code, _, err = _run_cli(["refine", "--data", four_d, "--out", str(out), "--quiet", *argv], capsys)
        assert code == 2 and len(err) == 1 and words in err[0], (argv, err)
        assert not out.exists()
    code, _, err = _run_cli(["refine", "--data", four_d, "--out", "", "--quiet", "--methods", "base",
                             "--base", f"python:{user_file}:numpy_gen", "--latent-dim", "4"], capsys)
    assert code == 2 and len(err) == 1 and "out" in err[0], err
    (tmp_path / "afile").write_text("x")
    code, _, err = _run_cli(["refine", "--data", four_d, "--out", str(tmp_path / "afile"), "--quiet", "--methods",
                             "base", "--base", f"python:{user_file}:numpy_gen", "--latent-dim", "4"], capsys)
    assert code == 2 and len(err) == 1 and "not a directory" in err[0], err
    for out_file, words in ((str(tmp_path), "no sampling run made"), (str(tmp_path / "no" / "x.npy"), "does not exist"),
                            (str(tmp_path / "afile"), "not a directory")):
        code, _, err = _run_cli(["sample", "--model", str(tmp_path), "--n", "5", "--out", out_file], capsys)
        assert code == 2 and len(err) == 1 and words in err[0], err


def test_subprocess_shows_no_traceback(tmp_path, user_file, four_d):
    r = subprocess.run([sys.executable, "-m", "genrefine.cli", "refine", "--data", four_d, "--base",
                        f"python:{user_file}:raises", "--latent-dim", "4", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("error: "), r.stderr
    assert not (tmp_path / "o").exists()


def test_demo_runs_every_laser_method_on_gaussians4(monkeypatch, capsys):
    import genrefine.experiments.run as run_module

    seen = {}

    def fake_run(data, **kw):
        seen.update(kw, data=data)
        raise KeyboardInterrupt  # stop here: the demo's arguments are what is checked

    monkeypatch.setattr(run_module, "run_refinement", fake_run)
    code, _, err = _run_cli(["demo", "--out", "somewhere", "--n-samples", "1000"], capsys)
    assert code == 130 and err == ["error: interrupted"]
    assert seen["data"] == "gaussians4" and seen["methods"] == "base,dctr,rejection,hmc,laser,laser-flow"
    assert seen["n_samples"] == 1000 and seen["out"] == "somewhere" and seen["base"] is None
    assert seen["preset"] == "quick" and seen["scoring"] == "auto" and seen["settings"] is None


SIM_TINY = ["classifier.hidden=32", "classifier.layers=2", "classifier.epochs=5", "omnifold.iterations=2",
            "omnifold.epochs=5", "omnifold.hidden=16", "omnifold.latent_hidden=16"]


@pytest.mark.parametrize("name, words", [
    ("sim_fails_later", ["sim_fails_later", "detector offline"]),
    ("sim_nan_later", ["sim_nan_later", "NaN"]),
    ("sim_shape_later", ["sim_shape_later", "(3,)"]),
    ("sim_strings_later", ["sim_strings_later", "dtype"]),
])
def test_simulator_faults_during_the_run(tmp_path, capsys, user_file, four_d, name, words):
    out = tmp_path / "o"
    code, _, err = _run_cli(["refine", "--data", four_d, "--base", f"python:{user_file}:{name}", "--latent-dim", "4",
                             "--methods", "base,rejection-omnifold", "--n-samples", "400", "--out", str(out),
                             "--quiet", *_sets(SIM_TINY)], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and all(w in err[0] for w in words), err
    assert not out.exists()


def test_simulator_end_to_end_with_omnifold(tmp_path, capsys, user_file, four_d):
    out = tmp_path / "run"
    methods = "base,rejection,omnifold,rejection-omnifold,ddls-omnifold,laser-flow-omnifold"
    code, printed, err = _run_cli(["refine", "--data", four_d, "--base", f"python:{user_file}:simulator",
                                   "--latent-dim", "4", "--methods", methods, "--n-samples", "400", "--out", str(out),
                                   "--quiet", *_sets(SIM_TINY + TINY[-4:] + ["ddls.n_steps=5",
                                                                             # a 1-epoch classifier's weights are
                                                                             # tempered away by the guard; the
                                                                             # spread below needs them
                                                                             "classifier.temper=off"])], capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["methods"] == ["base", "rejection", "omnifold", "rejection-omnifold", "ddls-omnifold",
                                  "laser-flow-omnifold"]
    assert (out / "models" / "laser-flow-omnifold").is_dir()
    iterations = metrics["diagnostics"]["omnifold_weights"]["iterations"]
    assert [it["iteration"] for it in iterations] == [1, 2] and "marginal_jsd" in metrics["scores"]["base"]
    assert 0 < metrics["diagnostics"]["pullback_spread"]["noise_fraction"] < 1
    assert (out / "models" / "omnifold_weights").is_dir() and (out / "samples" / "omnifold_weights.npy").exists()


def test_demo_of_a_simulator(monkeypatch, capsys):
    import genrefine.experiments.run as run_module

    seen = {}

    def fake_run(data, **kw):
        seen.update(kw, data=data)
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "run_refinement", fake_run)
    code, _, err = _run_cli(["demo", "--simulator", "detector", "--out", "somewhere"], capsys)
    assert code == 130 and err == ["error: interrupted"]
    assert seen["data"] == "detector" and seen["base"].stochastic and seen["base"].latent_dim == 2
    assert seen["methods"].split(",")[:3] == ["base", "dctr", "rejection"] and "rejection-omnifold" in seen["methods"]
