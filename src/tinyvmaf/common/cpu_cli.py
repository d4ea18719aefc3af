"""``tinyvmaf cpu``: print what the pins put in effect, as a stage process sees it (JSON)."""

from __future__ import annotations

import argparse
import json


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-torch", action="store_true", help="skip importing torch (faster)")


def run(args: argparse.Namespace) -> int:
    import sys

    if args.no_torch:
        sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` raise ImportError
    from .cpu import report

    print(json.dumps(report(), indent=2))
    return 0
