"""--set / --config / settings=: one override path, every value checked before anything is built."""

import json

import pytest

from genrefine.settings import apply_settings, assignments_to_dict, parse_assignment, read_settings_file

PRESET = {"laser": {"epochs": 30, "lr": 2e-3, "betas": [0.5, 0.9], "drs": {"quantile": 0.95}, "paper": False,
                    "hidden": None},
          "classifier": {"epochs": 50}}


def test_assignments_parse_json_values():
    assert parse_assignment("laser.epochs=10") == (["laser", "epochs"], 10)
    assert parse_assignment("hmc.paper=true") == (["hmc", "paper"], True)
    assert parse_assignment("laser.betas=[0.1, 0.2]") == (["laser", "betas"], [0.1, 0.2])
    assert assignments_to_dict(["laser.epochs=1", "laser.drs.quantile=0.9"]) == \
        {"laser": {"epochs": 1, "drs": {"quantile": 0.9}}}


def test_apply_settings_lays_values_over_a_copy():
    out = apply_settings(PRESET, {"laser": {"epochs": 5.0, "drs": {"quantile": 0.5}, "hidden": 64}})
    assert out["laser"]["epochs"] == 5 and isinstance(out["laser"]["epochs"], int)
    assert out["laser"]["drs"]["quantile"] == 0.5 and out["laser"]["hidden"] == 64
    assert PRESET["laser"]["epochs"] == 30  # the preset itself is untouched


@pytest.mark.parametrize("settings, words", [
    ({"lazer": {"epochs": 1}}, "setting lazer: unknown section"),
    ({"laser": {"epoch": 1}}, "setting laser.epoch: unknown parameter"),
    ({"laser": {"epochs": "ten"}}, "expected a number"),
    ({"laser": {"epochs": 2.5}}, "expected an integer"),
    ({"laser": {"lr": -1}}, "must be >= 0"),
    ({"laser": {"lr": float("inf")}}, "not a finite number"),
    ({"laser": {"epochs": 1e12}}, "not a finite number"),
    ({"laser": {"paper": 1}}, "expected true or false"),
    ({"laser": 3}, "expected a dictionary"),
    ({"laser": {"betas": 0.5}}, "expected a list"),
    ([1, 2], "expected a dictionary"),
])
def test_bad_settings_are_refused_in_one_line(settings, words):
    with pytest.raises(ValueError) as info:
        apply_settings(PRESET, settings)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_settings_file(tmp_path):
    good = tmp_path / "s.json"
    good.write_text(json.dumps({"laser": {"epochs": 3}}))
    assert read_settings_file(str(good)) == {"laser": {"epochs": 3}}
    for text, words in (("[1, 2]", "expected a JSON object"), ("{", "not readable JSON"),
                        ("[" * 100000 + "]" * 100000, "not readable JSON|expected a JSON object")):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(ValueError, match=words):
            read_settings_file(str(bad))
    with pytest.raises(ValueError, match="no such file"):
        read_settings_file(str(tmp_path / "none.json"))


@pytest.mark.parametrize("settings, words", [
    ({"laser": {"betas": [2, 3]}}, "laser.betas[0]: Adam's betas lie in [0, 1)"),
    ({"laser": {"batch_size": 0}}, "laser.batch_size: must be >= 1"),
    ({"classifier": {"batch_size": 0}}, "classifier.batch_size: must be >= 1"),
    ({"hmc": {"n_chains": "abc"}}, "hmc.n_chains: expected a number"),
    ({"hmc": {"thin": 0}}, "hmc.thin: must be >= 1"),
    ({"rejection": {"epochs": 3}}, "rejection.epochs: unknown parameter"),
])
def test_the_presets_counts_and_betas_are_checked_up_front(settings, words):
    """Values a method would only refuse once it runs (dropping it from the run) fail at once."""
    from genrefine.experiments.config import build_config

    with pytest.raises(ValueError) as info:
        build_config("quick", settings=settings)
    assert words in str(info.value) and "\n" not in str(info.value)
    cfg = build_config("quick", settings={"hmc": {"n_chains": "n"}, "rejection": {"safety": 2.0}})
    assert cfg["hmc"]["n_chains"] == "n" and cfg["rejection"]["safety"] == 2.0


def test_a_size_with_an_automatic_default_takes_a_size():
    """``laser.aux_dim`` defaults to None (the latent's dimension + 2); a number set for it is
    checked as a network size."""
    from genrefine.presets import get_preset
    from genrefine.settings import apply_settings

    assert get_preset("quick")["laser"]["aux_dim"] is None
    assert apply_settings(get_preset("quick"), {"laser": {"aux_dim": 6}})["laser"]["aux_dim"] == 6
    for bad in (0, "six", 1e6):
        with pytest.raises(ValueError, match="laser.aux_dim"):
            apply_settings(get_preset("quick"), {"laser": {"aux_dim": bad}})
