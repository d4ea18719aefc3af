"""``make bench`` / ``make bench-full``: every stage measured against its limit, side by side.

    python benchmarks/run.py            # rows 1 (576x324), 2, 3 (test corpus), 4 (2e5 rows), 5
    python benchmarks/run.py --full     # + 1080p extraction, the demo pipeline's restore, training scaling
    python benchmarks/run.py --only train,inference

Writes ``benchmarks/results.json`` and prints the table the README's
"Performance" section shows.  Benchmarks are not tests: nothing in
``make test`` depends on a timing; a missed target is reported, not failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, Row, table, write_results  # noqa: E402

GROUPS = ("extract", "incremental", "pipeline", "train", "inference")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="every row (long)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(GROUPS)}")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else set(GROUPS)
    manifest = REPO / "data" / "manifest.csv"
    if only & {"extract", "incremental", "inference"} and not manifest.is_file():
        print(f"{manifest}: no demo corpus; `make corpus` builds it", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    rows: list[Row] = []
    if "extract" in only:
        from bench_extract import extraction_rows

        rows += extraction_rows(manifest, full=args.full)
    if "incremental" in only:
        from bench_extract import incremental_rows

        rows += incremental_rows(manifest)
    if "pipeline" in only:
        from bench_pipeline import pipeline_rows

        rows += pipeline_rows(full=args.full)
    if "train" in only:
        from bench_train import training_rows

        rows += training_rows(full=args.full)
    if "inference" in only:
        from bench_inference import inference_rows

        rows += inference_rows(manifest)
    seconds = time.perf_counter() - t0
    path = write_results(rows, full=args.full, seconds=seconds)
    print(table(rows))
    print(f"\n{len(rows)} rows in {seconds:.0f} s -> {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
