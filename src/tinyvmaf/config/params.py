"""Configuration: ``conf/`` is the source of truth, ``params.yaml`` its composed form.

DVC tracks parameters in ``params.yaml`` and composes it from ``conf/``
itself on ``dvc exp run -S ...`` (``hydra.enabled``), but never on
``dvc repro``.  So the stages read ``params.yaml`` (never re-compose
``conf/``: that would drop ``-S`` overrides), ``tinyvmaf params`` rewrites it
after a hand edit of ``conf/``, and ``tinyvmaf params --check`` (run by the
tests) fails when the two have drifted.  Composition here is the same call
DVC makes, so both produce identical text.

Whatever is loaded is validated against :mod:`tinyvmaf.config.schema`
before a stage sees it: :func:`validate` returns typed objects
(``cfg.train.lr`` is a float) or raises :class:`ConfigError` naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .schema import ArchConfig, Config, ConfigError, check_all

CONF_DIR = "conf"
CONFIG_NAME = "config"
PARAMS_FILE = "params.yaml"


def compose_conf(conf_dir: str | Path = CONF_DIR, overrides: list[str] | None = None) -> DictConfig:
    """Compose ``conf/config.yaml`` with Hydra overrides, resolved, without the ``hydra`` node."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(Path(conf_dir).resolve()), version_base=None):
        cfg = compose(config_name=CONFIG_NAME, overrides=list(overrides or []))
    OmegaConf.resolve(cfg)
    return cfg


def compose_text(conf_dir: str | Path = CONF_DIR, overrides: list[str] | None = None) -> str:
    """``params.yaml`` text exactly as ``dvc exp run`` would write it."""
    return OmegaConf.to_yaml(compose_conf(conf_dir, overrides))


def validate(cfg: Mapping[str, Any] | DictConfig, *, source: str = "config") -> Config:
    """Typed, checked config: unknown or missing keys, wrong types and bad values are errors naming the key."""
    raw = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))
    raw = OmegaConf.masked_copy(raw, [k for k in raw if k != "hydra"]) if "hydra" in raw else raw
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), raw)
        out = OmegaConf.to_object(merged)
        check_all(out)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{source}: {f'key {key!r}: ' if key else ''}{first}") from None
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    assert isinstance(out, Config)
    return out


#: ``train.py`` run options (``+labels=PATH``, ``+samples=PATH``, ``+student=KEY``): what a run trains on, not config.
RUN_OPTIONS = ("labels", "samples", "student")


def without_run_options(cfg: DictConfig) -> tuple[DictConfig, dict[str, Any]]:
    """``cfg`` without the :data:`RUN_OPTIONS` keys (a copy), and their values (absent ones left out)."""
    options = {k: cfg[k] for k in RUN_OPTIONS if k in cfg and cfg[k] is not None}
    keep = [k for k in cfg if k not in RUN_OPTIONS]
    return OmegaConf.masked_copy(cfg, keep), options


def load_params(path: str | Path = PARAMS_FILE) -> Config:
    """The composed parameters a stage runs with, validated."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no params file (run `tinyvmaf params` to compose it from conf/)")
    cfg = OmegaConf.load(path)
    assert isinstance(cfg, DictConfig)
    return validate(cfg, source=str(path))


def as_dict(cfg: Config | Any) -> dict[str, Any]:
    """A plain, JSON-able dict of a (part of a) config: for MLflow params and checkpoints."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def arch_config(name: str, conf_dir: str | Path = CONF_DIR) -> ArchConfig:
    """One arch of the ``conf/arch`` group, by name, validated (the train stage sweeps over these)."""
    path = Path(conf_dir) / "arch" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (Path(conf_dir) / "arch").glob("*.yaml"))
        raise KeyError(f"unknown arch {name!r}: no {path} (known: {known})")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ArchConfig), OmegaConf.load(path))
        out = OmegaConf.to_object(merged)
        check_all(out)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{path}: key {getattr(exc, 'full_key', '?')!r}: {str(exc).splitlines()[0]}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    assert isinstance(out, ArchConfig)
    return out


def add_student_argument(parser: Any) -> None:
    """``--student KEY``: which configured student a per-teacher stage works on."""
    parser.add_argument(
        "--student",
        help="the student (a key of `students:` in params.yaml, e.g. v1016_3d0h; default: the first configured)",
    )
