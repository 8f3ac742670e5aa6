"""The run configuration: a preset, the data set's own overrides, then the caller's."""

from __future__ import annotations

import numpy as np

from genrefine.methods import METHODS, get_method
from genrefine.presets import get_preset
from genrefine.settings import apply_settings, merge

#: the classifier's tempering and feature choices (methods/estimators.py: tempering_candidates,
#: build_classifier)
TEMPER_CHOICES = ("on", "off", "auto")


def build_config(preset: str, data_name: str | None = None, base_family: str = "realnvp", w_phi: dict | None = None,
                 overrides: dict | None = None, params: dict | None = None, settings: dict | None = None) -> dict:
    """Preset ``preset`` (with ``data_name``'s overrides), then the latent importance network's
    settings ``w_phi`` (``{"m": 3.0, "inputs": "data", "fit": {"lambda1": 10.0}}``, validated),
    then ``overrides``: ``{section: {key: value}}`` updates a section, ``{section: value}``
    replaces it; then ``params``: ``{method: {setting: value}}`` set in each method's own
    section (:meth:`Method.settings_path <genrefine.methods.Method.settings_path>`); then
    ``settings`` (``--set`` / ``--config``): ``{section: {param: value}}`` checked against the
    configuration by :func:`genrefine.settings.apply_settings` (unknown sections or
    parameters, wrong types and out-of-bound numbers refused in one line). A method's name is
    accepted as a section and stands for its own section (``latentga`` -> ``lrw.latentga``)."""
    cfg = get_preset(preset, data_name, base_family)
    if w_phi:
        _apply_w_phi(cfg["lrw"]["w_phi"], w_phi)
    for section, values in (overrides or {}).items():
        if section not in cfg:
            raise ValueError(f"overrides: unknown section {section!r} (choose from {', '.join(cfg)})")
        if isinstance(values, dict):
            cfg[section].update(values)
        else:
            cfg[section] = values
    for name, values in (params or {}).items():
        if not isinstance(values, dict):
            raise ValueError(f"params: expected {{setting: value}} for method {name!r}, got {values!r}")
        section = cfg
        for key in get_method(name).settings_path():
            section = section.setdefault(key, {})
        section.update(values)
    if settings:
        cfg = apply_settings(cfg, method_sections(settings, cfg))
    for key in ("temper", "features"):  # both take on, off or auto
        if cfg.get("classifier", {}).get(key, "off") not in TEMPER_CHOICES:
            raise ValueError(f"classifier.{key} must be one of {', '.join(TEMPER_CHOICES)}, "
                             f"got {cfg['classifier'][key]!r}")
    return cfg


def method_sections(settings: dict, cfg: dict) -> dict:
    """``settings`` with every top-level key that names a method but is no section of ``cfg``
    moved to that method's own section (``{"sir-dctr": {...}}`` -> ``{"lrw": {"sir": {...}}}``)."""
    if not isinstance(settings, dict):
        raise ValueError(f"settings: expected a dictionary {{section: {{param: value}}}}, got {type(settings).__name__}")
    out: dict = {}
    for key, value in settings.items():
        path = METHODS[key].settings_path() if key in METHODS and key not in cfg else (key,)
        for k in reversed(path):
            value = {k: value}
        out = merge(out, value)
    return out


def _apply_w_phi(section: dict, w_phi: dict) -> None:
    if w_phi.get("m") is not None:
        m_val = float(w_phi["m"])
        if not np.isfinite(m_val) or m_val <= 0:
            raise ValueError(f"m must be a finite number > 0, got {w_phi['m']}")
        section["m"] = m_val
    if w_phi.get("inputs") is not None:
        if w_phi["inputs"] not in ("latent", "data"):
            raise ValueError(f"w_phi inputs must be 'latent' or 'data', got {w_phi['inputs']!r}")
        section["fit"]["inputs"] = w_phi["inputs"]
    for k, v in (w_phi.get("fit") or {}).items():
        if v is None or not np.isfinite(v) or v < 0:
            raise ValueError(f"{k} must be a finite number >= 0, got {v}")
        section["fit"][k] = float(v)
