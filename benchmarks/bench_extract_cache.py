"""Benchmark: a warm extraction cache against cold libvmaf runs, side by side.

Target: re-running the extract stage on an unchanged corpus (cache hits:
hashing the media, reading JSON) is at least 10x faster than extracting it
(libvmaf on every pair).  Both runs use the same corpus, process and
machine, so the ratio is what is compared, never an absolute time.

    python benchmarks/bench_extract_cache.py [--sources N] [--frames N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tinyvmaf.corpus_demo import build_demo_corpus, demo_sources
from tinyvmaf.extract import ExtractConfig, run_extract

TARGET_RATIO = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=3)
    parser.add_argument("--frames", type=int, default=24)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tinyvmaf-bench-") as tmp:
        root = Path(tmp)
        names = [s.name for s in demo_sources()[: args.sources]]
        manifest = build_demo_corpus(root / "data", frames=args.frames, sources=names, progress=False)
        cfg = ExtractConfig(cache_dir=str(root / "cache"))
        t0 = time.perf_counter()
        cold = run_extract(manifest, root / "cold.parquet", cfg, progress=False)
        t1 = time.perf_counter()
        warm = run_extract(manifest, root / "warm.parquet", cfg, progress=False)
        t2 = time.perf_counter()
        assert cold.extracted > 0 and warm.extracted == 0, (cold, warm)
        same = (root / "cold.parquet").read_bytes() == (root / "warm.parquet").read_bytes()
    ratio = (t1 - t0) / (t2 - t1)
    print(
        f"pairs={cold.extracted} cold={t1 - t0:.2f}s warm={t2 - t1:.3f}s ratio={ratio:.1f}x "
        f"(target >= {TARGET_RATIO}x) identical_output={same}"
    )
    return 0 if ratio >= TARGET_RATIO and same else 1


if __name__ == "__main__":
    sys.exit(main())
