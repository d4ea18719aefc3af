"""``tinyvmaf corpus``: build the embedded demo corpus, or import a Netflix-format dataset."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    demo = sub.add_parser("demo", help="render the demo corpus (deterministic) and its manifest.csv")
    demo.add_argument("out", type=Path, help="output folder, e.g. data/")
    demo.add_argument("--frames", type=int, default=48)
    demo.add_argument("--source", action="append", help="only these sources (repeatable)")
    demo.add_argument("--hrc", action="append", help="only these ladder rungs (repeatable)")
    demo.add_argument("--workers", type=int)
    demo.add_argument("--no-progress", action="store_true")
    nflx = sub.add_parser("import-nflx", help="manifest from a Netflix dataset file, parsed (never executed)")
    nflx.add_argument("dataset", type=Path, help="e.g. NFLX_dataset_public.py or NFLX_dataset_public_raw.py")
    nflx.add_argument("--ref-dir", type=Path, required=True)
    nflx.add_argument("--dis-dir", type=Path, required=True)
    nflx.add_argument("-o", "--out", type=Path, default=Path("data/manifest.csv"))


def run(args: argparse.Namespace) -> int:
    if args.action == "demo":
        from .demo import build_demo_corpus

        manifest = build_demo_corpus(
            args.out,
            frames=args.frames,
            sources=args.source,
            hrcs=args.hrc,
            workers=args.workers,
            progress=not args.no_progress,
        )
        print(f"demo corpus: {manifest}")
        return 0
    from .nflx_import import import_nflx

    n = import_nflx(args.dataset, args.ref_dir, args.dis_dir, args.out)
    print(f"import-nflx: {n} pair(s) -> {args.out}")
    return 0
