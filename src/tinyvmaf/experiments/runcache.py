"""Push what the run-cache entries name, uncached outs included (``make push``).

DVC 3.67 saves a run-cache entry for a stage whose ``cache: false`` outs are all
stage-level metrics or plots, and copies those outs into the local cache; but
``dvc push --run-cache`` uploads only the entries, not those copies (its push
collects the workspace's cached outs). A clone whose ``dvc.lock`` does not match
(``dvc repro --pull`` on another commit or branch) then finds the entry but not
the files and re-runs the stage. ``python -m tinyvmaf.experiments.runcache
[-r REMOTE]`` runs ``dvc push --run-cache`` and then pushes every object any
local run-cache entry names.
"""

from __future__ import annotations

import argparse
import os
import sys


def run_cache_entries(cache_dir: str) -> list[tuple[str, str]]:
    """Every (key, value) of the local run-cache (``.dvc/cache/runs/<xx>/<key>/<value>``)."""
    out = []
    if not os.path.isdir(cache_dir):
        return out
    for shard in sorted(os.listdir(cache_dir)):
        for key in sorted(os.listdir(os.path.join(cache_dir, shard))):
            out += [(key, value) for value in sorted(os.listdir(os.path.join(cache_dir, shard, key)))]
    return out


def push(remote: str | None = None, jobs: int | None = None) -> int:
    """``dvc push --run-cache``, then the objects the run-cache names; returns how many objects went up."""
    from dvc.repo import Repo

    with Repo() as repo:
        repo.push(remote=remote, run_cache=True, jobs=jobs)
        used = repo.stage_cache.get_used_objs(run_cache_entries(repo.stage_cache.cache_dir), remote=remote)
        sent = 0
        for odb, objs in used.items():
            result = repo.cloud.push(objs, jobs=jobs, remote=remote, odb=odb)
            if result.failed:
                raise RuntimeError(f"failed to push {len(result.failed)} run-cache object(s)")
            sent += len(result.transferred)
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinyvmaf.experiments.runcache", description=__doc__)
    parser.add_argument("-r", "--remote", help="the DVC remote (default: the default remote)")
    parser.add_argument("-j", "--jobs", type=int)
    args = parser.parse_args(argv)
    n = push(args.remote, args.jobs)
    print(f"pushed the outputs and run-cache, and {n} object(s) only the run-cache named")
    return 0


if __name__ == "__main__":
    sys.exit(main())
