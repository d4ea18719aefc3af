"""Manifest schema: a hand-written CSV works as is, and every error names file:line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyvmaf.corpus.manifest import ManifestError, missing_media, read_manifest, write_manifest

HEADER = "key,content,ref,dist,width,height,pix_fmt,dist_width,dist_height,dist_pix_fmt,mos,dmos"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sub" / "manifest.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_hand_written_manifest_parses(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        f"{HEADER}\n"
        "a_1,a,ref/a.yuv,dist/a_1.yuv,176,144,yuv420p,88,72,yuv420p10le,3.5,\n"
        "a_2,a,ref/a.yuv,dist/a_2.mkv,176,144,yuv420p,,,,,97.25\n"
        "\n"
        "b_1, b ,ref/b.mkv,dist/b_1.mp4,,,,,,,,\n",
    )
    a1, a2, b1 = read_manifest(path)
    assert a1.ref.path == tmp_path / "sub" / "ref" / "a.yuv"  # relative to the manifest's folder
    assert (a1.ref.width, a1.ref.height, a1.ref.pix_fmt) == (176, 144, "yuv420p")
    assert (a1.dist.width, a1.dist.height, a1.dist.pix_fmt) == (88, 72, "yuv420p10le")
    assert (a1.mos, a1.dmos) == (3.5, None)
    assert (a2.dist.width, a2.dist.height, a2.dist.pix_fmt) == (176, 144, "yuv420p")  # inherited
    assert (a2.mos, a2.dmos) == (None, 97.25)
    assert a1.ref.is_raw and not a2.dist.is_raw  # a container stays a container beside a raw reference
    assert b1.content == "b" and not b1.ref.is_raw and b1.ref.width is None
    assert missing_media([a1, a2, b1])[:2] == [str(a1.ref.path), str(a1.dist.path)]


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    rows = [
        {"key": "x,1", "content": 'quote"d', "ref": "r.yuv", "dist": "d.yuv", "width": 8, "height": 4},
        {"key": "x2", "content": "c", "ref": "r.yuv", "dist": "d.yuv", "width": 8, "height": 4, "mos": 1 / 3},
    ]
    rows = [{**r, "pix_fmt": "yuv420p"} for r in rows]
    path = tmp_path / "m.csv"
    write_manifest(rows, path)
    header = path.read_text().splitlines()[0]
    assert header == "key,content,ref,dist,width,height,pix_fmt,mos"  # unused columns left out
    p1, p2 = read_manifest(path)
    assert (p1.key, p1.content, p1.mos) == ("x,1", 'quote"d', None)
    assert p2.mos == 1 / 3  # repr keeps every bit


@pytest.mark.parametrize(
    ("text", "where", "column", "what"),
    [
        ("key,content,ref,dist\na,c,r.yuv,d.yuv\nb,c,r.yuv,d2.yuv\na,c,r.yuv,d3.yuv\n", 4, "key", "duplicate key 'a'"),
        # A blank line does not throw the line numbers off.
        ("key,content,ref,dist\na,c,r.yuv,d.yuv\n\nb,c,r.yuv,d2.yuv\na,c,r.yuv,d3.yuv\n", 5, "key", "first on line 2"),
        ("key,content,ref,dist\na,c,r.yuv,d.yuv\nb,c,,d2.yuv\n", 3, "ref", "empty"),
        ("key,content,ref,dist\na,c,r.yuv,d.yuv\nb,c,  ,d2.yuv\n", 3, "ref", "empty"),
        (
            "key,content,ref,dist,width\na,c,r.yuv,d.yuv,176\nb,c,r.yuv,d.yuv,wide\n",
            3,
            "width",
            "'wide' is not a number",
        ),
        ("key,content,ref,dist,height\na,c,r.yuv,d.yuv,14.4\n", 2, "height", "'14.4' is not a number"),
        ("key,content,ref,dist,mos\na,c,r.yuv,d.yuv,nan\n", 2, "mos", "'nan' is not finite"),
    ],
)
def test_row_errors_name_file_line_and_column(tmp_path: Path, text: str, where: int, column: str, what: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{where} column '{column}': "), msg
    assert what in msg


def test_missing_required_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "key,content,ref,width\na,c,r.yuv,176\n")
    with pytest.raises(ManifestError, match=r":1 \(header\): missing column\(s\) \['dist'\]") as err:
        read_manifest(path)
    assert str(err.value).startswith(f"{path}:1")


def test_missing_and_empty_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "nope.csv")
    with pytest.raises(ManifestError, match="no pairs"):
        read_manifest(_write(tmp_path, "key,content,ref,dist\n"))


def test_non_positive_size_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "manifest.csv"
    path.write_text("key,content,ref,dist,width,height,pix_fmt\nk,c,r.yuv,d.yuv,0,324,yuv420p\n")
    with pytest.raises(ManifestError, match=r"manifest.csv:2 column 'width'.*positive"):
        read_manifest(path)
