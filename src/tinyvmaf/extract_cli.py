"""``tinyvmaf extract``: the DVC extract stage (manifest → features.parquet)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import PARAMS_FILE, load_params
from .extract import ExtractConfig, run_extract


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=PARAMS_FILE, help="composed params (default: params.yaml)")
    parser.add_argument("--manifest", help="override data.manifest")
    parser.add_argument("--out", default="features.parquet")
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
    cfg = ExtractConfig.from_mapping(params.extract)
    if args.workers:
        cfg = ExtractConfig(**{**cfg.__dict__, "workers": args.workers})
    manifest = Path(args.manifest or params.data.manifest)
    if args.engine == "ray":
        from .distributed import run_extract_ray

        stats = run_extract_ray(manifest, Path(args.out), cfg, address=args.ray_address, progress=not args.no_progress)
    else:
        stats = run_extract(manifest, Path(args.out), cfg, progress=not args.no_progress)
    print(f"extract: {stats.extracted} pair(s) extracted, {stats.cached} from cache -> {args.out}")
    return 0
