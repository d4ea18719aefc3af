"""Row 5: inference — the ONNX student against the teacher's SVR, single-row latency, scoring end to end.

* The student (ONNX Runtime, one thread) against ``vmaf_v0.6.1`` evaluated by
  :mod:`tinyvmaf.teacher` (NumPy float64), on the same 1e5 feature rows:
  throughput ratio (reported).
* The student's single-row latency (median of 2,000 calls; reported).
* ``tinyvmaf score`` on a 1080p pair (a demo pair upscaled and looped to
  240 frames, ten seconds at 24 fps; empty cache) against bare FFmpeg libvmaf
  on the same pair: the student and everything around it should add under
  2 % (bare time / score time ≥ 0.98).  The fixed cost (interpreter start,
  imports, one probe, hashing the files) is reported in seconds beside it.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO, Row, side_by_side, timed_run


def model_path() -> Path:
    built = REPO / "model" / "tiny" / "vmaf_tiny_fr_v2_nflx.onnx"
    if built.is_file():
        return built
    from tinyvmaf.packaged import default_model_path

    return default_model_path()


def inference_rows(data_manifest: Path) -> list[Row]:
    from tinyvmaf.evaluate.sets import dense_rows
    from tinyvmaf.model.runtime import load_tiny_model
    from tinyvmaf.teacher import load_teacher

    sys.path.insert(0, str(REPO / "tests"))
    from conftest import config

    x = dense_rows(config().evaluate.dense).astype(np.float32)
    student = load_tiny_model(model_path())
    teacher = load_teacher("vmaf_v0.6.1")

    def run_student() -> float:
        t0 = time.perf_counter()
        student.predict(x)
        return time.perf_counter() - t0

    def run_teacher() -> float:
        t0 = time.perf_counter()
        teacher.predict(x.astype(np.float64))
        return time.perf_counter() - t0

    res = side_by_side(run_student, run_teacher, 5)
    res["student_rows_per_s"] = round(len(x) / statistics.median(res["a_seconds"]))
    res["teacher_rows_per_s"] = round(len(x) / statistics.median(res["b_seconds"]))
    one = x[:1]
    student.predict(one)
    lat = []
    for _ in range(2000):
        t0 = time.perf_counter()
        student.predict(one)
        lat.append(time.perf_counter() - t0)
    latency_us = statistics.median(lat) * 1e6
    rows = [
        Row("inference, 1e5 rows", "teacher SVR time / ONNX student time", res["ratio"], "report", None, res),
        Row("inference, single row", "microseconds (median of 2,000)", latency_us, "report", None, {}),
    ]
    rows.append(score_row(data_manifest))
    return rows


def score_row(data_manifest: Path) -> Row:
    from bench_extract import bare_commands, upscaled_1080p

    with tempfile.TemporaryDirectory(prefix="tinyvmaf-bench-score-") as tmp:
        root = Path(tmp)
        manifest = upscaled_1080p(data_manifest, 1, root, loops=5)
        (cmd,) = bare_commands(manifest, root)
        ref, dist = (manifest.parent / p for p in manifest.read_text().splitlines()[1].split(",")[2:4])
        score = [sys.executable, "-m", "tinyvmaf.cli", "score", str(ref), str(dist), "--model", str(model_path())]

        def run_score() -> float:
            cache = root / "cache"
            shutil.rmtree(cache, ignore_errors=True)
            return timed_run(score, extra_env={"TINYVMAF_CACHE_DIR": str(cache)})[0]

        def run_bare() -> float:
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            return time.perf_counter() - t0

        res = side_by_side(run_score, run_bare, 3)
        res["fixed_overhead_s"] = round(statistics.median(res["a_seconds"]) - statistics.median(res["b_seconds"]), 3)
    return Row("score a 1080p pair", "bare FFmpeg libvmaf time / `tinyvmaf score` time", res["ratio"], ">= 0.98",
               res["ratio"] >= 0.98, res)  # fmt: skip
