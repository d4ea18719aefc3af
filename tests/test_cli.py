"""The command line: unknown commands, and a missing input named with a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyvmaf.cli import COMMANDS, main

from kit import REPO


def test_usage_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "missing"),
    [
        (["label"], "features.parquet"),
        (["sample"], "labels/vmaf_v0.6.1.parquet"),
        (["train"], "labels/vmaf_v0.6.1.parquet"),
        (["export"], "models/vmaf_v0.6.1/best.ckpt"),
        (["sample", "--student", "v1016_3d0h"], "labels/vmaf_v1.0.16_3d0h.parquet"),
        (["export", "--student", "v1016_3d0h"], "models/vmaf_v1.0.16_3d0h/best.ckpt"),
        (["extract"], "data/manifest.csv"),
    ],
)
def test_missing_stage_input_is_named(
    argv: list[str], missing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert missing in err and "error" in err


def test_an_unknown_student_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--student", "v999"]) != 0
    err = capsys.readouterr().err
    assert "v999" in err and "v061" in err and "v1016_3d0h" in err, err


def test_every_command_module_has_register_and_run() -> None:
    import importlib

    for name, (module, _) in COMMANDS.items():
        mod = importlib.import_module(module)
        assert callable(mod.register) and callable(mod.run), name
