"""One way to set any method parameter, shared by the command line and the Python API.

Settings are a nested dict ``{section: {param: value}}`` whose sections are the preset's (a
method's name, ``classifier``, ``base``, ...). They come from

- ``--set laser.epochs=10`` (a dotted path and a JSON value; a bare word is a string),
- ``--config FILE.json`` (the same nested dict as a JSON object),
- Python: ``refine(..., settings={"laser": {"epochs": 10}})``.

:func:`apply_settings` checks every path against the preset before anything is built: the
section and the parameter must exist, the value must have the preset value's type, numbers
must be finite and within bounds. Every refusal is one ``ValueError`` line naming the path.
"""

from __future__ import annotations

import copy
import json
import math
import os

from genrefine.validation import not_a_file

#: deepest nesting a settings file may have (section, parameter, a sub-dictionary's parameter)
MAX_DEPTH = 4
#: largest number a setting may hold: sizes beyond it cannot fit a machine anyway
MAX_NUMBER = 1e9
#: largest settings file read
MAX_FILE_BYTES = 1 << 20
#: network sizes, by parameter name: at least 1, at most this (larger builds would not fit memory
#: or would take hours to build before any check could see it)
SIZE_LIMITS = {"transforms": 256, "hidden": 8192, "layers": 128, "channels": 4096, "aux_dim": 4096, "bins": 1024,
               "latent_dim": 4096, "width": 8192, "rank": 4096}
#: counts that must be at least 1, by parameter name, wherever they appear (an epoch count of 0
#: is a choice only for the latent importance network's game, whose default is 0)
COUNT_KEYS = {"batch_size", "n_chains", "n_candidates", "chain_length", "pilot_size", "max_rounds", "max_proposals",
              "n_critic", "adapt_chains", "sir_pool_size", "iterations", "thin", "members"}


def parse_assignment(text: str) -> tuple[list[str], object]:
    """``"laser.epochs=10"`` -> ``(["laser", "epochs"], 10)``; the value is read as JSON and
    kept as a string when it is not JSON (``hmc.paper=true`` is a bool, ``x=abc`` a string)."""
    path, sep, raw = text.partition("=")
    keys = [k.strip() for k in path.split(".")]
    if not sep or len(keys) < 2 or not all(keys):
        raise ValueError(f"--set {text!r}: expected SECTION.PARAM=VALUE, e.g. laser.epochs=10")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw.strip()
    return keys, value


def assignments_to_dict(items: list[str]) -> dict:
    """Several ``--set`` strings as one nested dict (a later one wins)."""
    out: dict = {}
    for text in items or []:
        keys, value = parse_assignment(text)
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {text!r}: {k} is set to a value and also used as a section")
        node[keys[-1]] = value
    return out


def read_settings_file(path: str) -> dict:
    """A JSON settings file as a nested dict; refused in one line when it is not one."""
    why = not_a_file(path)
    if why is not None:
        raise ValueError(f"--config {path}: {why}")
    if os.path.getsize(path) > MAX_FILE_BYTES:
        raise ValueError(f"--config {path}: larger than {MAX_FILE_BYTES} bytes; a settings file is small")
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"--config {path}: not readable JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a JSON object {{section: {{param: value}}}}, "
                         f"got a {type(data).__name__}")
    return data


def merge(a: dict, b: dict) -> dict:
    """``b`` laid over ``a`` (nested dicts merged, other values replaced); neither is changed."""
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _check_bounds(path: str, key: str, value: float) -> None:
    """The range a number of parameter ``key`` must lie in: >= 0; >= 1 for a count; below 1 for
    Adam's betas; within :data:`SIZE_LIMITS` for a network size."""
    if value < 0:
        raise ValueError(f"setting {path}: must be >= 0, got {value!r}")
    if (key in COUNT_KEYS or (key == "epochs" and ".w_phi." not in path)) and value < 1:
        raise ValueError(f"setting {path}: must be >= 1, got {value!r}")
    if key == "betas" and not value < 1:
        raise ValueError(f"setting {path}: Adam's betas lie in [0, 1), got {value!r}")
    if key == "sharpen" and value < 1:
        raise ValueError(f"setting {path}: a sharpening power is >= 1 or auto (below 1 is tempering: "
                         f"classifier.temper), got {value!r}")
    if key.endswith("quantile") and not 0 < value <= 1:
        raise ValueError(f"setting {path}: a quantile lies in (0, 1], got {value!r}")
    limit = SIZE_LIMITS.get(key)
    if limit is not None and not 1 <= value <= limit:
        raise ValueError(f"setting {path}: a network size must be between 1 and {limit}, got {value!r}")


def _check_value(path: str, value, default):
    """``value`` converted to the type of ``default`` and bounded, or one ValueError line."""
    key = path.rsplit(".", 1)[-1].split("[")[0]
    if key == "sharpen" and value == "auto":  # a number >= 1, or chosen on held-out rows
        return value
    if default is None or isinstance(default, str):
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise ValueError(f"setting {path}: expected a single value, got {type(value).__name__}")
        if (key in COUNT_KEYS or key in SIZE_LIMITS) and value not in (None, default):
            return _check_value(path, value, 1)  # a count or size with a symbolic default ("n", None): a number >= 1
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"setting {path}: expected true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"setting {path}: expected a number, got {value!r}")
        if abs(value) > MAX_NUMBER or not math.isfinite(value):  # the int comparison first: 10**400 has no float
            raise ValueError(f"setting {path}: {value!r:.40} is not a finite number of at most {MAX_NUMBER:g}")
        _check_bounds(path, key, value)
        if isinstance(default, int) and not isinstance(value, int):
            if float(value) != int(value):
                raise ValueError(f"setting {path}: expected an integer, got {value!r}")
            value = int(value)
        return value
    if isinstance(default, list):
        if not isinstance(value, list) or len(value) > 64:
            raise ValueError(f"setting {path}: expected a list (as {default!r}), got {value!r}")
        return [_check_value(f"{path}[{i}]", v, default[0] if default else v) for i, v in enumerate(value)]
    return value


def apply_settings(cfg: dict, settings: dict, _path: str = "", _depth: int = 0) -> dict:
    """``settings`` checked against ``cfg`` (the preset) and laid over a copy of it.

    Unknown sections or parameters, values of the wrong type, non-finite or negative numbers
    and nesting deeper than :data:`MAX_DEPTH` are refused before anything is built.
    """
    if not isinstance(settings, dict):
        raise ValueError(f"settings{' ' + _path if _path else ''}: expected a dictionary, got {type(settings).__name__}")
    if _depth >= MAX_DEPTH:
        raise ValueError(f"setting {_path}: nested deeper than {MAX_DEPTH} levels")
    out = copy.deepcopy(cfg)
    for key, value in settings.items():
        path = f"{_path}.{key}" if _path else str(key)
        if key not in out:
            known = ", ".join(sorted(map(str, out))) or "none"
            raise ValueError(f"setting {path}: unknown {'parameter' if _path else 'section'} (known: {known})")
        if isinstance(out[key], dict):
            out[key] = apply_settings(out[key], value, path, _depth + 1)
        else:
            out[key] = _check_value(path, value, out[key])
    return out
