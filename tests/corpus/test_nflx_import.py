"""Netflix-format dataset files become manifests without anything in them being executed."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from tinyvmaf.cli import main as cli_main
from tinyvmaf.corpus.manifest import read_manifest
from tinyvmaf.corpus.nflx_import import YUV_FMT_TO_PIX_FMT, DatasetError, import_nflx
from tinyvmaf.extract.stage import run_extract
from tinyvmaf.media.video import SUPPORTED_PIX_FMTS

from conftest import extract_config

W, H = 16, 8  # tiny raw frames: the importer only checks that files exist


def _yuv(path: Path, frames: int = 2, factor: float = 1.5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(int(W * H * factor) * frames))
    return path


@pytest.fixture()
def media(tmp_path: Path) -> tuple[Path, Path]:
    ref, dis = tmp_path / "media" / "ref", tmp_path / "media" / "dis"
    for name in ("BigBuckBunny_25fps.yuv", "CrowdRun_25fps.yuv"):
        _yuv(ref / name)
    for name in ("BigBuckBunny_20_288_375.yuv", "BigBuckBunny_90_1080_4300.yuv", "CrowdRun_03_288_375.yuv"):
        _yuv(dis / name)
    return ref, dis


# The _raw.py form: paths built from ref_dir/dis_dir, raw opinion scores in `os`.
RAW_DATASET = """\
dataset_name = 'NFLX_public'
yuv_fmt = 'yuv420p'
width = 16
height = 8
ref_score = 5.0

ref_dir = '[path to dataset videos]/ref'
dis_dir = '[path to dataset videos]/dis'

ref_videos = [
 {'content_id': 0,
  'content_name': 'BigBuckBunny',
  'path': ref_dir + '/BigBuckBunny_25fps.yuv'},
 {'content_id': 2,
  'content_name': 'CrowdRun',
  'path': ref_dir + '/CrowdRun_25fps.yuv'},
]

dis_videos = [
 {'asset_id': 9,
  'content_id': 0,
  'os': [1.0, 1.0, 1.0, 2.0, 1.0, 3.0],
  'path': dis_dir + '/BigBuckBunny_20_288_375.yuv'},
 {'asset_id': 17,
  'content_id': 0,
  'os': [5.0, 5.0, 4.0, 5.0],
  'path': dis_dir + '/BigBuckBunny_90_1080_4300.yuv'},
 {'asset_id': 0,
  'content_id': 0,
  'os': [5.0, 4.0, 5.0],
  'path': ref_dir + '/BigBuckBunny_25fps.yuv'},
 {'asset_id': 27,
  'content_id': 2,
  'os': [1.0, 1.0, 2.0],
  'path': dis_dir + '/CrowdRun_03_288_375.yuv'},
]
"""

# The NFLX_dataset_public.py form: literal absolute paths from Netflix's machines, dmos.
PUBLIC_DATASET = """\
dataset_name = 'NFLX_public'
yuv_fmt = 'yuv420p'
width = 16
height = 8

ref_videos = [{'content_id': 0,
  'content_name': 'BigBuckBunny',
  'path': '/mnt/hgfs/zli/Data/NETFLIX_database/reference_videos/BigBuckBunny_25fps.yuv'},
 {'content_id': 2,
  'content_name': 'CrowdRun',
  'path': '/mnt/hgfs/zli/Data/NETFLIX_database/reference_videos/CrowdRun_25fps.yuv'}]

dis_videos = [{'asset_id': 0,
  'content_id': 0,
  'dmos': 100.0,
  'path': '/mnt/hgfs/zli/Data/NETFLIX_database/reference_videos/BigBuckBunny_25fps.yuv',
  'train_or_test': 'train'},
 {'asset_id': 9,
  'content_id': 0,
  'dmos': 22.5,
  'path': '/mnt/hgfs/zli/Data/NETFLIXyuv/BigBuckBunny_20_288_375.yuv',
  'train_or_test': 'train'},
 {'asset_id': 27,
  'content_id': 2,
  'dmos': -1.5,
  'path': '/mnt/hgfs/zli/Data/NETFLIXyuv/CrowdRun_03_288_375.yuv',
  'train_or_test': 'test'}]
"""


def _write(tmp_path: Path, text: str, name: str = "NFLX_dataset_public_raw.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_raw_form_mos_is_mean_of_os_and_dirs_replaced(tmp_path: Path, media: tuple[Path, Path]) -> None:
    ref, dis = media
    out = tmp_path / "data" / "manifest.csv"
    n = import_nflx(_write(tmp_path, RAW_DATASET), ref, dis, out)
    assert n == 4
    pairs = {p.key: p for p in read_manifest(out)}
    assert list(pairs) == ["BigBuckBunny_9", "BigBuckBunny_17", "BigBuckBunny_0", "CrowdRun_27"]
    p = pairs["BigBuckBunny_9"]
    assert p.content == "BigBuckBunny"
    assert p.ref.path.resolve() == (ref / "BigBuckBunny_25fps.yuv").resolve()
    assert p.dist.path.resolve() == (dis / "BigBuckBunny_20_288_375.yuv").resolve()
    assert (p.ref.width, p.ref.height, p.ref.pix_fmt) == (16, 8, "yuv420p")
    assert (p.dist.width, p.dist.height, p.dist.pix_fmt) == (16, 8, "yuv420p")
    assert p.mos == pytest.approx(9.0 / 6, abs=1e-12)
    assert pairs["BigBuckBunny_17"].mos == pytest.approx(19.0 / 4, abs=1e-12)
    assert p.dmos is None
    # The reference scored against itself: the dis entry written with ref_dir.
    same = pairs["BigBuckBunny_0"]
    assert same.dist.path.resolve() == same.ref.path.resolve()
    assert pairs["CrowdRun_27"].content == "CrowdRun"
    # Paths in the file are relative to the manifest's folder, never absolute.
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["ref"] == "../media/ref/BigBuckBunny_25fps.yuv"
    assert rows[0]["dist"] == "../media/dis/BigBuckBunny_20_288_375.yuv"
    assert "dmos" not in rows[0]  # no column for a score no entry has


def test_public_form_relocates_literal_paths_and_keeps_dmos(tmp_path: Path, media: tuple[Path, Path]) -> None:
    ref, dis = media
    out = tmp_path / "manifest.csv"
    assert import_nflx(_write(tmp_path, PUBLIC_DATASET, "NFLX_dataset_public.py"), ref, dis, out) == 3
    pairs = {p.key: p for p in read_manifest(out)}
    assert pairs["BigBuckBunny_0"].dmos == 100.0
    assert pairs["BigBuckBunny_0"].dist.path.resolve() == (ref / "BigBuckBunny_25fps.yuv").resolve()
    assert pairs["BigBuckBunny_9"].dist.path.resolve() == (dis / "BigBuckBunny_20_288_375.yuv").resolve()
    assert pairs["CrowdRun_27"].dmos == -1.5
    assert all(p.mos is None for p in pairs.values())


def test_per_entry_geometry_overrides_module(tmp_path: Path) -> None:
    ref, dis = tmp_path / "r", tmp_path / "d"
    _yuv(ref / "a.yuv", factor=3.0)
    _yuv(dis / "a_small.yuv")
    _yuv(dis / "a_same.yuv", factor=3.0)
    text = """\
yuv_fmt = 'yuv420p'
width = 1920
height = 1080
ref_videos = [{'content_id': 1, 'content_name': 'a', 'path': ref_dir + '/a.yuv',
               'width': 32, 'height': 16, 'yuv_fmt': 'yuv444p'}]
dis_videos = [{'asset_id': 1, 'content_id': 1, 'dmos': 50, 'path': dis_dir + '/a_small.yuv',
               'width': 16, 'height': 8, 'yuv_fmt': 'yuv420p10le'},
              {'asset_id': 2, 'content_id': 1, 'dmos': 90, 'path': dis_dir + '/a_same.yuv'}]
"""
    out = tmp_path / "m.csv"
    import_nflx(_write(tmp_path, text), ref, dis, out)
    small, same = read_manifest(out)
    assert (small.ref.width, small.ref.height, small.ref.pix_fmt) == (32, 16, "yuv444p")
    assert (small.dist.width, small.dist.height, small.dist.pix_fmt) == (16, 8, "yuv420p10le")
    assert (same.dist.width, same.dist.height, same.dist.pix_fmt) == (32, 16, "yuv444p")


def test_yuv_fmt_mapping_covers_what_libvmaf_reads() -> None:
    assert {v for v in YUV_FMT_TO_PIX_FMT.values() if v} == set(SUPPORTED_PIX_FMTS)
    assert YUV_FMT_TO_PIX_FMT["yuv422p10le"] == "yuv422p10le"
    assert YUV_FMT_TO_PIX_FMT["notyuv"] is None


HOSTILE = [
    ("import os\nos.system('touch {marker}')\n", 1),
    ("yuv_fmt = 'yuv420p'\nwidth = __import__('os').system('touch {marker}')\n", 2),
    ("x = 1\nref_videos = [open('{marker}', 'w')]\n", 2),
    ("x = 1\n\nexec(\"open('{marker}', 'w')\")\n", 3),
    ("ref_dir = 'a'\npath = f'{{ref_dir}}/x'\n", 2),
    ("ref_dir = 'a'\npath = ref_dir.join(['b'])\n", 2),
    ("w = 3\nwidth = w * 2\n", 2),
    ("width = 1 + 2\n", 1),
    ("[1, 2][0]\n", 1),
    ("for i in range(3):\n    open('{marker}', 'w')\n", 1),
    ("ref_videos = [{{**{{'a': 1}}}}]\n", 1),
    ("ref_videos = undefined_name\n", 1),
]


@pytest.mark.parametrize(("template", "line"), HOSTILE, ids=[f"hostile{i}" for i in range(len(HOSTILE))])
def test_code_is_rejected_with_file_and_line_and_never_runs(
    tmp_path: Path, media: tuple[Path, Path], template: str, line: int
) -> None:
    marker = tmp_path / "executed"
    dataset = _write(tmp_path, template.format(marker=marker) + RAW_DATASET.split("\n", 1)[1])
    out = tmp_path / "manifest.csv"
    with pytest.raises(DatasetError) as err:
        import_nflx(dataset, *media, out)
    assert f"{dataset}:{line}:" in str(err.value)
    assert "never executed" in str(err.value)
    assert not marker.exists(), "the dataset file was executed"
    assert not out.exists()


def test_missing_media_listed_in_one_error(tmp_path: Path, media: tuple[Path, Path]) -> None:
    ref, dis = media
    (ref / "CrowdRun_25fps.yuv").unlink()
    (dis / "BigBuckBunny_20_288_375.yuv").unlink()
    (dis / "CrowdRun_03_288_375.yuv").unlink()
    out = tmp_path / "manifest.csv"
    with pytest.raises(DatasetError) as err:
        import_nflx(_write(tmp_path, RAW_DATASET), ref, dis, out)
    msg = str(err.value)
    assert "3 media file(s) not found" in msg
    for name in ("CrowdRun_25fps.yuv", "BigBuckBunny_20_288_375.yuv", "CrowdRun_03_288_375.yuv"):
        assert name in msg
    assert "BigBuckBunny_90_1080_4300.yuv" not in msg
    assert not out.exists()


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        ("'asset_id': 17,", "'asset_id': 9,", "duplicate asset_id 9"),
        ("'asset_id': 27,\n  'content_id': 2,", "'asset_id': 27,\n  'content_id': 5,", "content_id 5 has no entry"),
        ("yuv_fmt = 'yuv420p'", "yuv_fmt = 'yuv411p'", "yuv_fmt 'yuv411p' is not supported"),
        ("width = 16", "width = 0", "width = 0 must be a positive integer"),
        ("  'path': dis_dir + '/CrowdRun_03_288_375.yuv'},", "  },", "dis_videos entry has no 'path'"),
        ("'os': [5.0, 5.0, 4.0, 5.0]", "'os': [5.0, 'x']", "'os' holds non-numeric"),
    ],
)
def test_inconsistent_dataset_names_file_and_line(
    tmp_path: Path, media: tuple[Path, Path], old: str, new: str, expect: str
) -> None:
    assert old in RAW_DATASET
    text = RAW_DATASET.replace(old, new, 1)
    dataset = _write(tmp_path, text)
    with pytest.raises(DatasetError, match=f"^{dataset}:[1-9][0-9]*: .*{expect}"):
        import_nflx(dataset, *media, tmp_path / "m.csv")


def test_missing_dataset_file_and_syntax_error(tmp_path: Path, media: tuple[Path, Path]) -> None:
    with pytest.raises(DatasetError, match="dataset file not found"):
        import_nflx(tmp_path / "nope.py", *media, tmp_path / "m.csv")
    bad = _write(tmp_path, "width = 16\nref_videos = [\n")
    with pytest.raises(DatasetError, match=f"^{bad}:[23]: not valid Python"):
        import_nflx(bad, *media, tmp_path / "m.csv")


def test_imported_manifest_extracts_real_pair(tmp_path: Path, golden_dir: Path) -> None:
    """End to end on Netflix's own 10-bit golden pair: import, then the extract stage's code."""
    spec = json.loads((golden_dir / "golden.json").read_text())
    pair = next(p for p in spec["pairs"] if p["name"] == "src01_576x324_10bit")
    text = f"""\
dataset_name = 'golden'
yuv_fmt = '{pair["pix_fmt"]}'
width = {pair["width"]}
height = {pair["height"]}
ref_dir = 'somewhere else'
ref_videos = [{{'content_id': 0, 'content_name': 'src01', 'path': ref_dir + '/{pair["ref"]}'}}]
dis_videos = [{{'asset_id': 1, 'content_id': 0, 'os': [4.0, 3.0, 4.0, 5.0],
                'path': dis_dir + '/{pair["dist"]}'}}]
"""
    dataset = _write(tmp_path, text, "golden_dataset.py")
    manifest = tmp_path / "data" / "manifest.csv"
    # Through the CLI the lead wires to import_nflx: prints the count, exits 0.
    rc = cli_main(
        ["corpus", "import-nflx", str(dataset), "--ref-dir", str(golden_dir), "--dis-dir", str(golden_dir)]
        + ["-o", str(manifest)]
    )
    assert rc == 0
    out = tmp_path / "features.parquet"
    stats = run_extract(manifest, out, extract_config(workers=1), progress=False)
    assert stats.extracted + stats.cached == 1
    df = pd.read_parquet(out)
    assert list(df["key"].unique()) == ["src01_1"]
    assert len(df) == pair["frames"]
    assert math.isclose(df["vmaf_v0.6.1"].mean(), pair["expected"]["vmaf"], abs_tol=spec["tolerance"])
    assert math.isclose(df["integer_adm2"].mean(), pair["expected"]["adm2"], abs_tol=spec["tolerance"])
    assert read_manifest(manifest)[0].mos == 4.0


def test_other_dir_names_keep_the_files_value(tmp_path: Path) -> None:
    """VQEGHD3-style files build paths from their own name (``yuv420_dir``): relative to the dataset's folder."""
    _yuv(tmp_path / "videos" / "src01.yuv")
    _yuv(tmp_path / "videos" / "src01_hrc04.yuv")
    text = """\
yuv_fmt = 'yuv420p'
width = 16
height = 8
yuv420_dir = 'videos'
ref_videos = [{'content_id': 1, 'content_name': 'src01', 'path': yuv420_dir + '/src01.yuv'}]
dis_videos = [{'asset_id': 1, 'content_id': 1, 'dmos': 5.0, 'path': yuv420_dir + '/src01_hrc04.yuv'}]
"""
    out = tmp_path / "m.csv"
    assert import_nflx(_write(tmp_path, text), tmp_path / "unused_r", tmp_path / "unused_d", out) == 1
    (pair,) = read_manifest(out)
    assert pair.dist.path.resolve() == (tmp_path / "videos" / "src01_hrc04.yuv").resolve()


def test_colliding_pair_keys_are_an_error(tmp_path: Path) -> None:
    for name in ("a.yuv", "b.yuv", "d1.yuv", "d2.yuv"):
        _yuv(tmp_path / name)
    text = """\
yuv_fmt = 'yuv420p'
width = 16
height = 8
ref_videos = [{'content_id': 0, 'content_name': 'a', 'path': 'a.yuv'},
              {'content_id': 1, 'content_name': 'a_x', 'path': 'b.yuv'}]
dis_videos = [{'asset_id': 'x_y', 'content_id': 0, 'path': 'd1.yuv'},
              {'asset_id': 'y', 'content_id': 1, 'path': 'd2.yuv'}]
"""
    dataset = _write(tmp_path, text)
    with pytest.raises(DatasetError, match=rf"^{dataset}:7: pair key 'a_x_y' repeats the entry on line 6"):
        import_nflx(dataset, tmp_path, tmp_path, tmp_path / "m.csv")
