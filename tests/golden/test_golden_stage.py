"""The golden stage: the extractor against Netflix's and the project's golden values; missing data fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tinyvmaf.cli import main
from tinyvmaf.config import compose_text
from tinyvmaf.golden.recipes import PROJECT_RECIPES

from kit import REPO

GOLDEN = REPO / "assets" / "golden"


def run_stage(tmp: Path, golden_dir: Path, capsys: pytest.CaptureFixture, *extra: str) -> tuple[int, dict, str]:
    params = tmp / "params.yaml"
    params.write_text(compose_text(REPO / "conf"))
    out = [
        "--golden-dir", str(golden_dir), "--frames", str(tmp / "golden.parquet"),
        "--metrics", str(tmp / "golden.json"), "--report", str(tmp / "golden.md"),
    ]  # fmt: skip
    rc = main(["golden", "--params", str(params), *out, *extra])
    text = capsys.readouterr()
    report = json.loads((tmp / "golden.json").read_text()) if (tmp / "golden.json").is_file() else {}
    return rc, report, text.out + text.err


@pytest.fixture(scope="module")
def passing(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, Path]:
    tmp = tmp_path_factory.mktemp("golden")
    params = tmp / "params.yaml"
    params.write_text(compose_text(REPO / "conf"))
    rc = main(
        ["golden", "--params", str(params), "--frames", str(tmp / "golden.parquet"), "--metrics",
         str(tmp / "golden.json"), "--report", str(tmp / "golden.md")]
    )  # fmt: skip
    return rc, json.loads((tmp / "golden.json").read_text()), tmp


def test_the_carried_golden_sets_pass(passing: tuple[int, dict, Path]) -> None:
    rc, report, tmp = passing
    assert rc == 0 and report["pass"] is True
    assert list(report["checks"]) == ["netflix", "project", "teacher"]
    spec = json.loads((GOLDEN / "netflix" / "golden.json").read_text())
    crit = report["checks"]["netflix"]["criteria"]
    assert {f"netflix/{p['name']}" for p in spec["pairs"]} <= set(crit)
    assert crit["netflix/sparks_480x270_10bit/motion2"]["threshold"] == 0.0005  # expected_loose
    assert all(c["value"] < 5e-5 for k, c in crit.items() if k.count("/") == 1)
    assert {f"project/{r.name}" for r in PROJECT_RECIPES} <= set(report["checks"]["project"]["criteria"])
    assert report["checks"]["teacher"]["criteria"]["teacher/max_abs_dev"]["value"] <= 2e-4
    frames = pd.read_parquet(tmp / "golden.parquet")
    assert frames.groupby("set").size().to_dict() == {"netflix": 3 + 3 + 5 + 5, "project": 6 * len(PROJECT_RECIPES)}
    assert "**PASS**" in (tmp / "golden.md").read_text()


def test_a_golden_value_off_by_1e_3_fails_naming_the_pair(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    golden = tmp_path / "golden"
    shutil.copytree(GOLDEN, golden)
    spec_path = golden / "netflix" / "golden.json"
    spec = json.loads(spec_path.read_text())
    spec["pairs"][0]["expected"]["vmaf"] += 1e-3
    spec_path.write_text(json.dumps(spec))
    rc, report, text = run_stage(tmp_path, golden, capsys)
    assert rc == 1 and report["failed"] == ["netflix"]
    assert "golden failed: netflix" in text
    name = f"netflix/{spec['pairs'][0]['name']}"
    crit = report["checks"]["netflix"]["criteria"]
    assert crit[name]["pass"] is False and crit[name]["value"] == pytest.approx(1e-3, abs=1e-5)
    assert all(c["pass"] for k, c in crit.items() if k != name)


def test_missing_golden_data_is_an_error_not_a_skip(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    golden = tmp_path / "golden"
    golden.mkdir()
    shutil.copy(GOLDEN / "project.json", golden / "project.json")
    rc, report, text = run_stage(tmp_path, golden, capsys)
    assert rc == 1 and "netflix" in report["failed"]
    assert "golden.json: Netflix's golden set is missing" in report["checks"]["netflix"]["error"]


def test_regenerating_the_project_set_reproduces_the_pinned_one(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The pinned set is reproducible: same media bytes, same libvmaf numbers."""
    rc, _, text = run_stage(tmp_path, tmp_path, capsys, "--regenerate")
    assert rc == 0, text
    fresh = json.loads((tmp_path / "project.json").read_text())
    pinned = json.loads((GOLDEN / "project.json").read_text())
    assert [p["name"] for p in fresh["pairs"]] == [r.name for r in PROJECT_RECIPES]
    for f, p in zip(fresh["pairs"], pinned["pairs"], strict=True):
        assert f["sha256"] == p["sha256"], f["name"]
        assert f["expected"] == p["expected"], f["name"]
