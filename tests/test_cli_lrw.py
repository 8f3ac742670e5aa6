"""Command line and pipeline for the latent reweighting methods: bad input gives one
'error:' line and exit code 2 with nothing written; a tiny run on a WGAN-GP base writes the
documented layout, the paper's metrics and the inference-cost table."""

import json
import sys

import numpy as np
import pytest

from genrefine.api import save_generator
from genrefine.cli import main
from genrefine.generators import RealNVPGenerator
from genrefine.pipeline import run_refinement
from genrefine.presets import get_preset

LRW = "base,latentrs,latentga,latentrsga,drs,mhgan,sir,dot"

# tiny models: one intra-op thread (two thrash on a busy 2-core machine: 10x slower measured)
pytestmark = pytest.mark.usefixtures("one_thread")


def _run_cli(argv, capsys):
    with pytest.raises(SystemExit) as ei:
        sys.exit(main(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return ei.value.code, err


@pytest.mark.parametrize("extra, words", [
    (["--m", "0"], "m must be"), (["--m", "-2"], "m must be"), (["--lambda1", "-1"], "lambda1"),
    (["--lambda2", "-0.5"], "lambda2"), (["--methods", "base,latentrs,bogus"], "unknown bogus"),
    (["--w-inputs", "pixels"], "--w-inputs"),
])
def test_bad_lrw_arguments_exit_2_and_write_nothing(tmp_path, capsys, extra, words):
    out = tmp_path / "o"
    code, err = _run_cli(["refine", "--data", "swissroll", "--base", "wgan-gp", "--out", str(out), "--quiet", *extra],
                         capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and words in err[0], err
    assert not out.exists()


def test_checkpoint_of_the_wrong_family(tmp_path, capsys):
    flow = save_generator(RealNVPGenerator(2, 1, [8]), str(tmp_path / "flow"))
    out = tmp_path / "o"
    code, err = _run_cli(["refine", "--data", "swissroll", "--base", "wgan-gp", "--base-model", flow,
                          "--out", str(out), "--quiet"], capsys)
    assert code == 2 and len(err) == 1 and "'realnvp'" in err[0] and "'wgan-gp'" in err[0], err
    assert not out.exists()
    code, err = _run_cli(["refine", "--data", "swissroll", "--base", "wgan-gp", "--critic", flow,
                          "--out", str(out), "--quiet"], capsys)
    assert code == 2 and len(err) == 1 and "expected a critic" in err[0], err
    assert not out.exists()


def tiny_cfg() -> dict:
    cfg = get_preset("quick", "swissroll", "wgan-gp")
    lrw = cfg["lrw"]
    # every kind of candidate once, each as small as it goes (their fits are tested in test_lrw_weights)
    lrw["w_phi"]["fit"].update(epochs=2, warmup=20, distil_size=5000, distil_epochs=2, smoothed_ratio=[0.1],
                               calibrate=4, transport=1, crossfit=2)
    lrw["critic"]["fit"]["epochs"] = 1
    lrw["discriminator"]["epochs"] = 1
    lrw["dot_critic"]["epochs"] = 1
    return {"n_train": 4000, "wgan": {"hidden": 32, "epochs": 2}, "lrw": lrw, "classifier": {"epochs": 1, "hidden": 16, "layers": 2},
            "evaluation": {"n": 300, "repeats": 3, "k": 3, "cost_n": 1000}}


def test_lrw_end_to_end_layout_metrics_and_sampling(tmp_path, capsys):
    out = tmp_path / "run"
    res = run_refinement("gaussians25", methods=LRW + ",sir-dctr", n_samples=3000, out=str(out), base_family="wgan-gp",
                         progress=False, overrides=tiny_cfg())
    methods = LRW.split(",") + ["sir-dctr"]
    for m in methods:
        x = np.load(out / "samples" / f"{m}.npy")
        z = np.load(out / "latents" / f"{m}.npy")
        assert x.shape == (3000, 2) and z.shape == (3000, 2) and np.isfinite(x).all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["scoring"] == "lrw" and metrics["base_family"] == "wgan-gp"
    assert metrics["ranking"]["key"] == "exact_emd" and metrics["ranking"]["recommended"] in metrics["methods"]
    for m in methods:
        s = metrics["scores"][m]["lrw"]
        assert s["n"] == 300 and s["repeats"] == 3 and len(s["emd"]["values"]) == 3
        assert 0 <= s["precision"]["mean"] <= 1 and s["emd"]["mean"] > 0 and s["emd"]["floor"]["mean"] > 0
    cost = metrics["inference_cost"]
    assert cost["raw_ms"] > 0 and all(cost[m]["ms_per_sample"] > 0 for m in methods if m != "base")
    for d in ("base", "critic", "w_phi", "discriminator", "dot_critic"):
        assert (out / "models" / d / "model.safetensors").exists(), d
    assert (out / "figures" / "refinement.png").exists()
    assert res.metrics["diagnostics"]["latentrs"]["acceptance_rate"] > 0
    # a saved WGAN-GP base is a generator like any other; its critic can seed another run
    code = main(["sample", "--model", str(out / "models" / "base"), "--n", "500", "--out", str(tmp_path / "s.npy")])
    assert code == 0 and np.load(tmp_path / "s.npy").shape == (500, 2)
    from genrefine.api import load_critic

    crit = load_critic(str(out / "models" / "critic"))
    assert crit.data_dim == 2
    import torch

    from genrefine.api import load_latent_importance

    w_phi = load_latent_importance(str(out / "models" / "w_phi"))
    z = torch.randn(100, 2)
    assert torch.allclose(w_phi.weight(z), res.models["w_phi"].weight(z))
    with pytest.raises(ValueError, match="expected a latent_importance"):
        load_latent_importance(str(out / "models" / "critic"))


def test_resume_loads_the_finished_w_phi_and_a_rerun_starts_afresh(tmp_path):
    """--resume loads the finished w_φ and, each method on its own stream, draws the same latentRS
    samples; a rerun without --resume clears the checkpoints it made (w_φ's included) and fits anew."""
    out = tmp_path / "run"
    kw = dict(methods="base,latentrs", n_samples=1000, out=str(out), base_family="wgan-gp", progress=False,
              overrides=tiny_cfg())
    first = run_refinement("gaussians25", **kw)
    x1 = np.load(out / "samples" / "latentrs.npy")
    assert (out / "checkpoints" / "w_phi_fitted.safetensors").exists()
    again = run_refinement("gaussians25", resume=True, **kw)
    assert again.metrics["diagnostics"]["w_phi"]["resumed"]
    assert again.metrics["timings_seconds"]["train_w_phi"] == first.metrics["timings_seconds"]["train_w_phi"]
    np.testing.assert_array_equal(np.load(out / "samples" / "latentrs.npy"), x1)
    fresh = run_refinement("gaussians25", **kw)
    assert "resumed" not in fresh.metrics["diagnostics"]["w_phi"]
