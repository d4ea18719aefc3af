"""Sharing results through a DVC remote: a teammate's clone gets the pipeline's outputs without running it.

Clone A (``servers.pipeline``) has run the whole pipeline once; each test works on
its own copy of A (it adds a remote, credentials and a tag there).  A pushes its
data, outputs and run-cache (``dvc push --run-cache``) to a remote: moto's S3
server on 127.0.0.1 (credentials only in A's ``.dvc/config.local`` and in B's
environment), or a plain shared directory.  Then two fresh clones, each with an
empty DVC cache and an empty extraction cache:

* **B** clones A's committed results (dvc.lock included): ``dvc pull
  --run-cache`` then ``dvc repro`` — every stage is up to date or restored.
* **B′** clones the commit before the run (no dvc.lock, as when the lock is
  not shared): ``dvc repro --pull`` — every stage is restored from the
  run-cache that A pushed (with ``make push``'s helper, which also uploads the
  committed ``cache: false`` outs the entries name; plain ``dvc push --run-cache``
  leaves them out).

In both, no stage command runs: libvmaf's journal stays empty, no MLflow run
appears, the output says so for every stage, and ``metrics/*.json`` and the
ONNX bytes equal A's.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from project import REPO, expand_stages, journal_lines, run

if TYPE_CHECKING:
    from servers import S3, Pipeline

pytest_plugins = ["servers"]

ONNX = "model/tiny/vmaf_tiny_fr_v2_nflx.onnx"


def isolated_aws(root: Path) -> dict[str, str]:
    """An AWS environment that can only reach moto: empty config files, no instance metadata lookups."""
    empty = root / "aws-empty"
    empty.write_text("")
    return {
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
    }


def stage_names(project: Path = REPO) -> list[str]:
    """The stages DVC runs in ``project`` (``foreach`` expanded over its params' students)."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    return list(expand_stages(yaml.safe_load((project / "dvc.yaml").read_text()), params))


def test_every_stage_is_run_cacheable() -> None:
    """What DVC needs to save a stage to the run-cache and restore it in another clone.

    A stage needs a command, deps and outs, and no ``persist`` out.  DVC 3.67 saves no
    run-cache entry for a stage with a ``cache: false`` out that is not a *stage-level*
    metric or plot (dvc/stage/__init__.py: ``no_cache_outs``), so every uncached out (the
    files committed to git: metrics, plots, reports) is declared under its stage's
    ``metrics:`` or ``plots:``.
    """
    stages = expand_stages(
        yaml.safe_load((REPO / "dvc.yaml").read_text()), yaml.safe_load((REPO / "params.yaml").read_text())
    )
    problems = []
    for name, stage in stages.items():
        if not stage.get("cmd") or not stage.get("deps"):
            problems.append(f"{name}: needs a cmd and deps")
        outs = [(kind, o) for kind in ("outs", "metrics", "plots") for o in stage.get(kind) or []]
        if not outs:
            problems.append(f"{name}: has no outs")
        for kind, out in outs:
            if isinstance(out, dict):
                (path, opts), *_ = out.items()
                if opts and opts.get("persist"):
                    problems.append(f"{name}: {path} is persist")
                if opts and opts.get("cache") is False and kind == "outs":
                    problems.append(f"{name}: {path} has cache: false but is not under the stage's metrics/plots")
    assert not problems, "stages that cannot be restored from a remote run-cache:\n" + "\n".join(problems)


def assert_nothing_ran(out: str, *, restored_only: bool, project: Path) -> None:
    """Every stage of ``project``'s dvc.yaml is reported up to date (or restored), and no command ran."""
    assert "Running stage" not in out, out
    for name in stage_names(project):
        restored = f"Stage '{name}' is cached - skipping run, checking out outputs" in out
        unchanged = f"Stage '{name}' didn't change, skipping" in out
        assert restored or (unchanged and not restored_only), f"stage {name!r} not restored:\n{out}"


def assert_same_results(a: Path, b: Path) -> None:
    metrics = sorted(p.relative_to(a) for p in (a / "metrics").rglob("*.json"))
    assert metrics, "A has no metrics"
    for rel in [*metrics, Path(ONNX)]:
        assert (b / rel).read_bytes() == (a / rel).read_bytes(), rel


def assert_no_run_happened(clone: Path, extract_cache: Path) -> None:
    assert journal_lines(extract_cache) == [], "libvmaf ran in the clone"
    db = clone / "mlflow.db"
    if db.exists():  # no store at all is expected; an empty one would do
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{db}")
        assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def share_and_restore(
    pipeline: Pipeline,
    root: Path,
    label: str,
    remote_url: str,
    *,
    a_setup: list[list[str]] = (),
    b_setup: list[list[str]] = (),
    a_env: dict[str, str] | None = None,
    b_env: dict[str, str] | None = None,
) -> list[Path]:
    """Push A to ``remote_url``, then restore in the two kinds of fresh clone (see module doc); returns them."""
    from servers import BASE_BRANCH, TIMINGS

    A = pipeline.path
    a_env = dict(a_env or {})
    run(["dvc", "remote", "add", "--local", "-f", "-d", "team", remote_url], A, a_env)
    for cmd in a_setup:
        run(cmd, A, a_env)
    t0 = time.perf_counter()
    run(["dvc", "push", "--run-cache"], A, a_env)
    TIMINGS[f"A: dvc push --run-cache ({label})"] = time.perf_counter() - t0

    def fresh_clone(name: str, branch: str | None) -> tuple[Path, Path, dict[str, str]]:
        clone, cache = root / name, root / f"{name}-extract-cache"
        run(["git", "clone", "-q", *(["-b", branch] if branch else []), str(A), str(clone)], root)
        assert not (clone / ".dvc" / "cache").exists()
        env = {**(b_env or {}), "TINYVMAF_CACHE_DIR": str(cache)}
        run(["dvc", "remote", "add", "--local", "-d", "team", remote_url], clone, env)
        for cmd in b_setup:
            run(cmd, clone, env)
        return clone, cache, env

    # B: A's committed results, `dvc pull --run-cache` then `dvc repro`.
    B, b_cache, env = fresh_clone("B", None)
    t0 = time.perf_counter()
    run(["dvc", "pull", "--run-cache"], B, env)
    TIMINGS[f"B: dvc pull --run-cache ({label})"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = run(["dvc", "repro"], B, env)
    TIMINGS[f"B: dvc repro after the pull ({label})"] = time.perf_counter() - t0
    assert_nothing_ran(out, restored_only=False, project=B)
    assert_same_results(A, B)
    assert_no_run_happened(B, b_cache)

    # B': the commit before the run (no dvc.lock): only the run-cache knows the results. `dvc push
    # --run-cache` uploaded the entries but not the committed (cache: false) outs they name: `make push`.
    run([sys.executable, "-m", "tinyvmaf.experiments.runcache"], A, a_env)
    B2, b2_cache, env = fresh_clone("B-prime", BASE_BRANCH)
    assert not (B2 / "dvc.lock").exists()
    t0 = time.perf_counter()
    out = run(["dvc", "repro", "--pull"], B2, env)
    TIMINGS[f"B': dvc repro --pull, no dvc.lock ({label})"] = time.perf_counter() - t0
    assert_nothing_ran(out, restored_only=True, project=B2)
    assert_same_results(A, B2)
    assert_no_run_happened(B2, b2_cache)
    return [B, B2]


def files_containing(root: Path, needle: str, *, skip: tuple[str, ...] = ()) -> list[str]:
    """Paths under ``root`` whose bytes contain ``needle`` (the git and DVC object stores included)."""
    hits = []
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not path.is_symlink() and rel not in skip and needle.encode() in path.read_bytes():
            hits.append(rel)
    return hits


@pytest.mark.slow
def test_s3_remote_shares_run_cache(tmp_path: Path, pipeline: Pipeline) -> None:
    import boto3

    from servers import S3_KEY_ID, S3_SECRET, moto_s3

    pipeline = pipeline.copy(tmp_path / "A")
    no_aws = isolated_aws(tmp_path)
    with moto_s3() as s3:
        s3: S3
        endpoint = ["dvc", "remote", "modify", "--local", "team", "endpointurl", s3.endpoint]
        region = ["dvc", "remote", "modify", "--local", "team", "region", "us-east-1"]
        clones = share_and_restore(
            pipeline,
            tmp_path,
            "S3 on moto",
            f"s3://{s3.bucket}/tinyvmaf",
            # A keeps its credentials in .dvc/config.local, the clones take theirs from the environment.
            a_setup=[
                endpoint,
                region,
                ["dvc", "remote", "modify", "--local", "team", "access_key_id", S3_KEY_ID],
                ["dvc", "remote", "modify", "--local", "team", "secret_access_key", S3_SECRET],
            ],
            b_setup=[endpoint, region],
            a_env=no_aws,
            b_env={**no_aws, "AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET},
        )
        client = boto3.client(
            "s3",
            endpoint_url=s3.endpoint,
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3.bucket)["Contents"]]
        assert any("/runs/" in k for k in keys), keys  # the run-cache went up
        got = artifacts_get(pipeline, tmp_path, s3, no_aws)
        assert files_containing(got, S3_SECRET) == []
        leaked = [k for k in keys if S3_SECRET.encode() in client.get_object(Bucket=s3.bucket, Key=k)["Body"].read()]
        assert leaked == []

    # The secret lives in A's .dvc/config.local and nowhere else: not in git, params, reports, MLflow, the cache.
    assert files_containing(pipeline.path, S3_SECRET, skip=(".dvc/config.local",)) == []
    assert S3_SECRET in (pipeline.path / ".dvc" / "config.local").read_text()
    for repo in [pipeline.path, *clones]:
        assert S3_SECRET not in run(["git", "log", "--all", "-p"], repo), f"{repo.name}: the secret is in git"
    for clone in clones:
        assert files_containing(clone, S3_SECRET) == [], clone.name


def artifacts_get(pipeline: Pipeline, root: Path, s3: S3, no_aws: dict[str, str]) -> Path:
    """``dvc artifacts get`` of the model artifact (dvc.yaml ``artifacts:``) from the S3 remote, outside any repo."""
    from servers import S3_KEY_ID, S3_SECRET

    cfg = root / "remote.config"
    cfg.write_text(
        f"[core]\n    remote = team\n['remote \"team\"']\n    url = s3://{s3.bucket}/tinyvmaf\n"
        f"    endpointurl = {s3.endpoint}\n    region = us-east-1\n"
    )
    out = root / "artifact"
    env = {**no_aws, "AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
    outside = root / "elsewhere"
    outside.mkdir()
    # A version of the artifact is a git tag (GTO's `vmaf-tiny-fr@v0.1.0`); `dvc artifacts get` resolves it.
    run(["gto", "register", "vmaf-tiny-fr", "--version", "v0.1.0", "-m", "gated demo model"], pipeline.path)
    get = ["dvc", "artifacts", "get", str(pipeline.path), "vmaf-tiny-fr", "-o", str(out), "--config", str(cfg)]
    run(get, outside, env)
    tiny = pipeline.path / "model" / "tiny"
    names = sorted(p.name for p in tiny.iterdir())
    assert names == [
        "registry.json",
        "vmaf_tiny_fr_v2_nflx.json",
        "vmaf_tiny_fr_v2_nflx.onnx",
        "vmaf_v0_6_1_exact.json",
        "vmaf_v0_6_1_exact.onnx",
    ]
    assert sorted(p.name for p in out.iterdir()) == names
    for name in names:
        assert (out / name).read_bytes() == (tiny / name).read_bytes(), name
    return out


@pytest.mark.slow
def test_directory_remote_shares_run_cache(tmp_path: Path, pipeline: Pipeline) -> None:
    pipeline = pipeline.copy(tmp_path / "A")
    remote = tmp_path / "shared-remote"
    remote.mkdir()
    share_and_restore(pipeline, tmp_path, "shared directory", str(remote))
    assert any((remote / "runs").rglob("*")), "no run-cache in the remote"
