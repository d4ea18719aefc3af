"""The v1.0.16 teachers and the teacher spec against what FFmpeg's libvmaf logs and Netflix's CLI prints.

One FFmpeg run per golden pair scores every applicable variant at once
(several ``path=`` entries in ``model=``, each with ``name=``), loading the
very files the project carries.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tinyvmaf.contract import FEATURES
from tinyvmaf.teacher.spec import TeacherSpec, UnsafeFilterPath, feature_key, filter_safe_path, load_spec
from tinyvmaf.teacher.svr import TeacherModelError, load_teacher

VARIANTS = tuple(
    f"vmaf_v1.0.16_{v}"
    for v in ("3d0h", "5d0h", "1d5h_2160", "3d0h_2160", "hfr_1d5h_2160", "hfr_3d0h", "hfr_3d0h_2160", "hfr_5d0h")
)
#: speed_prescale 0.5/0.6: libvmaf's SpEED logs 0 at 576x324 (the corrected path) and segfaults at 480x270
#: ("image too small, operating width or height is 0"), so those four run on src01 only.
PRESCALED = tuple(
    v for v in VARIANTS if any(k == "speed_prescale" for k, _ in load_spec(v).feature("speed_chroma_uv").options)
)
SRC01 = ("src01_hrc00_576x324.yuv420p10le.yuv", "src01_hrc01_576x324.yuv420p10le.yuv", 576, 324)
SPARKS = ("sparks_ref_480x270.yuv42010le.yuv", "sparks_dis_480x270.yuv42010le.yuv", 480, 270)
#: Netflix's vmaf CLI (libvmaf 3.2.0, Netflix/vmaf HEAD) on src01, vmaf_v1.0.16_3d0h (issue 17).
NETFLIX_3D0H = (92.207303, 88.339059, 86.194434)
NETFLIX_3D0H_POOLED = 88.913599


def libvmaf_frames(ref: Path, dist: Path, size: tuple[int, int], specs: list[TeacherSpec], pix_fmt: str) -> list[dict]:
    """Per-frame metrics straight from FFmpeg's libvmaf filter, every spec loaded by ``path=``."""
    import imageio_ffmpeg

    w, h = size
    raw = ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{w}x{h}"]
    model = "|".join(s.model_option() for s in specs)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.json"
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *raw, "-i", str(dist)]
        cmd += [*raw, "-i", str(ref), "-lavfi", f"libvmaf=log_fmt=json:log_path={log}:model='{model}'"]
        subprocess.run([*cmd, "-f", "null", "-"], check=True, capture_output=True, timeout=120)
        return [f["metrics"] for f in json.loads(log.read_text())["frames"]]


@pytest.fixture(scope="module")
def golden_logs(golden_dir: Path) -> dict[str, list[dict]]:
    """``{pair: frames}``: src01 with all eight variants, sparks with the four that run at 480x270."""
    out = {}
    for pair, names in ((SRC01, VARIANTS), (SPARKS, tuple(v for v in VARIANTS if v not in PRESCALED))):
        ref, dist, w, h = pair
        out[ref] = libvmaf_frames(
            golden_dir / ref, golden_dir / dist, (w, h), [load_spec(n) for n in names], "yuv420p10le"
        )
    return out


def worst_ratio(spec: TeacherSpec, frames: list[dict]) -> tuple[float, np.ndarray]:
    x = np.array([[f[k] for k in spec.keys] for f in frames])
    dev = np.abs(spec.predict(x) - np.array([f[spec.name] for f in frames]))
    return float((dev / spec.rounding_bound(x)).max()), x


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_equals_libvmaf_within_the_rounding_bound(variant: str, golden_logs: dict[str, list[dict]]) -> None:
    spec = load_spec(variant)
    checked = 0
    for frames in golden_logs.values():
        if spec.name not in frames[0]:
            continue
        missing = [k for k in spec.keys if k not in frames[0]]
        assert not missing, f"libvmaf logged no {missing} for {variant}: the spec's keys are wrong"
        ratio, x = worst_ratio(spec, frames)
        print(f"{variant}: worst |teacher - libvmaf| / bound = {ratio:.3f} over {len(x)} frames")
        assert ratio <= 1.0, (variant, ratio)
        checked += len(x)
    assert checked >= 3


def test_prescaled_variants_exercise_the_chroma_correction(golden_logs: dict[str, list[dict]]) -> None:
    """On src01 the prescaled variants log speed_chroma_uv = 0: libvmaf scored them with 120·(1 − adm3)."""
    frames = golden_logs[SRC01[0]]
    for variant in PRESCALED:
        spec = load_spec(variant)
        x = np.array([[f[k] for k in spec.keys] for f in frames])
        assert (x[:, spec.order.index("speed_chroma_uv")] == 0).all()
        uncorrected = spec.predict(x) - _without_correction(spec).predict(x, order=spec.order)
        assert np.abs(uncorrected).min() > 1.0, (variant, uncorrected)  # the correction matters here, and it matched


def _without_correction(spec: TeacherSpec):
    from dataclasses import replace

    return replace(spec.teacher, chroma_correction=None)


def test_netflix_cli_values_for_3d0h(golden_logs: dict[str, list[dict]]) -> None:
    spec = load_spec("vmaf_v1.0.16_3d0h")
    frames = golden_logs[SRC01[0]]
    x = np.array([[f[k] for k in spec.keys] for f in frames])
    got = spec.predict(x)
    dev = np.abs(got - NETFLIX_3D0H)
    assert (dev <= spec.rounding_bound(x)).all(), dev
    pooled = abs(got.mean() - NETFLIX_3D0H_POOLED)
    print(f"pooled teacher {got.mean():.6f} vs Netflix CLI {NETFLIX_3D0H_POOLED}: {pooled:.2e}")
    assert pooled <= 1e-4


def test_chroma_correction_is_libvmafs_step() -> None:
    t = load_spec("vmaf_v1.0.16_3d0h")
    rows = np.array([[1.2, 0.0, 0.91, 4.0], [0.3, 0.0, 0.6, 12.0], [1.2, 1e-9, 0.91, 4.0]])
    by_hand = rows.copy()
    by_hand[:2, 1] = 120.0 * (1.0 - rows[:2, 2])
    np.testing.assert_allclose(t.predict(rows[:2]), t.predict(by_hand[:2]), rtol=0, atol=1e-9)
    # only an exact 0 is corrected: 1e-9 is scored as it is, near the uncorrected value
    plain = _without_correction(t).predict(rows, order=t.order)
    assert t.predict(rows[2:])[0] == plain[2]
    assert abs(t.predict(rows[:1])[0] - plain[0]) > 1.0
    # the corrected value can exceed speed_max_val 45: 120·(1 − 0.5) = 60 at adm3's floor
    assert 120.0 * (1.0 - t.feature("adm3").lower) == 60.0


def test_spec_of_each_variant() -> None:
    for v in VARIANTS:
        s = load_spec(v)
        assert s.order == ("cambi", "speed_chroma_uv", "adm3", "motion3")
        assert s.transform_enabled and s.chroma_correction == 120.0 and s.norm_type == "linear_rescale"
        assert [(f.lower, f.upper) for f in s.features] == [(0.0, 17.0), (0.0, 45.0), (0.5, 1.0), (0.0, 18.0)]
        assert s.path.is_file() and s.path.parent.name == "models" and "shared" not in s.path.parts
        assert s.model_option() == f"path={s.path.resolve().as_posix()}\\:name={v}"
    assert load_spec("vmaf_v1.0.16_3d0h_2160").clip == (0.0, 110.0)
    assert load_spec("vmaf_v1.0.16_3d0h").clip == (0.0, 100.0)
    assert load_spec("vmaf_v1.0.16_3d0h").keys == (
        "cambi_hrs_1080_cmxv_17_vlt_0.06",
        "speed_chroma_uv_mxv_45_nnf_0.1_snn_0.19_wvm_5",
        "integer_adm3_csf_2_dlmw_0.7_egl_1_min_0.5_nw_0.02",
        "integer_motion3_mmxv_18",
    )
    assert load_spec("vmaf_v1.0.16_hfr_5d0h").keys[1:] == (
        "speed_chroma_uv_mxv_45_nnf_0.1_ps_0.6_psm_bilinear_snn_0.19_wvm_5",
        "integer_adm3_csf_2_dlmw_0.7_egl_1_min_0.5_nw_0.02_nvd_5",
        "integer_motion3_mffw_mmxv_18_mma",
    )
    # the eight share one SVR; the transform and clip differ
    base = load_teacher(VARIANTS[0])
    assert all(load_teacher(v).svr_signature() == base.svr_signature() for v in VARIANTS)


def test_v061_family_spec_keeps_canonical_6() -> None:
    s = load_spec("vmaf_v0.6.1")
    assert s.order == FEATURES
    assert s.keys == tuple(f"integer_{k}" for k in FEATURES)
    assert load_spec("vmaf_v0.6.1neg").keys == (
        *(f"integer_{k}_egl_1" for k in FEATURES[:5]),
        "integer_motion2",
    )
    assert load_spec("vmaf_4k_v0.6.1").keys == s.keys
    assert s.clip == (0.0, 100.0) and not s.transform_enabled and s.chroma_correction is None
    x = np.array([[0.93, 0.45, 0.8, 0.9, 0.94, 3.0]])
    assert s.predict(x).tobytes() == load_teacher("vmaf_v0.6.1").predict(x).tobytes()


def test_unsafe_paths_and_unknown_options_are_named(tmp_path: Path) -> None:
    for bad in ("my models/x.json", "a:b.json", "it's.json", "a|b.json", "a\\b.json", "a,b.json"):
        with pytest.raises(UnsafeFilterPath, match="model file path"):
            filter_safe_path(tmp_path / bad)
    assert filter_safe_path("/opt/m/vmaf_v1.0.16_3d0h.json") == "/opt/m/vmaf_v1.0.16_3d0h.json"
    with pytest.raises(TeacherModelError, match="adm_foo"):
        feature_key("VMAF_integer_feature_adm3_score", {"adm_foo": 1.0})
    with pytest.raises(TeacherModelError, match="speed_kernelscale"):
        feature_key("Speed_chroma_feature_speed_chroma_uv_score", {"speed_kernelscale": 2.0})
    with pytest.raises(TeacherModelError, match="Moment_feature"):
        feature_key("Moment_feature_dis1st_score", {})
    assert feature_key("VMAF_integer_feature_adm3_score", {"adm_norm_view_dist": 3.0})[2] == "integer_adm3"
