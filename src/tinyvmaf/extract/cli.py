"""``tinyvmaf extract``: the DVC extract stage (manifest → features.parquet)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..config.params import PARAMS_FILE, load_params


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=PARAMS_FILE, help="composed params (default: params.yaml)")
    parser.add_argument("--manifest", help="override paths.manifest")
    parser.add_argument("--out", help="override paths.features")
    parser.add_argument("--workers", type=int, help="parallel pairs (default: extract.workers or all cores)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: a thread pool on this machine (default); ray: one Ray task per pair across a cluster",
    )
    parser.add_argument(
        "--ray-address",
        help="with --engine ray: the cluster (HOST:PORT or auto; default $RAY_ADDRESS, else a local Ray)",
    )


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    cfg = dataclasses.replace(params.extract, teachers=params.teachers())  # the students' teachers + extras
    if args.workers:
        cfg = dataclasses.replace(cfg, workers=args.workers)
    manifest = Path(args.manifest or params.paths.manifest)
    out = Path(args.out or params.paths.features)
    if args.engine == "ray":
        from .ray_engine import run_extract_ray

        stats = run_extract_ray(manifest, out, cfg, address=args.ray_address, progress=not args.no_progress)
    else:
        from .stage import run_extract

        stats = run_extract(manifest, out, cfg, progress=not args.no_progress)
    print(f"extract: {stats.extracted} pair(s) extracted, {stats.cached} from cache -> {out}")
    return 0
