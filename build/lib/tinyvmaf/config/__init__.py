"""Configuration: ``conf/`` (the values) composed into ``params.yaml``, validated against ``schema`` (the types).

The names below are imported on first use, so that ``tinyvmaf score`` (which
needs only a schema dataclass) does not pay for OmegaConf and Hydra.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CONF_DIR": "params",
    "PARAMS_FILE": "params",
    "arch_config": "params",
    "as_dict": "params",
    "compose_conf": "params",
    "compose_text": "params",
    "load_params": "params",
    "validate": "params",
    "Config": "schema",
    "ConfigError": "schema",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
