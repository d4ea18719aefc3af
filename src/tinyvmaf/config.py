"""Configuration: ``conf/`` is the source of truth, ``params.yaml`` its composed form.

DVC tracks parameters in ``params.yaml`` and composes it from ``conf/``
itself on ``dvc exp run -S ...`` (``hydra.enabled``), but never on
``dvc repro``.  So the stages read ``params.yaml`` (never re-compose
``conf/``: that would drop ``-S`` overrides), ``tinyvmaf params`` rewrites it
after a hand edit of ``conf/``, and ``tinyvmaf params --check`` (run by the
tests) fails when the two have drifted.  Composition here is the same call
DVC makes, so both produce identical text.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .atomic import atomic_write_text

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


def load_params(path: str | Path = PARAMS_FILE) -> DictConfig:
    """The composed parameters a stage runs with."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no params file (run `tinyvmaf params` to compose it from conf/)")
    cfg = OmegaConf.load(path)
    assert isinstance(cfg, DictConfig)
    return cfg


def arch_config(name: str, conf_dir: str | Path = CONF_DIR) -> DictConfig:
    """One arch of the ``conf/arch`` group, by name (the train stage sweeps over these)."""
    path = Path(conf_dir) / "arch" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (Path(conf_dir) / "arch").glob("*.yaml"))
        raise KeyError(f"unknown arch {name!r}: no {path} (known: {known})")
    cfg = OmegaConf.load(path)
    assert isinstance(cfg, DictConfig)
    return cfg


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf-dir", default=CONF_DIR)
    parser.add_argument("--out", default=PARAMS_FILE)
    parser.add_argument("--check", action="store_true", help="exit 1 if OUT differs from conf/ composed")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. train.lr=0.01")


def run(args: argparse.Namespace) -> int:
    text = compose_text(args.conf_dir, args.overrides)
    out = Path(args.out)
    if args.check:
        if not out.is_file() or out.read_text() != text:
            print(f"{out} is out of sync with {args.conf_dir}/: run `tinyvmaf params`", file=sys.stderr)
            return 1
        return 0
    atomic_write_text(out, text)
    return 0
