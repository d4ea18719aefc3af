"""The golden stage: is the extractor still libvmaf, and is the callable teacher still the teacher?

It runs after ``extract``, on pairs the project carries in git, through the
extract stage's own code path with a fresh cache (a stale or hand-edited
cache entry must not vouch for the extractor), and checks:

netflix   Netflix's golden pairs (``assets/golden/netflix``) against the
          values Netflix's own test suite asserts (``golden.tolerance``,
          5e-5: ``assertAlmostEqual(places=4)``).  Missing files are an
          error, never a skip.
project   the project's pinned pairs (:mod:`tinyvmaf.golden.recipes`):
          FFmpeg re-creates the same bytes and libvmaf the same values.
teacher   every configured teacher (:mod:`tinyvmaf.teacher`) on every
          golden frame's features against libvmaf's logged score: the
          worst ratio of the deviation to the bound that six-decimal
          logging gives through the model's gradient
          (:meth:`TeacherSpec.rounding_bound`) must be <= 1, and the
          v0.6.1 family's deviation also <= ``golden.teacher_tolerance``.
          Where Netflix's own ``vmaf`` CLI values are pinned for a teacher
          (``expected_teachers`` in ``netflix/golden.json``), libvmaf's
          score here must match them too (per frame and pooled, 1e-4).

The Netflix and project values are those of ``vmaf_v0.6.1`` (what Netflix's
test suite asserts); one libvmaf pass scores every configured teacher.
Outputs: ``metrics/golden.json`` (every criterion, pass/fail),
``reports/golden.md`` and ``golden.parquet`` (one row per golden frame:
``set, pair, frame``, every teacher's feature keys, each teacher's logged
score) — the frames the gates score the students on, so a retrain never
re-runs libvmaf.
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..common.atomic import atomic_path, atomic_write_text
from ..common.checks import CheckResult, Criterion, Report, guarded
from ..common.metrics import worst
from ..config.schema import ExtractConfig, GoldenConfig
from ..contract import FEATURES, TEACHER
from ..corpus.manifest import Pair
from ..extract.plan import plan_for
from ..media.ffmpeg import ffmpeg_info
from ..media.video import Video
from .recipes import PROJECT_FILE, PROJECT_RECIPES, generate_project_media

log = logging.getLogger(__name__)

NETFLIX_DIR = "netflix"
NETFLIX_SPEC = "golden.json"
#: Keys of an ``expected`` block: the pooled ``vmaf_v0.6.1`` score and its six features.
GOLDEN_KEYS: tuple[str, ...] = ("vmaf", *FEATURES)
FRAME_COLUMNS = ("set", "pair", "frame")
#: Netflix's CLI prints six decimals: pinned teacher values hold to this.
CLI_TOLERANCE = 1e-4


def golden_teachers(teachers: list[str] | tuple[str, ...]) -> list[str]:
    """The teachers of the golden pass: ``vmaf_v0.6.1`` (the golden values') first, then the rest."""
    return list(dict.fromkeys([TEACHER, *teachers]))


def extract_golden(
    pairs: list[tuple[str, Video, Video]], teachers: list[str] | tuple[str, ...], ffmpeg: str | None
) -> dict[str, list[dict[str, float]]]:
    """Per-frame features and teacher scores of each pair, through the extract path with a fresh cache."""
    from ..extract.stage import extract_pairs

    with tempfile.TemporaryDirectory(prefix="tinyvmaf-golden-cache-") as cache:
        cfg = ExtractConfig(
            teachers=golden_teachers(teachers), frame_policy="error", workers=2, ffmpeg=ffmpeg, cache_dir=cache
        )
        plist = [Pair(key=name, content=name, ref=ref, dist=dist) for name, ref, dist in pairs]
        results, _ = extract_pairs(plist, cfg, progress=False)
    return {name: results[name] for name, _, _ in pairs}


def pooled(frames: list[dict[str, float]]) -> dict[str, float]:
    """Mean over frames (libvmaf's pooling) of ``vmaf_v0.6.1``'s features (short names) and score (``vmaf``)."""
    if not frames:
        raise ValueError("no frames were extracted")
    keys = {f"integer_{n}": n for n in FEATURES}  # v0.6.1's libvmaf keys
    row = {short: sum(f[k] for f in frames) / len(frames) for k, short in keys.items()}
    row["vmaf"] = sum(f[TEACHER] for f in frames) / len(frames)
    row["frames"] = len(frames)
    return row


def compare(
    set_name: str,
    name: str,
    got: dict[str, float],
    expected: dict[str, float],
    tolerance: float,
    res: CheckResult,
    loose: dict[str, tuple[float, float]] | None = None,
) -> None:
    """One criterion per pair (the worst |got − expected| over its keys), plus one per loose key.

    Fails closed: a NaN deviation makes the pair's value NaN (Python's ``max()`` would skip it), and a
    pair with a missing key or nothing expected has no value; either fails the pair's criterion.
    """
    devs = {k: abs(got[k] - v) for k, v in expected.items() if k in got}
    missing = [k for k in expected if k not in got]
    nan = [k for k, d in devs.items() if math.isnan(d)]
    worst_key = nan[0] if nan else max(devs, key=devs.__getitem__) if devs else None
    value = worst(devs.values()) if devs and not missing else None
    info = (f"worst key {worst_key}" if devs else "nothing expected") + (f"; missing {missing}" if missing else "")
    res.criteria.append(Criterion(f"{set_name}/{name}", value, tolerance, "<=", info=info))
    for k, (v, tol) in (loose or {}).items():
        res.criteria.append(Criterion(f"{set_name}/{name}/{k}", abs(got[k] - v), tol, "<="))
    res.details.setdefault("pairs", {})[name] = {"got": got, "expected": expected, "abs_dev": devs}


def cli_check(name: str, got: list[dict[str, float]], pinned: dict[str, Any], res: CheckResult) -> None:
    """libvmaf's score here against Netflix's ``vmaf`` CLI values pinned for a teacher, per frame and pooled."""
    for teacher, want in pinned.items():
        if teacher not in got[0]:
            continue  # a teacher this pipeline does not score
        scores = [f[teacher] for f in got]
        frames = [float(v) for v in want.get("frames", [])]
        devs = [abs(a - b) for a, b in zip(scores, frames, strict=False)] if len(frames) == len(scores) else [math.nan]
        res.criteria.append(
            Criterion(f"netflix/{name}/{teacher}/frames", worst(devs), CLI_TOLERANCE, "<=", info="Netflix vmaf CLI")
        )
        dev = abs(sum(scores) / len(scores) - float(want["pooled"]))
        res.criteria.append(
            Criterion(f"netflix/{name}/{teacher}/pooled", dev, CLI_TOLERANCE, "<=", info="Netflix vmaf CLI")
        )


def netflix_check(
    golden_dir: Path, cfg: GoldenConfig, teachers: list[str], ffmpeg: str | None, frames: dict
) -> CheckResult:
    folder = golden_dir / NETFLIX_DIR
    spec_path = folder / NETFLIX_SPEC
    if not spec_path.is_file():
        raise FileNotFoundError(f"{spec_path}: Netflix's golden set is missing (it ships in git: git checkout it)")
    spec = json.loads(spec_path.read_text())
    if not spec.get("pairs"):
        raise ValueError(f"{spec_path} lists no pairs: an empty golden set vouches for nothing")
    pairs = []
    for p in spec["pairs"]:
        ref = Video(folder / p["ref"], p.get("width"), p.get("height"), p.get("pix_fmt"))
        dist = Video(folder / p["dist"], p.get("width"), p.get("height"), p.get("pix_fmt"))
        pairs.append((p["name"], ref, dist))
    got = extract_golden(pairs, teachers, ffmpeg)
    res = CheckResult("netflix", details={"dir": str(folder), "spec_tolerance": spec.get("tolerance")})
    for p in spec["pairs"]:
        frames[("netflix", p["name"])] = got[p["name"]]
        loose = {k: (float(v[0]), float(v[1])) for k, v in (p.get("expected_loose") or {}).items()}
        expected = {k: float(v) for k, v in p["expected"].items()}
        compare("netflix", p["name"], pooled(got[p["name"]]), expected, cfg.tolerance, res, loose)
        cli_check(p["name"], got[p["name"]], p.get("expected_teachers") or {}, res)
    return res


def load_project_spec(golden_dir: Path) -> dict[str, Any]:
    path = golden_dir / PROJECT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no pinned project golden set (run `tinyvmaf golden --regenerate`)")
    return json.loads(path.read_text())


def pinned_hashes(pin: dict[str, Any]) -> bool:
    """Whether a project pin carries the sha256 of both its media (``{"ref": hex, "dist": hex}``)."""
    h = pin.get("sha256")
    return isinstance(h, dict) and all(isinstance(h.get(k), str) and len(h[k]) == 64 for k in ("ref", "dist"))


def project_check(
    golden_dir: Path, cfg: GoldenConfig, teachers: list[str], ffmpeg: str | None, frames: dict
) -> CheckResult:
    spec = load_project_spec(golden_dir)
    pinned = {p["name"]: p for p in spec.get("pairs", [])}
    recipes = {r.name for r in PROJECT_RECIPES}
    if set(pinned) != recipes:
        raise ValueError(
            f"{golden_dir / PROJECT_FILE} pins {sorted(pinned)} but the recipes are {sorted(recipes)}; "
            "run `tinyvmaf golden --regenerate`"
        )
    unhashed = [n for n, p in pinned.items() if not pinned_hashes(p)]
    if unhashed:
        # Without the hashes the drift criterion below would compare nothing and pass.
        raise ValueError(
            f"{golden_dir / PROJECT_FILE}: pin(s) {unhashed} have no sha256 of their ref and dist media "
            '("sha256": {"ref": ..., "dist": ...}), so media drift cannot be checked; re-pin with '
            "`tinyvmaf golden --regenerate` after checking why they are missing"
        )
    res = CheckResult("project")
    with tempfile.TemporaryDirectory(prefix="tinyvmaf-golden-") as tmp:
        media = generate_project_media(Path(tmp), ffmpeg)
        drift = {n: m["sha256"] for n, m in media.items() if m["sha256"] != pinned[n]["sha256"]}
        # Media that differ from the pinned bytes would be scored against numbers made from other
        # bytes: say so instead of reporting a mysterious deviation.
        res.criteria.append(
            Criterion(
                "project/media_sha256_mismatches",
                len(drift),
                0,
                "<=",
                info="FFmpeg generated other bytes than were pinned (another FFmpeg build?)" if drift else "",
            )
        )
        # vmaf_v0.6.1 only: the pins are its values, and at 256x144 the SpEED extractor of the v1.0.16
        # models cannot run ("image too small"); the other teachers are checked on Netflix's pairs.
        got = extract_golden([(n, m["ref"], m["dist"]) for n, m in media.items()], [TEACHER], ffmpeg)
    for name in media:
        frames[("project", name)] = got[name]
        expected = {k: float(v) for k, v in pinned[name]["expected"].items()}
        compare("project", name, pooled(got[name]), expected, cfg.tolerance, res)
    return res


def teacher_check(table: pd.DataFrame, teachers: list[str], tolerance: float) -> CheckResult:
    """Each callable teacher against libvmaf's logged score on every golden frame (see the module docstring)."""
    from ..extract.plan import scored_by
    from ..teacher.spec import load_spec

    if table.empty:
        raise ValueError("no golden frames to compare the teacher on")
    res = CheckResult("teacher", details={"frames": len(table)})
    for teacher in golden_teachers(teachers):
        spec = load_spec(teacher)
        scored = scored_by(table, teacher).to_numpy()  # the project pairs are scored by vmaf_v0.6.1 only
        table_t = table.loc[scored]
        if table_t.empty:
            raise ValueError(f"no golden frame was scored by {teacher}")
        x = table_t[list(spec.keys)].to_numpy(np.float64)
        # A bootstrap teacher: every component libvmaf logged (key 0's is the score), each against its own.
        cols = list(spec.log_columns) if spec.bootstrap is not None else [teacher]
        dev = np.abs(spec.logged(x) - table_t[cols].to_numpy(np.float64))
        ratio = dev / spec.logged_rounding_bound(x)
        i = int(np.argmax(np.where(np.isnan(ratio), np.inf, ratio))) // len(cols)
        at = f"{table_t['set'].iloc[i]}/{table_t['pair'].iloc[i]} frame {int(table_t['frame'].iloc[i])}"
        res.details[teacher] = {
            "frames": len(table_t),
            "worst_frame": at,
            "max_abs_dev": worst(dev),
            "worst_ratio": worst(ratio),
            "model": str(spec.path.name),
            **({"components": len(cols)} if len(cols) > 1 else {}),
        }
        res.criteria.append(
            Criterion(
                f"teacher/{teacher}/rounding_ratio",
                worst(ratio),
                1.0,
                "<=",
                info=f"|teacher - libvmaf| / six-decimal rounding bound, worst at {at}; max |dev| {worst(dev):.2g}",
            )
        )
        if teacher == TEACHER:
            res.criteria.append(Criterion(f"teacher/{teacher}/max_abs_dev", worst(dev), tolerance, "<="))
    return res


def frames_table(frames: dict[tuple[str, str], list[dict[str, float]]], teachers: list[str]) -> pd.DataFrame:
    """``set, pair, frame`` and every column of the golden pass (feature keys, teacher scores; NaN where not scored)."""
    cols = list(plan_for(golden_teachers(teachers)).columns)
    rows = [
        {"set": s, "pair": name, "frame": i, **{k: f.get(k, math.nan) for k in cols}}
        for (s, name), fs in frames.items()
        for i, f in enumerate(fs)
    ]
    df = pd.DataFrame.from_records(rows, columns=[*FRAME_COLUMNS, *cols])
    df["frame"] = df["frame"].astype("int32")
    return df


def run_golden(
    golden_dir: Path, cfg: GoldenConfig, *, teachers: list[str], ffmpeg: str | None
) -> tuple[Report, pd.DataFrame]:
    """Every configured set, then the teacher check on all the frames they produced; never raises for a failure."""
    frames: dict[tuple[str, str], list[dict[str, float]]] = {}
    checks: list[CheckResult] = []
    for name, fn in (("netflix", netflix_check), ("project", project_check)):
        if name in cfg.sets:
            log.info("golden: %s", name)
            checks.append(guarded(name, lambda fn=fn: fn(golden_dir, cfg, teachers, ffmpeg, frames)))
    table = frames_table(frames, teachers)
    checks.append(guarded("teacher", lambda: teacher_check(table, teachers, cfg.teacher_tolerance)))
    info = ffmpeg_info(ffmpeg)
    subject = {"teachers": golden_teachers(teachers), "ffmpeg_version": info.version, "ffmpeg_sha256": info.digest}
    return Report(subject, checks), table


def render_markdown(report: Report) -> str:
    lines = [
        "# Golden report: the extractor against libvmaf's golden values",
        "",
        f"**{'PASS' if report.passed else 'FAIL'}**"
        + (f" — failed: {', '.join(report.failed)}" if report.failed else ""),
        "",
        f"Teachers {', '.join(f'`{t}`' for t in report.subject['teachers'])}; "
        f"FFmpeg `{report.subject['ffmpeg_version']}`.",
        "",
        *report.table(),
    ]
    return "\n".join(lines) + "\n"


def write_outputs(
    report: Report, table: pd.DataFrame, *, frames_out: Path, metrics_out: Path, report_out: Path
) -> None:
    with atomic_path(frames_out) as tmp:
        table.to_parquet(tmp, index=False)
    atomic_write_text(metrics_out, json.dumps(report.as_dict(), indent=2, default=str) + "\n")
    atomic_write_text(report_out, render_markdown(report))


def regenerate_project_golden(golden_dir: Path, ffmpeg: str | None) -> Path:
    """Generate the project pairs, score them with libvmaf and pin the result in ``project.json``."""
    info = ffmpeg_info(ffmpeg)
    with tempfile.TemporaryDirectory(prefix="tinyvmaf-golden-") as tmp:
        media = generate_project_media(Path(tmp), ffmpeg)
        got = extract_golden([(n, m["ref"], m["dist"]) for n, m in media.items()], [TEACHER], ffmpeg)
    pairs = []
    for name, m in media.items():
        r = m["recipe"]
        p = pooled(got[name])
        pairs.append(
            {
                "name": name,
                "frames": int(p["frames"]),
                "ref_cmd": shlex.join(["ffmpeg", *r.ref_args(Path(r.ref_name))]),
                "dist_cmd": shlex.join(["ffmpeg", *r.dist_args(Path(r.ref_name), Path(r.dist_name))]),
                "sha256": m["sha256"],
                "expected": {k: p[k] for k in GOLDEN_KEYS},
            }
        )
    doc = {
        "about": (
            "The project's own golden pairs, generated by `tinyvmaf golden` with FFmpeg (lavfi sources, raw YUV "
            "references, bit-exact libx264 encodes) and scored by libvmaf (vmaf_v0.6.1, pooled mean over frames). "
            "Re-pin with `tinyvmaf golden --regenerate` only after checking why values moved."
        ),
        "teacher": TEACHER,
        "ffmpeg_version": info.version,
        "ffmpeg_sha256": info.digest,
        "pairs": pairs,
    }
    path = golden_dir / PROJECT_FILE
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    return path
