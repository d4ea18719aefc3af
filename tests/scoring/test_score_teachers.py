"""``tinyvmaf score`` with a v1.0.16 student: the sidecar decides the features, ``--teacher`` the column beside.

The student here is a small untrained ``StudentMLP`` of ``vmaf_v1.0.16_3d0h`` exported by the real
export code (graph and sidecar): what is under test is the plumbing from the model file to libvmaf's
keys, not fidelity (that is the gate's).  The pair is rendered at 576x324 (the SpEED extractor of
the v1.0.16 models refuses clips under about 300 lines) in Y4M and MP4.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tinyvmaf.cli import main
from tinyvmaf.common import cpu
from tinyvmaf.export.graph import build_student_graph
from tinyvmaf.export.stage import sidecar_features
from tinyvmaf.media.ffmpeg import ffmpeg_info
from tinyvmaf.model.runtime import ort_session
from tinyvmaf.model.sidecar import make_sidecar, write_sidecar
from tinyvmaf.scoring import score
from tinyvmaf.student.network import StudentMLP
from tinyvmaf.teacher.spec import load_spec

TEACHER = "vmaf_v1.0.16_3d0h"
FF = ffmpeg_info(None).path


def _ff(*args: str) -> None:
    subprocess.run([FF, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("v1016pair")
    ref, dist = d / "ref.y4m", d / "dist.mp4"
    _ff("-f", "lavfi", "-i", "testsrc2=size=576x324:rate=25", "-frames:v", "6", "-pix_fmt", "yuv420p", str(ref))
    _ff("-i", str(ref), "-c:v", "libx264", "-threads", "1", "-crf", "40", "-fflags", "+bitexact", str(dist))
    return ref, dist


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = StudentMLP(16, 2, activation="hardswish", dropout=0.0, teacher=TEACHER).eval()
    net.set_normalisation(torch.tensor([1.0, 5.0, 0.9, 4.0]), torch.tensor([1.0, 5.0, 0.1, 4.0]))
    spec = load_spec(TEACHER)
    feats = sidecar_features(spec)
    model = build_student_graph(net, metadata={"feature_order": json.dumps(feats), "teacher": TEACHER})
    path = tmp_path_factory.mktemp("v1016model") / "tiny_v1016.onnx"
    data = model.SerializeToString()
    path.write_bytes(data)
    side = make_sidecar(
        model_id="tiny_v1016", onnx_bytes=data, opset=17, teacher=TEACHER, data_version="test", heldout={},
        architecture={}, training_box={}, license="BSD-2-Clause-Patent", description="test", features=feats,
        clip=net.clip,
    )  # fmt: skip
    write_sidecar(path.with_suffix(".json"), side)
    return path


def direct_features(ref: Path, dist: Path, tmp: Path) -> tuple[np.ndarray, np.ndarray]:
    """libvmaf's own keys and score from a separate FFmpeg run with the *built-in* model (``version=``)."""
    log = tmp / "direct.json"
    graph = f"[0:v][1:v]libvmaf=log_fmt=json:log_path={log}:model='version={TEACHER}\\:name=t'"
    _ff(*cpu.ffmpeg_global_args(), "-i", str(dist), "-i", str(ref), "-lavfi", graph, "-f", "null", "-")
    frames = json.loads(log.read_text())["frames"]
    keys = load_spec(TEACHER).keys
    x = np.array([[f["metrics"][k] for k in keys] for f in frames], dtype=np.float32)
    return x, np.array([f["metrics"]["t"] for f in frames])


def test_the_sidecar_decides_the_features(pair: tuple[Path, Path], student: Path, tmp_path: Path) -> None:
    ref, dist = pair
    side = json.loads(student.with_suffix(".json").read_text())
    assert side["features"] == list(load_spec(TEACHER).keys)  # full libvmaf keys
    res = score(ref, dist, [student], cache_dir=tmp_path / "cache")  # no teacher flag: the sidecar's
    assert res["teacher"] == TEACHER
    x, libvmaf_score = direct_features(ref, dist, tmp_path)
    session = ort_session(student.read_bytes())
    expected = session.run(None, {"features": x})[0]
    got = np.array([f["scores"]["tiny_v1016"] for f in res["frames"]])
    np.testing.assert_array_equal(got, expected)  # the same features in, the same bits out
    np.testing.assert_allclose([f["teacher"] for f in res["frames"]], libvmaf_score, atol=1e-6)
    assert all(k in res["frames"][0] for k in load_spec(TEACHER).keys)


def test_teacher_flag_prints_another_teacher_beside(
    pair: tuple[Path, Path], student: Path, capsys: pytest.CaptureFixture
) -> None:
    ref, dist = pair
    assert main(["score", str(ref), str(dist), "--model", str(student), "--teacher", "vmaf_v0.6.1"]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("frame"))
    assert header.split() == ["frame", "vmaf_v0.6.1", "tiny_v1016"]


def test_unknown_teacher_is_named(pair: tuple[Path, Path], student: Path, capsys: pytest.CaptureFixture) -> None:
    ref, dist = pair
    assert main(["score", str(ref), str(dist), "--model", str(student), "--teacher", "vmaf_v9"]) == 2
    err = capsys.readouterr().err
    assert "vmaf_v9" in err and "vmaf_v1.0.16_3d0h" in err, err


def test_a_sidecar_key_libvmaf_does_not_log_is_named(
    pair: tuple[Path, Path], student: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(student.read_bytes())
    side = json.loads(student.with_suffix(".json").read_text())
    side["features"][1] = "speed_chroma_uv_mxv_99"
    bad.with_suffix(".json").write_text(json.dumps(side))
    ref, dist = pair
    assert main(["score", str(ref), str(dist), "--model", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "speed_chroma_uv_mxv_99" in err and str(bad) in err and "libvmaf" in err, err


def test_a_model_path_that_needs_escaping_is_named(tmp_path: Path) -> None:
    from tinyvmaf.teacher.spec import UnsafeFilterPath, spec_from_teacher

    spec = load_spec(TEACHER)
    odd = tmp_path / "my models:v1" / "m.json"
    odd.parent.mkdir()
    odd.write_bytes(spec.path.read_bytes())
    with pytest.raises(UnsafeFilterPath, match="my models:v1"):
        spec_from_teacher(spec.teacher, odd).model_option()
