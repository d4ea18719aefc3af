"""``tinyvmaf params``: compose ``conf/`` into ``params.yaml`` (or check that they agree)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from ..common.atomic import atomic_write_text
from .params import CONF_DIR, CONFIG_NAME, PARAMS_FILE, compose_conf, validate


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf-dir", default=CONF_DIR)
    parser.add_argument("--out", default=PARAMS_FILE)
    parser.add_argument("--check", action="store_true", help="exit 1 if OUT differs from conf/ composed")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. train.lr=0.01")


def run(args: argparse.Namespace) -> int:
    composed = compose_conf(args.conf_dir, args.overrides)
    validate(composed, source=f"{args.conf_dir}/{CONFIG_NAME}.yaml")
    text = OmegaConf.to_yaml(composed)
    out = Path(args.out)
    if args.check:
        if not out.is_file() or out.read_text() != text:
            print(f"{out} is out of sync with {args.conf_dir}/: run `tinyvmaf params`", file=sys.stderr)
            return 1
        return 0
    atomic_write_text(out, text)
    return 0
