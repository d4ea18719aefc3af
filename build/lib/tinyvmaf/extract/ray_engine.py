"""Extraction across machines: one Ray task per (reference, distorted) pair.

``tinyvmaf extract --engine ray [--ray-address HOST:PORT]`` is the extract
stage with its pool of threads replaced by a Ray cluster.  Everything else is
the single-machine code path (:mod:`tinyvmaf.extract`): the same manifest
parsing, the same cache keys, the same :func:`tinyvmaf.libvmaf.run_pair` and
the same ``features.parquet`` writer, so the output is byte-identical to
``tinyvmaf extract`` on one machine.

Who does what:

* The **driver** (the machine that runs ``tinyvmaf extract``) hashes the
  inputs, looks every pair up in its content-addressed cache, and sends only
  the misses to the cluster.  As each task finishes it writes the result to
  the cache (and one line to ``journal.log``, as for a local run), so an
  interrupted run keeps what it had, and the next run (local or Ray) is a
  cache hit.
* A **task** (on any node) runs FFmpeg/libvmaf on one pair and returns the
  frames; it touches no cache.  It first checks that its node's FFmpeg binary
  is byte-identical to the driver's (the binary is part of the cache key):
  a node with another build fails the pair instead of silently mixing
  results.

What a cluster needs: every node has this package installed (same
virtualenv or ``pip install`` of the same commit) and sees the corpus at the
same absolute path (a shared mount such as NFS, or ``dvc pull`` to the same
path on each node).  The cache need only be on the driver; point
``TINYVMAF_CACHE_DIR`` at a shared path to let several drivers (or later
``dvc repro`` runs on other machines) reuse it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..config.schema import ExtractConfig
from ..corpus.manifest import Pair
from ..media.ffmpeg import ffmpeg_info
from ..media.video import Video
from .libvmaf import run_pair
from .stage import ExtractStats, lookup_cached, raise_failures, run_extract

log = logging.getLogger(__name__)

#: Set to ``0`` so that a Ray instance started by this process binds to loopback only.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@dataclass(frozen=True)
class PairTask:
    """Everything a node needs to score one pair (picklable, absolute paths)."""

    pair_key: str
    cache_key: str
    ref: Video
    dist: Video
    teachers: tuple[str, ...]
    frame_policy: str
    ffmpeg: str | None
    ffmpeg_digest: str


@dataclass(frozen=True)
class PairOutcome:
    pair_key: str
    cache_key: str
    frames: list[dict[str, float]] | None
    error: str | None
    node: str  # host:pid of the worker that ran it


def _absolute(video: Video) -> Video:
    return dataclasses.replace(video, path=Path(video.path).resolve())


def score_task(task: PairTask) -> PairOutcome:
    """Run libvmaf on one pair (the body of the Ray task; callable without Ray)."""
    node = f"{socket.gethostname()}:{os.getpid()}"
    try:
        info = ffmpeg_info(task.ffmpeg)
        if info.digest != task.ffmpeg_digest:
            raise RuntimeError(
                f"FFmpeg on node {node} ({info.path}) differs from the driver's "
                f"(sha256 {info.digest[:12]} != {task.ffmpeg_digest[:12]}): install the same build everywhere"
            )
        res = run_pair(task.ref, task.dist, ffmpeg=info.path, teachers=task.teachers, frame_policy=task.frame_policy)
    except Exception as exc:  # noqa: BLE001 - reported per pair, as the local engine does
        return PairOutcome(task.pair_key, task.cache_key, None, f"{type(exc).__name__}: {exc}", node)
    return PairOutcome(task.pair_key, task.cache_key, res.frames, None, node)


def _connect(address: str | None, init_kwargs: dict[str, Any] | None) -> bool:
    """``ray.init`` unless already connected; returns whether this call connected."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address is None:
        # No cluster named: start a private one on this machine, bound to loopback.
        os.environ.setdefault(LOOPBACK_ENV, "0")
        kwargs["include_dashboard"] = False
    kwargs.update(init_kwargs or {})
    ray.init(address=address, **kwargs)
    return True


def extract_pairs_ray(
    pairs: list[Pair],
    cfg: ExtractConfig,
    *,
    address: str | None = None,
    progress: bool = True,
    num_cpus: float = 1,
    init_kwargs: dict[str, Any] | None = None,
) -> tuple[dict[str, list[dict[str, float]]], ExtractStats]:
    """Per-frame rows for every pair: cache hits locally, misses as Ray tasks.

    ``address`` is a Ray cluster (``HOST:PORT`` or ``auto``); ``None`` means
    ``$RAY_ADDRESS`` or, failing that, a Ray instance started for this call.
    ``num_cpus`` is what each task reserves (libvmaf runs single-threaded).
    """
    import ray

    found = lookup_cached(pairs, cfg)
    info, cache, results, errors, stats = found.info, found.cache, found.results, found.errors, found.stats
    tasks: list[PairTask] = []
    for p, key in found.todo:
        tasks.append(
            PairTask(
                pair_key=p.key,
                cache_key=key,
                ref=_absolute(p.ref),
                dist=_absolute(p.dist),
                teachers=tuple(cfg.teachers),
                frame_policy=cfg.frame_policy,
                ffmpeg=cfg.ffmpeg,
                ffmpeg_digest=info.digest,
            )
        )

    if tasks:
        connected = _connect(address, init_kwargs)
        try:
            remote = ray.remote(num_cpus=num_cpus, max_retries=2)(score_task)
            log.info(
                "extracting %d pair(s) on Ray (%s CPU(s) in the cluster); %d from cache",
                len(tasks),
                ray.cluster_resources().get("CPU", 0),
                stats.cached,
            )
            pending = [remote.remote(t) for t in tasks]
            bar = tqdm(total=len(tasks), desc="libvmaf@ray", unit="pair", disable=not progress)
            workers: dict[str, int] = {}
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    out: PairOutcome = ray.get(ref)
                    workers[out.node] = workers.get(out.node, 0) + 1
                    if out.error is not None:
                        errors[out.pair_key] = f"{out.error} (on {out.node})"
                    else:
                        assert out.frames is not None
                        cache.put(out.cache_key, out.frames, label=out.pair_key)
                        cache.journal(f"{out.pair_key}\t{out.cache_key}")
                        results[out.pair_key] = out.frames
                        stats.extracted += 1
                    bar.update(1)
            bar.close()
            log.info("pairs per worker: %s", json.dumps(workers, sort_keys=True))
        finally:
            if connected:
                ray.shutdown()
    raise_failures(errors, len(pairs))
    return results, stats


def run_extract_ray(
    manifest: Path,
    out: Path,
    cfg: ExtractConfig,
    *,
    address: str | None = None,
    progress: bool = True,
    init_kwargs: dict[str, Any] | None = None,
) -> ExtractStats:
    """The extract stage on a Ray cluster: same inputs, same cache, same parquet as :func:`run_extract`."""
    engine = functools.partial(extract_pairs_ray, address=address, init_kwargs=init_kwargs)
    return run_extract(manifest, out, cfg, progress=progress, extractor=engine)
