"""Configuration: ``conf/`` (the values) composed into ``params.yaml``, validated against ``schema`` (the types)."""

from .params import CONF_DIR, PARAMS_FILE, arch_config, as_dict, compose_conf, compose_text, load_params, validate
from .schema import Config, ConfigError

__all__ = [
    "CONF_DIR",
    "PARAMS_FILE",
    "Config",
    "ConfigError",
    "arch_config",
    "as_dict",
    "compose_conf",
    "compose_text",
    "load_params",
    "validate",
]
