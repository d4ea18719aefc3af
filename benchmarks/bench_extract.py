"""Rows 1 and 2: extraction against its limit, and incremental work.

Row 1. ``tinyvmaf extract`` (empty cache, two workers) against bare FFmpeg
libvmaf over the same pairs with the same total threads: the very filter
graph the extractor builds, two FFmpeg processes at a time, no probing, no
cache, no parquet.  Throughput ratio = bare time / tinyvmaf time (target ≥
0.95 at the demo's 120 pairs).  And tinyvmaf with two workers against one
(target ≥ 1.8×).  ``--full`` adds a 1080p set (demo pairs upscaled).  Where
the gap comes from is measured piece by piece: interpreter start-up and
imports, hashing the media for the cache keys, reference probes, parquet
writing.

Row 2. Adding one pair to an extracted corpus of N pairs: the rerun against
(one pair alone + 3 s) — the target is ``rerun ≤ one pair + 3 s``, reported
as the ratio (one pair + 3 s) / rerun, ≥ 1 when met — and a warm cache
against cold libvmaf on the whole corpus.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import REPO, Row, side_by_side, timed_run

from tinyvmaf.corpus.manifest import read_manifest

ROUNDS = 2


def tinyvmaf_extract(manifest: Path, out: Path, cache: Path, workers: int) -> float:
    if cache.exists():
        shutil.rmtree(cache)
    cmd = [sys.executable, "-m", "tinyvmaf.cli", "extract", "--params", str(REPO / "params.yaml")]
    cmd += ["--manifest", str(manifest), "--out", str(out), "--workers", str(workers), "--no-progress"]
    seconds, _ = timed_run(cmd, extra_env={"TINYVMAF_CACHE_DIR": str(cache)})
    return seconds


def bare_commands(manifest: Path, log_dir: Path) -> list[list[str]]:
    """The extractor's own FFmpeg command per pair (same graph, models and CPU pinning), nothing around it."""
    from tinyvmaf.common.cpu import ffmpeg_global_args
    from tinyvmaf.extract.libvmaf import build_filtergraph
    from tinyvmaf.media.ffmpeg import ffmpeg_info
    from tinyvmaf.media.video import probe

    exe = ffmpeg_info(None).path
    cmds = []
    for i, p in enumerate(read_manifest(manifest)):
        pr = probe(p.ref, exe)  # done here, outside the timed part: the baseline knows the geometry for free
        graph = build_filtergraph((pr.width, pr.height), pr.pix_fmt, log_dir / f"{i}.json", ["vmaf_v0.6.1"], None)
        cmds.append([exe, "-hide_banner", "-nostdin", "-loglevel", "error", *ffmpeg_global_args(), *p.dist.input_args(),
                     *p.ref.input_args(), "-lavfi", graph, "-f", "null", "-"])  # fmt: skip
    return cmds


def bare_extract(cmds: list[list[str]], jobs: int) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for proc in pool.map(lambda c: subprocess.run(c, capture_output=True), cmds):
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr.decode(errors="replace")[-2000:])
    return time.perf_counter() - t0


def subset(manifest: Path, rows: slice, dest: Path) -> Path:
    """Some rows of a manifest, written to ``dest`` with absolute media paths (the corpus stays untouched)."""
    all_rows = list(csv.DictReader(manifest.open()))
    for r in all_rows:
        for col in ("ref", "dist"):
            r[col] = str((manifest.parent / r[col]).resolve())
    with dest.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(all_rows[0]))
        w.writeheader()
        w.writerows(all_rows[rows])
    return dest


def upscaled_1080p(manifest: Path, n: int, root: Path, loops: int = 1) -> Path:
    """``n`` demo pairs at 1920x1080 (reference lossless FFV1, distorted x264), each played ``loops`` times."""
    from tinyvmaf.media.ffmpeg import ffmpeg_info

    exe = ffmpeg_info(None).path
    pairs = read_manifest(manifest)[:n]
    data = root / "hd"
    data.mkdir(parents=True, exist_ok=True)
    rows = ["key,content,ref,dist"]
    done: dict[Path, str] = {}
    for p in pairs:
        if p.ref.path not in done:
            ref = data / f"{p.content}_ref.mkv"
            subprocess.run([exe, "-v", "error", "-y", "-stream_loop", str(loops - 1), "-i", str(p.ref.path),
                            "-vf", "scale=1920:1080:flags=bicubic",
                            "-c:v", "ffv1", "-threads", "1", str(ref)], check=True)  # fmt: skip
            done[p.ref.path] = ref.name
        dist = data / f"{p.key}.mkv"
        subprocess.run([exe, "-v", "error", "-y", "-stream_loop", str(loops - 1), "-i", str(p.dist.path),
                        "-vf", "scale=1920:1080:flags=bicubic",
                        "-c:v", "libx264", "-crf", "23", "-threads", "1", str(dist)], check=True)  # fmt: skip
        rows.append(f"{p.key},{p.content},{done[p.ref.path]},{dist.name}")
    out = data / "manifest.csv"
    out.write_text("\n".join(rows) + "\n")
    return out


def gap_breakdown(manifest: Path, root: Path) -> dict[str, float]:
    """Seconds each piece around libvmaf costs, for the whole manifest."""
    import pandas as pd

    from tinyvmaf.extract.cache import file_sha256
    from tinyvmaf.media.ffmpeg import ffmpeg_info
    from tinyvmaf.media.video import probe

    out: dict[str, float] = {}
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import tinyvmaf.cli, tinyvmaf.extract.cli, tinyvmaf.extract.stage"], check=True
    )
    out["python_startup_and_imports"] = time.perf_counter() - t0
    pairs = read_manifest(manifest)
    files = {v.path for p in pairs for v in (p.ref, p.dist)}
    t0 = time.perf_counter()
    for f in files:
        file_sha256(f)
    out["hashing_media_for_cache_keys"] = time.perf_counter() - t0
    exe = ffmpeg_info(None).path
    refs = {p.ref.path: p.ref for p in pairs}
    t0 = time.perf_counter()
    for v in refs.values():
        probe(v, exe)
    out["reference_probes"] = time.perf_counter() - t0
    out["reference_probes_count"] = len(refs)
    frames = len(pairs) * 48  # the demo's frames per pair; one row each, as features.parquet has
    df = pd.DataFrame({c: [0.5] * frames for c in ("adm2", "vif0", "vif1", "vif2", "vif3", "motion2", "vmaf")})
    df.insert(0, "key", [f"pair{i // 48}" for i in range(frames)])
    t0 = time.perf_counter()
    df.to_parquet(root / "x.parquet")
    out["parquet_writing"] = time.perf_counter() - t0
    return {k: round(v, 3) for k, v in out.items()}


def extraction_rows(data_manifest: Path, *, full: bool) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="tinyvmaf-bench-extract-") as tmp:
        root = Path(tmp)
        sets = [("576x324, 120 pairs", subset(data_manifest, slice(None), root / "all.csv"))]
        if full:
            sets.append(("1080p, 10 pairs", upscaled_1080p(data_manifest, 10, root)))
        for label, manifest in sets:
            cmds = bare_commands(manifest, root)
            n = len(cmds)
            res = side_by_side(
                lambda m=manifest: tinyvmaf_extract(m, root / "f.parquet", root / "cache", 2),
                lambda c=cmds: bare_extract(c, 2),
                ROUNDS,
                warmup=False,
            )
            _, rss = timed_run(
                [sys.executable, "-m", "tinyvmaf.cli", "extract", "--params", str(REPO / "params.yaml"),
                 "--manifest", str(manifest), "--out", str(root / "g.parquet"), "--workers", "2", "--no-progress"],
                extra_env={"TINYVMAF_CACHE_DIR": str(root / "cache-rss")},
            )  # fmt: skip
            res["peak_rss_mib"] = round(rss / 1024, 1)
            res["pairs"] = n
            res["gap"] = gap_breakdown(manifest, root)
            rows.append(Row(f"extract {label}", "tinyvmaf throughput / bare FFmpeg libvmaf (2 jobs each)",
                            res["ratio"], ">= 0.95", res["ratio"] >= 0.95, res))  # fmt: skip
        forty = subset(data_manifest, slice(0, 40), root / "forty.csv")
        res = side_by_side(
            lambda: tinyvmaf_extract(forty, root / "f.parquet", root / "cache", 2),
            lambda: tinyvmaf_extract(forty, root / "f.parquet", root / "cache", 1),
            ROUNDS,
            warmup=False,
        )
        rows.append(Row("extract scaling, 40 pairs", "1 worker time / 2 workers time", res["ratio"], ">= 1.8",
                        res["ratio"] >= 1.8, res))  # fmt: skip
    return rows


def incremental_rows(data_manifest: Path) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="tinyvmaf-bench-incr-") as tmp:
        root = Path(tmp)
        n = 40
        base = subset(data_manifest, slice(0, n), root / "base.csv")
        plus = subset(data_manifest, slice(0, n + 1), root / "plus.csv")
        single = subset(data_manifest, slice(n, n + 1), root / "single.csv")
        cache = root / "cache"
        cold = tinyvmaf_extract(base, root / "f.parquet", cache, 2)
        cmd = [sys.executable, "-m", "tinyvmaf.cli", "extract", "--params", str(REPO / "params.yaml"),
               "--out", str(root / "f.parquet"), "--workers", "2", "--no-progress"]  # fmt: skip
        warm, _ = timed_run([*cmd, "--manifest", str(base)], extra_env={"TINYVMAF_CACHE_DIR": str(cache)})
        rerun, _ = timed_run([*cmd, "--manifest", str(plus)], extra_env={"TINYVMAF_CACHE_DIR": str(cache)})
        one = tinyvmaf_extract(single, root / "s.parquet", root / "cache1", 1)
    budget = one + 3.0
    return [
        Row(f"incremental: add 1 pair to {n}", "(one pair alone + 3 s) / rerun", budget / rerun, ">= 1",
            rerun <= budget, {"rerun_s": round(rerun, 2), "one_pair_s": round(one, 2), "full_s": round(cold, 2)}),
        Row(f"cache: unchanged {n} pairs", "cold libvmaf time / warm cache time", cold / warm, ">= 10",
            cold / warm >= 10, {"cold_s": round(cold, 2), "warm_s": round(warm, 2)}),
    ]  # fmt: skip
