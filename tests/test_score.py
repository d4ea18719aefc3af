"""`tinyvmaf score` and `tinyvmaf.score(...)`: the student beside the teacher (tinyvmaf.score)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from exportkit import Kit, build_kit

import tinyvmaf
from tinyvmaf.cli import main
from tinyvmaf.libvmaf import FEATURES
from tinyvmaf.score import ModelContractError


@pytest.fixture(scope="session")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return build_kit(tmp_path_factory.mktemp("exportkit"))


@pytest.fixture(scope="session")
def pair(golden_dir: Path) -> dict:
    """The 10-bit src01 pair of Netflix's golden set (3 frames, VMAF 82.564)."""
    spec = json.loads((golden_dir / "golden.json").read_text())
    p = next(p for p in spec["pairs"] if p["name"] == "src01_576x324_10bit")
    return {**p, "tolerance": spec["tolerance"], "ref": golden_dir / p["ref"], "dist": golden_dir / p["dist"]}


def _argv(kit: Kit, pair: dict, *extra: str) -> list[str]:
    geometry = ["--width", str(pair["width"]), "--height", str(pair["height"]), "--pix-fmt", pair["pix_fmt"]]
    return ["score", str(pair["ref"]), str(pair["dist"]), *geometry, "--model", str(kit.onnx), *extra]


def test_cli_prints_student_and_teacher_side_by_side(kit: Kit, pair: dict, capsys: pytest.CaptureFixture) -> None:
    assert main(_argv(kit, pair)) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.split()[:1] == ["frame"])
    assert header.split() == ["frame", "student", "vmaf_v0.6.1", "diff"]
    rows = lines[lines.index(header) + 1 :]
    assert len(rows) == pair["frames"] + 1 and rows[-1].split()[0] == "pool"
    for row in rows:
        _, student, teacher, diff = row.split()
        assert float(diff) == pytest.approx(float(student) - float(teacher), abs=2e-4)
    assert float(rows[-1].split()[2]) == pytest.approx(pair["expected"]["vmaf"], abs=1e-4)


def test_cli_json_shape(kit: Kit, pair: dict, capsys: pytest.CaptureFixture) -> None:
    assert main(_argv(kit, pair, "--json")) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"ref", "dist", "model", "teacher", "frames", "pooled"} <= set(out)
    assert out["teacher"] == "vmaf_v0.6.1"
    assert len(out["frames"]) == pair["frames"]
    for i, f in enumerate(out["frames"]):
        assert f["frame"] == i
        assert {"student", "teacher", "diff", *FEATURES} <= set(f)
        assert 0.0 <= f["student"] <= 100.0
        assert f["diff"] == pytest.approx(f["student"] - f["teacher"])
    pooled = out["pooled"]
    assert set(pooled) == {"student", "teacher", "diff"}
    assert pooled["student"] == pytest.approx(sum(f["student"] for f in out["frames"]) / pair["frames"])
    assert pooled["teacher"] == pytest.approx(pair["expected"]["vmaf"], abs=pair["tolerance"])
    assert pooled["diff"] == pytest.approx(pooled["student"] - pooled["teacher"])


def test_python_api_matches_the_cli_and_uses_the_cache(
    kit: Kit, pair: dict, capsys: pytest.CaptureFixture, cache_dir: Path
) -> None:
    kw = {"width": pair["width"], "height": pair["height"], "pix_fmt": pair["pix_fmt"]}
    api = tinyvmaf.score(pair["ref"], pair["dist"], kit.onnx, **kw)
    journal = cache_dir / "journal.log"
    runs = journal.read_text().count("\n") if journal.is_file() else 0
    assert main(_argv(kit, pair, "--json")) == 0
    cli = json.loads(capsys.readouterr().out)
    assert (journal.read_text().count("\n") if journal.is_file() else 0) == runs  # served from the cache
    assert api["pooled"] == cli["pooled"]
    assert [f["student"] for f in api["frames"]] == [f["student"] for f in cli["frames"]]
    assert tinyvmaf.score.score is not None  # the module is callable and still a module


def test_model_with_another_feature_order_is_refused(kit: Kit, pair: dict, tmp_path: Path) -> None:
    model = onnx.load(str(kit.onnx))
    for p in model.metadata_props:
        if p.key == "feature_order":
            p.value = json.dumps(sorted(FEATURES))
    bad = tmp_path / "reordered.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(ModelContractError, match="expects features"):
        tinyvmaf.score(
            pair["ref"], pair["dist"], bad, width=pair["width"], height=pair["height"], pix_fmt=pair["pix_fmt"]
        )


def test_missing_model_is_a_clear_error(pair: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["score", str(pair["ref"]), str(pair["dist"]), "--width", "576", "--height", "324"]
    assert main([*argv, "--pix-fmt", "yuv420p10le", "--model", str(tmp_path / "none.onnx")]) == 1
    assert "none.onnx: no ONNX model" in capsys.readouterr().err


def test_package_import_stays_light() -> None:
    import subprocess
    import sys

    code = "import sys, tinyvmaf; print('torch' in sys.modules, 'onnxruntime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
