"""The run configuration: a preset, the data set's own overrides, then the caller's."""

from __future__ import annotations

import numpy as np

from genrefine.methods import get_method
from genrefine.presets import get_preset


def build_config(preset: str, data_name: str | None = None, base_family: str = "realnvp", w_phi: dict | None = None,
                 overrides: dict | None = None, params: dict | None = None) -> dict:
    """Preset ``preset`` (with ``data_name``'s overrides), then the latent importance network's
    settings ``w_phi`` (``{"m": 3.0, "inputs": "data", "fit": {"lambda1": 10.0}}``, validated),
    then ``overrides``: ``{section: {key: value}}`` updates a section, ``{section: value}``
    replaces it; then ``params``: ``{method: {setting: value}}`` set in each method's own
    section (:meth:`Method.settings_path <genrefine.methods.Method.settings_path>`)."""
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
    return cfg


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
