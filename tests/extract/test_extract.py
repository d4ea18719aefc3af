"""The extract stage against real libvmaf: equality with a direct FFmpeg run, errors, policies, cache."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import pandas as pd
import pytest

from tinyvmaf.common import cpu
from tinyvmaf.contract import FEATURES
from tinyvmaf.extract.libvmaf import FrameCountMismatch, run_pair
from tinyvmaf.extract.stage import ExtractError, run_extract
from tinyvmaf.media.ffmpeg import FFmpegError, ffmpeg_info
from tinyvmaf.media.video import MediaError, Video

from conftest import extract_config

FF = imageio_ffmpeg.get_ffmpeg_exe()
TEACHERS = ["vmaf_v0.6.1"]
#: v0.6.1's features under libvmaf's per-frame keys (what the extractor's rows and features.parquet hold).
KEYS = {f: f"integer_{f}" for f in FEATURES}
W, H, N = 176, 144, 10
SIZE = f"{W}x{H}"
#: Byte-reproducible encodes with this FFmpeg (DESIGN.md): bitexact flags, no metadata, one thread.
X264 = ["-c:v", "libx264", "-threads", "1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1"]


def ff(*args: str) -> None:
    subprocess.run([FF, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def make_clip(out: Path, *, pix_fmt: str = "yuv420p", vf: str = "", fmt: str = "rawvideo", size: str = SIZE) -> Path:
    """``N`` frames of FFmpeg's moving testsrc2, optionally filtered, as raw video or Y4M."""
    chain = f"testsrc2=size={size}:rate=25" + (f",{vf}" if vf else "") + f",format={pix_fmt}"
    extra = ["-strict", "-1"] if fmt == "yuv4mpegpipe" else []
    ff("-f", "lavfi", "-i", chain, "-frames:v", str(N), *extra, "-f", fmt, str(out))
    return out


def raw_in(path: Path, pix_fmt: str = "yuv420p", size: str = SIZE) -> list[str]:
    return ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", size, "-framerate", "25", "-i", str(path)]


def direct(tmp: Path, dist_args: list[str], ref_args: list[str], pre: str = "", dis: str = "", ref: str = "") -> list:
    """Per-frame rows of a plain ``ffmpeg -i DIST -i REF -lavfi libvmaf`` run, independent of libvmaf.py.

    With the extractor's CPU pinning (``-cpuflags 0``): FFmpeg's SIMD swscale upscales differently.
    """
    log = tmp / "direct.json"
    vmaf = f"libvmaf=log_fmt=json:log_path={log}"
    graph = f"{pre}{dis or '[0:v]'}{ref or '[1:v]'}{vmaf}" if pre else vmaf
    ff(*cpu.ffmpeg_global_args(), *dist_args, *ref_args, "-lavfi", graph, "-f", "null", "-")
    frames = json.loads(log.read_text())["frames"]
    log.unlink()
    rows = []
    for f in frames:
        m = f["metrics"]
        rows.append({**{KEYS[k]: float(m[KEYS[k]]) for k in FEATURES}, "vmaf_v0.6.1": float(m["vmaf"])})
    return rows


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    c: dict[str, Path] = {"dir": d, "ref.yuv": make_clip(d / "ref.yuv")}
    ff(*raw_in(c["ref.yuv"]), *X264, "-qp", "0", str(d / "ref.mkv"))
    ff(*raw_in(c["ref.yuv"]), *X264, "-crf", "38", str(d / "d38.mp4"))
    ff(*raw_in(c["ref.yuv"]), *X264, "-crf", "24", str(d / "d24.mkv"))
    ff(*raw_in(c["ref.yuv"]), "-vf", "scale=88:72:flags=bicubic", *X264, "-crf", "20", str(d / "small.mkv"))
    ff("-i", str(d / "d38.mp4"), "-f", "rawvideo", "-pix_fmt", "yuv420p", str(d / "d38.yuv"))
    for name in ("ref.mkv", "d38.mp4", "d24.mkv", "small.mkv", "d38.yuv"):
        c[name] = d / name
    frame = W * H * 3 // 2
    c["d38_8.yuv"] = d / "d38_8.yuv"
    c["d38_8.yuv"].write_bytes(c["d38.yuv"].read_bytes()[: 8 * frame])
    c["bad.yuv"] = d / "bad.yuv"
    c["bad.yuv"].write_bytes(bytes(frame + frame // 2))
    return c


def _manifest(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A hand-written manifest (the schema the importers write), all clips 176x144 yuv420p where raw."""
    lines = ["key,content,ref,dist,width,height,pix_fmt"]
    lines += [f"{k},{k.split('_')[0]},{r},{d},{W},{H},yuv420p" for k, r, d in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _journal(cache: Path) -> int:
    path = cache / "journal.log"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _pair_rows(df: pd.DataFrame, key: str) -> list[dict]:
    cols = [*KEYS.values(), "vmaf_v0.6.1"]
    sub = df[df["key"] == key].sort_values("frame")
    assert list(sub["frame"]) == list(range(len(sub)))
    return [{c: float(r[c]) for c in cols} for _, r in sub.iterrows()]


# (a) -------------------------------------------------------------------------------------------------------------


def test_stage_equals_direct_ffmpeg_run(clips: dict[str, Path], tmp_path: Path) -> None:
    d = clips["dir"]
    manifest = _manifest(
        d / "manifest_a.csv",
        [
            ("mkv_d38", "ref.mkv", "d38.mp4"),  # containers
            ("mixed_d24", "ref.yuv", "d24.mkv"),  # raw reference, container distorted
            ("raw_d38", "ref.yuv", "d38.yuv"),  # raw both
        ],
    )
    out = tmp_path / "features.parquet"
    run_extract(manifest, out, extract_config(workers=2), progress=False)
    df = pd.read_parquet(out)
    assert list(df.columns) == ["key", "content", "frame", *KEYS.values(), "vmaf_v0.6.1"]
    assert sorted(df["key"].unique()) == ["mixed_d24", "mkv_d38", "raw_d38"]
    expect = {
        "mkv_d38": direct(tmp_path, ["-i", str(clips["d38.mp4"])], ["-i", str(clips["ref.mkv"])]),
        "mixed_d24": direct(tmp_path, ["-i", str(clips["d24.mkv"])], raw_in(clips["ref.yuv"])),
        "raw_d38": direct(tmp_path, raw_in(clips["d38.yuv"]), raw_in(clips["ref.yuv"])),
    }
    for key, rows in expect.items():
        assert len(rows) == N
        assert _pair_rows(df, key) == rows, key
    # Sanity: the lossless container reference scores like the raw one, and a harder encode scores lower.
    assert _pair_rows(df, "mkv_d38") == _pair_rows(df, "raw_d38")
    assert df[df.key == "raw_d38"]["vmaf_v0.6.1"].mean() < df[df.key == "mixed_d24"]["vmaf_v0.6.1"].mean()


# (b) -------------------------------------------------------------------------------------------------------------


def test_frame_count_mismatch_is_an_error_naming_both(clips: dict[str, Path]) -> None:
    ref = Video(clips["ref.yuv"], W, H, "yuv420p")
    short = Video(clips["d38_8.yuv"], W, H, "yuv420p")
    with pytest.raises(FrameCountMismatch) as err:
        run_pair(ref, short, ffmpeg=FF, teachers=TEACHERS, frame_policy="error")
    msg = str(err.value)
    assert str(clips["ref.yuv"]) in msg and str(clips["d38_8.yuv"]) in msg
    assert "has 10" in msg and "has 8" in msg


def test_truncate_policy_scores_the_common_frames(clips: dict[str, Path], tmp_path: Path) -> None:
    ref = Video(clips["ref.yuv"], W, H, "yuv420p")
    short = Video(clips["d38_8.yuv"], W, H, "yuv420p")
    res = run_pair(ref, short, ffmpeg=FF, teachers=TEACHERS, frame_policy="truncate")
    assert (res.ref_frames, res.dist_frames, len(res.frames)) == (10, 8, 8)
    want = direct(
        tmp_path,
        raw_in(clips["d38_8.yuv"]),
        raw_in(clips["ref.yuv"]),
        pre="[0:v]trim=end_frame=8[d];[1:v]trim=end_frame=8[r];",
        dis="[d]",
        ref="[r]",
    )
    assert res.frames == want


def test_extract_stage_reports_mismatch_by_pair_key(clips: dict[str, Path], tmp_path: Path) -> None:
    manifest = _manifest(clips["dir"] / "manifest_b.csv", [("short_d38", "ref.yuv", "d38_8.yuv")])
    with pytest.raises(ExtractError, match=r"pair 'short_d38': frame counts differ"):
        run_extract(manifest, tmp_path / "f.parquet", extract_config(workers=1), progress=False)
    assert not (tmp_path / "f.parquet").exists()


# (c) -------------------------------------------------------------------------------------------------------------


def test_raw_size_not_whole_frames_names_the_file(clips: dict[str, Path]) -> None:
    with pytest.raises(MediaError, match=r"bad\.yuv: size 57024 B is not a whole number of 176x144 yuv420p"):
        run_pair(
            Video(clips["ref.yuv"], W, H, "yuv420p"),
            Video(clips["bad.yuv"], W, H, "yuv420p"),
            ffmpeg=FF,
            teachers=TEACHERS,
            frame_policy="error",
        )


# (d) -------------------------------------------------------------------------------------------------------------


def test_lower_resolution_distorted_is_upscaled_bicubic(clips: dict[str, Path], tmp_path: Path) -> None:
    res = run_pair(
        Video(clips["ref.yuv"], W, H, "yuv420p"),
        Video(clips["small.mkv"]),
        ffmpeg=FF,
        teachers=TEACHERS,
        frame_policy="error",
    )
    want = direct(
        tmp_path,
        ["-i", str(clips["small.mkv"])],
        raw_in(clips["ref.yuv"]),
        pre=f"[0:v]scale={W}:{H}:flags=bicubic[d];",
        dis="[d]",
    )
    assert len(res.frames) == N
    assert res.frames == want


# (e) -------------------------------------------------------------------------------------------------------------


def test_cache_extracts_only_what_changed(clips: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("TINYVMAF_CACHE_DIR", str(cache))
    d, out = clips["dir"], tmp_path / "features.parquet"
    two = [("a_d38", "ref.yuv", "d38.yuv"), ("b_d24", "ref.mkv", "d24.mkv")]
    cfg = extract_config(workers=2)

    stats = run_extract(_manifest(d / "m_e1.csv", two), out, cfg, progress=False)
    assert (stats.extracted, stats.cached, _journal(cache)) == (2, 0, 2)

    stats = run_extract(_manifest(d / "m_e1.csv", two), out, cfg, progress=False)
    assert (stats.extracted, stats.cached, _journal(cache)) == (0, 2, 2)

    # Renaming a key or moving the manifest does not invalidate: the key is content-addressed.
    three = [*two, ("c_small", "ref.yuv", "small.mkv")]
    stats = run_extract(_manifest(d / "m_e2.csv", three), out, cfg, progress=False)
    assert (stats.extracted, stats.cached, _journal(cache)) == (1, 2, 3)
    assert sorted(pd.read_parquet(out)["key"].unique()) == ["a_d38", "b_d24", "c_small"]

    cfg_neg = extract_config(teachers=("vmaf_v0.6.1", "vmaf_v0.6.1neg"), workers=2)
    stats = run_extract(_manifest(d / "m_e2.csv", three), out, cfg_neg, progress=False)
    assert (stats.extracted, stats.cached, _journal(cache)) == (3, 0, 6)
    df = pd.read_parquet(out)
    assert "vmaf_v0.6.1neg" in df.columns and df["vmaf_v0.6.1neg"].notna().all()


def test_failing_pair_keeps_the_good_ones_cached(clips: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("TINYVMAF_CACHE_DIR", str(cache))
    d, out, cfg = clips["dir"], tmp_path / "f.parquet", extract_config(workers=2)
    good = [("good1", "ref.yuv", "d38.yuv"), ("good2", "ref.yuv", "d24.mkv")]
    with pytest.raises(ExtractError) as err:
        run_extract(_manifest(d / "m_f1.csv", [*good, ("broken", "ref.yuv", "bad.yuv")]), out, cfg, progress=False)
    msg = str(err.value)
    assert "1 of 3 pair(s) failed" in msg and "pair 'broken'" in msg and "bad.yuv" in msg
    assert "good1" not in msg and "good2" not in msg
    assert _journal(cache) == 2
    assert not out.exists()
    stats = run_extract(_manifest(d / "m_f2.csv", good), out, cfg, progress=False)
    assert (stats.extracted, stats.cached, _journal(cache)) == (0, 2, 2)


# (f) -------------------------------------------------------------------------------------------------------------


def test_ffmpeg_override_not_executable(tmp_path: Path, monkeypatch) -> None:
    fake = tmp_path / "ffmpeg"
    fake.write_text("not a program\n")
    fake.chmod(0o644)
    monkeypatch.setenv("TINYVMAF_FFMPEG", str(fake))
    with pytest.raises(FFmpegError, match="is not an executable file"):
        ffmpeg_info()
    monkeypatch.setenv("TINYVMAF_FFMPEG", str(tmp_path / "nowhere" / "ffmpeg"))
    with pytest.raises(FFmpegError, match="is not an executable file"):
        ffmpeg_info()


FAKE_FFMPEG = """#!/bin/sh
# Looks like FFmpeg, but was built without libvmaf.
case "$*" in
  *-version*) echo "ffmpeg version 6.0-fake Copyright (c) 2000-2023 the FFmpeg developers" ;;
  *-filters*) printf 'Filters:\\n ... scale             V->V       Scale the input video size.\\n' ;;
  *) echo "fake ffmpeg: $*" >&2; exit 1 ;;
esac
"""


def test_ffmpeg_without_libvmaf_is_refused(clips: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    fake = tmp_path / "ffmpeg-nolibvmaf"
    fake.write_text(FAKE_FFMPEG)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("TINYVMAF_FFMPEG", str(fake))
    with pytest.raises(FFmpegError, match=r"has no 'libvmaf' filter"):
        ffmpeg_info()
    proc = subprocess.run(
        [sys.executable, "-m", "tinyvmaf.cli", "features", str(clips["ref.mkv"]), str(clips["d38.mp4"])],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
    )
    assert proc.returncode == 1
    assert "has no 'libvmaf' filter" in proc.stderr and str(fake) in proc.stderr


# (g) -------------------------------------------------------------------------------------------------------------


def test_features_cli_names_the_missing_file(clips: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "no_such_clip.yuv"
    proc = subprocess.run(
        [sys.executable, "-m", "tinyvmaf.cli", "features", str(clips["ref.yuv"]), str(missing)]
        + ["--width", str(W), "--height", str(H), "--pix-fmt", "yuv420p", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert str(missing) in proc.stderr
    assert proc.stdout == ""


# (h) -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p10le", "yuv444p"])
def test_raw_pixel_formats(pix_fmt: str, tmp_path: Path) -> None:
    ref = make_clip(tmp_path / f"ref_{pix_fmt}.yuv", pix_fmt=pix_fmt)
    dis = make_clip(tmp_path / f"dis_{pix_fmt}.yuv", pix_fmt=pix_fmt, vf="boxblur=1:1")
    res = run_pair(
        Video(ref, W, H, pix_fmt), Video(dis, W, H, pix_fmt), ffmpeg=FF, teachers=TEACHERS, frame_policy="error"
    )
    assert len(res.frames) == N
    assert res.frames == direct(tmp_path, raw_in(dis, pix_fmt), raw_in(ref, pix_fmt))
    mean = sum(f["vmaf_v0.6.1"] for f in res.frames) / N
    assert 5 < mean < 99, mean  # blurred: clearly below a perfect score, clearly above garbage


def test_y4m_input(tmp_path: Path) -> None:
    ref = make_clip(tmp_path / "ref.y4m", fmt="yuv4mpegpipe")
    dis = make_clip(tmp_path / "dis.y4m", fmt="yuv4mpegpipe", vf="boxblur=1:1")
    res = run_pair(Video(ref), Video(dis), ffmpeg=FF, teachers=TEACHERS, frame_policy="error")
    assert len(res.frames) == N
    assert res.frames == direct(tmp_path, ["-i", str(dis)], ["-i", str(ref)])
    # The same pictures as raw YUV with declared geometry score the same.
    raw_ref = make_clip(tmp_path / "ref.yuv")
    raw_dis = make_clip(tmp_path / "dis.yuv", vf="boxblur=1:1")
    assert (
        run_pair(
            Video(raw_ref, W, H, "yuv420p"),
            Video(raw_dis, W, H, "yuv420p"),
            ffmpeg=FF,
            teachers=TEACHERS,
            frame_policy="error",
        ).frames
        == res.frames
    )


def test_a_short_container_is_caught_from_the_runs_own_statistics(
    clips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No probe of the distorted clip under the default policy: FFmpeg's decoder counts say it is short."""
    from tinyvmaf.extract import libvmaf

    short = tmp_path / "d38_8.mkv"
    raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{W}x{H}", "-i", str(clips["d38_8.yuv"])]
    subprocess.run([FF, "-loglevel", "error", *raw, *X264, "-crf", "38", str(short)], check=True)
    probed = []
    real_probe = libvmaf.probe
    monkeypatch.setattr(libvmaf, "probe", lambda v, ff: probed.append(v.path) or real_probe(v, ff))
    ref = Video(clips["ref.mkv"])
    with pytest.raises(FrameCountMismatch, match=rf"reference {ref.path} has {N}, distorted {short} has 8"):
        run_pair(ref, Video(short), ffmpeg=FF, teachers=TEACHERS, frame_policy="error")
    assert short not in probed  # counted from the run, not by a separate probe
    # An FFmpeg that prints no statistics: the clip is probed instead, with the same verdict.
    monkeypatch.setattr(libvmaf, "decoded_frames", lambda stderr: {})
    with pytest.raises(FrameCountMismatch, match="has 8"):
        run_pair(ref, Video(short), ffmpeg=FF, teachers=TEACHERS, frame_policy="error")
    assert short in probed


def test_decoded_frames_parses_ffmpegs_statistics() -> None:
    from tinyvmaf.extract.libvmaf import decoded_frames

    text = (
        "[in#0/matroska,webm @ 0x1]   Input stream #0:0 (video): 48 packets read (298624 bytes); "
        "48 frames decoded; 0 decode errors;\n"
        "[in#1/rawvideo @ 0x2]   Input stream #1:0 (video): 50 packets read (1 bytes); 50 frames decoded;\n"
    )
    assert decoded_frames(text) == {0: 48, 1: 50}
    assert decoded_frames("nothing here") == {}
