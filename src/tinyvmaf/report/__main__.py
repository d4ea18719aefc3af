"""``python -m tinyvmaf.report readme [--check]`` (``make readme``): see :mod:`tinyvmaf.report.readme`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .readme import check_readme, write_readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinyvmaf.report", description=__doc__)
    parser.add_argument("what", choices=["readme"], help="what to render")
    parser.add_argument("--root", type=Path, default=Path("."), help="the project (default: here)")
    parser.add_argument("--check", action="store_true", help="fail, naming the blocks, if README.md is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = check_readme(args.root)
        for name in stale:
            print(f"README.md: block {name!r} differs from the committed results (run `make readme`)", file=sys.stderr)
        return 1 if stale else 0
    changed = write_readme(args.root)
    print(f"README.md: {', '.join(changed) if changed else 'no block'} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
