"""The extract stage: manifest → ``features.parquet`` (one row per frame).

Pairs run in parallel (one single-threaded libvmaf process each), behind a
content-addressed cache (:mod:`tinyvmaf.cache`), so a rerun after adding a
pair runs libvmaf once.  A failing pair does not discard the others: every
pair that succeeded is cached before the stage reports the failures (all
of them, each naming its pair) and exits non-zero.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..common.atomic import atomic_path
from ..config.schema import ExtractConfig
from ..corpus.manifest import Pair, read_manifest
from ..media.ffmpeg import FFmpegError, FFmpegInfo, ffmpeg_info
from ..media.video import MediaError
from .cache import PairCache, default_cache_dir, pair_key
from .libvmaf import run_pair
from .plan import ExtractionPlan, plan_for

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class ExtractError(RuntimeError):
    """One or more pairs failed; the message lists each with its reason."""


@dataclass
class ExtractStats:
    extracted: int = 0
    cached: int = 0


@dataclass
class CacheLookup:
    """Where a set of pairs stands before any libvmaf run: hits, misses (with their keys), unreadable pairs."""

    info: FFmpegInfo
    cache: PairCache
    plan: ExtractionPlan
    results: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    todo: list[tuple[Pair, str]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    stats: ExtractStats = field(default_factory=ExtractStats)


def lookup_cached(pairs: list[Pair], cfg: ExtractConfig) -> CacheLookup:
    """Key every pair and take the hits from the cache; every engine (threads, Ray) starts here.

    ``cfg.teachers`` is the whole list of teachers of the pass (the CLI puts
    the students' teachers first, :meth:`Config.teachers`).
    """
    info = ffmpeg_info(cfg.ffmpeg)
    plan = plan_for(cfg.teachers)
    found = CacheLookup(info=info, cache=PairCache(default_cache_dir(cfg.cache_dir)), plan=plan)
    params = {**cfg.cache_params(), "teachers": plan.cache_params()}
    for p in pairs:
        try:
            key = pair_key(p.ref, p.dist, info.digest, params)
        except OSError as exc:
            found.errors[p.key] = f"cannot read media: {exc}"
            continue
        hit = found.cache.get(key, plan.columns)
        if hit is not None:
            found.results[p.key] = hit
            found.stats.cached += 1
        else:
            found.todo.append((p, key))
    return found


def raise_failures(errors: dict[str, str], n_pairs: int) -> None:
    """One error listing every failed pair by key (the successful ones are already cached)."""
    if errors:
        lines = "\n".join(f"  pair {k!r}: {msg}" for k, msg in sorted(errors.items()))
        raise ExtractError(f"{len(errors)} of {n_pairs} pair(s) failed (the other pairs are cached):\n{lines}")


def extract_pairs(
    pairs: list[Pair], cfg: ExtractConfig, *, progress: bool = True
) -> tuple[dict[str, list[dict[str, float]]], ExtractStats]:
    """Per-frame rows for every pair, from the cache or from libvmaf (a pool of threads)."""
    found = lookup_cached(pairs, cfg)
    info, cache, results, todo, errors, stats = (
        found.info, found.cache, found.results, found.todo, found.errors, found.stats,
    )  # fmt: skip

    def work(item: tuple[Pair, str]) -> tuple[str, list[dict[str, float]]]:
        p, key = item
        res = run_pair(p.ref, p.dist, ffmpeg=info.path, teachers=found.plan, frame_policy=cfg.frame_policy)
        cache.put(key, res.frames, label=p.key)  # the entry first: a journal line always has its entry
        cache.journal(f"{p.key}\t{key}")
        return p.key, res.frames

    workers = cfg.workers or os.cpu_count() or 1
    if todo:
        from tqdm import tqdm

        log.info("extracting %d pair(s) with %d worker(s); %d from cache", len(todo), workers, stats.cached)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(work, item): item[0] for item in todo}
            bar = tqdm(total=len(todo), desc="libvmaf", unit="pair", disable=not progress)
            for fut in as_completed(futures):
                pair = futures[fut]
                try:
                    k, frames = fut.result()
                    results[k] = frames
                    stats.extracted += 1
                except (MediaError, FFmpegError, ValueError, OSError, KeyError) as exc:
                    errors[pair.key] = str(exc)
                bar.update(1)
            bar.close()
    raise_failures(errors, len(pairs))
    return results, stats


def frames_table(pairs: list[Pair], results: dict[str, list[dict[str, float]]], teachers) -> pd.DataFrame:
    """Long table: ``key, content, frame``, every teacher's feature keys (libvmaf's names), one column per teacher."""
    import pandas as pd  # here, not at import: scoring one pair never builds a table

    records = []
    for p in pairs:
        for i, row in enumerate(results[p.key]):
            records.append({"key": p.key, "content": p.content, "frame": i, **row})
    cols = ["key", "content", "frame", *plan_for(teachers).columns]
    df = pd.DataFrame.from_records(records, columns=cols)
    df["frame"] = df["frame"].astype("int32")
    return df


Extractor = Callable[..., tuple[dict[str, list[dict[str, float]]], ExtractStats]]


def run_extract(
    manifest: Path, out: Path, cfg: ExtractConfig, *, progress: bool = True, extractor: Extractor = extract_pairs
) -> ExtractStats:
    """The stage: read the manifest, extract (cached; ``extractor`` is the engine), write the parquet atomically."""
    pairs = read_manifest(manifest)
    results, stats = extractor(pairs, cfg, progress=progress)
    df = frames_table(pairs, results, cfg.teachers)
    with atomic_path(out) as tmp:
        df.to_parquet(tmp, index=False)
    log.info(
        "wrote %s: %d frames from %d pairs (%d extracted, %d cached)",
        out,
        len(df),
        len(pairs),
        stats.extracted,
        stats.cached,
    )
    return stats
