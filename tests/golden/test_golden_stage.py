"""The golden stage: the extractor against Netflix's and the project's golden values; missing data fails."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tinyvmaf.cli import main
from tinyvmaf.common.checks import CheckResult
from tinyvmaf.config import compose_text
from tinyvmaf.config.schema import GoldenConfig
from tinyvmaf.golden.recipes import PROJECT_RECIPES
from tinyvmaf.golden.stage import compare, pooled, run_golden

from conftest import config
from kit import REPO
from synth import TEACHER

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
    teacher = report["checks"]["teacher"]["criteria"]
    assert teacher["teacher/vmaf_v0.6.1/max_abs_dev"]["value"] <= 2e-4
    # every configured teacher within the six-decimal rounding bound on every frame it scored
    for t in ("vmaf_v0.6.1", "vmaf_v1.0.16_3d0h"):
        assert 0 < teacher[f"teacher/{t}/rounding_ratio"]["value"] <= 1.0, t
    # Netflix's own vmaf CLI on src01, vmaf_v1.0.16_3d0h: 92.207303, 88.339059, 86.194434; pooled 88.913599
    assert crit["netflix/src01_576x324_10bit/vmaf_v1.0.16_3d0h/frames"]["value"] <= 1e-4
    assert crit["netflix/src01_576x324_10bit/vmaf_v1.0.16_3d0h/pooled"]["value"] <= 1e-4
    frames = pd.read_parquet(tmp / "golden.parquet")
    # the project pairs (256x144) are v0.6.1's only: SpEED cannot run on them
    assert frames.loc[frames["set"] == "project", "vmaf_v1.0.16_3d0h"].isna().all()
    assert frames.loc[frames["set"] == "netflix", "vmaf_v1.0.16_3d0h"].notna().all()
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
    # The carried file says how it was made and how to re-pin it, in the words regenerating writes.
    assert fresh["about"] == pinned["about"] and "`tinyvmaf golden --regenerate`" in pinned["about"]


def golden_config(*sets: str) -> GoldenConfig:
    return dataclasses.replace(config().golden, sets=list(sets))


def test_a_pin_without_sha256_is_an_error_naming_the_pin(tmp_path: Path) -> None:
    """Without the media hashes the drift check would compare nothing and pass: that is an error."""
    golden = tmp_path / "golden"
    shutil.copytree(GOLDEN, golden)
    spec = json.loads((golden / "project.json").read_text())
    name = spec["pairs"][-1]["name"]
    for bad in (None, {}, {"ref": spec["pairs"][-1]["sha256"]["ref"]}, "not-a-hash"):
        if bad is None:
            del spec["pairs"][-1]["sha256"]
        else:
            spec["pairs"][-1]["sha256"] = bad
        (golden / "project.json").write_text(json.dumps(spec))
        report, _ = run_golden(golden, golden_config("project"), teachers=[TEACHER], ffmpeg=None)
        assert not report.passed and "project" in report.failed, bad
        error = report.check("project").error
        assert error is not None and f"[{name!r}]" in error and "sha256" in error, (bad, error)


def test_an_empty_netflix_set_is_an_error(tmp_path: Path) -> None:
    golden = tmp_path / "golden"
    shutil.copytree(GOLDEN / "netflix", golden / "netflix")
    spec = json.loads((golden / "netflix" / "golden.json").read_text())
    spec["pairs"] = []
    (golden / "netflix" / "golden.json").write_text(json.dumps(spec))
    report, table = run_golden(golden, golden_config("netflix"), teachers=[TEACHER], ffmpeg=None)
    assert report.failed == ["netflix", "teacher"] and table.empty
    assert "lists no pairs" in report.check("netflix").error
    assert "no golden frames" in report.check("teacher").error


def test_a_nan_deviation_fails_the_pair_wherever_it_is() -> None:
    """max() over the deviations skips a NaN unless it comes first; the pair's criterion must fail."""
    expected = {"vmaf": 70.0, "adm2": 0.9, "vif_scale0": 0.5, "motion2": 1.4}
    for key in expected:
        got = {**expected, key: float("nan")}
        res = CheckResult("netflix")
        compare("netflix", "pair_a", got, expected, 5e-5, res)
        crit = res.criteria[0]
        assert crit.name == "netflix/pair_a" and not crit.passed, key
        assert f"worst key {key}" in crit.info
    res = CheckResult("netflix")
    compare("netflix", "pair_b", {"vmaf": 70.0}, {}, 5e-5, res)  # nothing expected: nothing vouched for
    assert not res.criteria[0].passed and res.criteria[0].value is None
    with pytest.raises(ValueError, match="no frames"):
        pooled([])
