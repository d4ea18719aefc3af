"""The callable teacher: libvmaf's JSON models in float64 NumPy equal libvmaf's own per-frame scores."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from tinyvmaf.contract import FEATURES
from tinyvmaf.teacher import TeacherModelError, load_teacher, packaged_models, same_svr
from tinyvmaf.teacher.svr import parse_model

from kit import REPO

if TYPE_CHECKING:
    from servers import Pipeline

pytest_plugins = ["servers"]

#: libvmaf logs six decimals: the score it prints is within 5e-7 of its own, the features too, and the
#: SVR's slope (83.19 score points per unit) turns feature rounding into up to ~2e-4 of score.
LOG_ROUNDING = 2e-4


def ffmpeg_frames(ref: Path, dist: Path, geometry: tuple[int, int, str], models: dict[str, str]) -> list[dict]:
    """Per-frame metrics straight from FFmpeg's libvmaf filter (no tinyvmaf code in between)."""
    import tempfile

    import imageio_ffmpeg

    w, h, fmt = geometry
    raw = ["-f", "rawvideo", "-pix_fmt", fmt, "-s", f"{w}x{h}"]
    spec = "|".join(f"version={v}\\:name={n}" for n, v in models.items())
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.json"
        graph = f"libvmaf=log_fmt=json:log_path={log}:model='{spec}'"
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *raw, "-i", str(dist)]
        cmd += [*raw, "-i", str(ref), "-lavfi", graph, "-f", "null", "-"]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        return [f["metrics"] for f in json.loads(log.read_text())["frames"]]


def test_packaged_models_parse() -> None:
    v1016 = [f"vmaf_v1.0.16_{v}" for v in ("1d5h_2160", "3d0h", "3d0h_2160", "5d0h")]
    v1016 += [f"vmaf_v1.0.16_hfr_{v}" for v in ("1d5h_2160", "3d0h", "3d0h_2160", "5d0h")]
    assert packaged_models() == ["vmaf_4k_v0.6.1", "vmaf_b_v0.6.3", "vmaf_v0.6.1", "vmaf_v0.6.1neg", *v1016]
    t = load_teacher("vmaf_v0.6.1")
    assert t.features == ("adm2", "motion2", "vif_scale0", "vif_scale1", "vif_scale2", "vif_scale3")
    assert t.n_support_vectors == 211 and t.gamma == 0.04 and t.rho == -1.33133
    assert t.score_clip == (0.0, 100.0)
    assert t.transform is not None and t.transform.enabled is False  # present but off, as libvmaf reads it


def test_equals_libvmaf_on_every_golden_frame(golden_dir: Path, golden_pair: dict) -> None:
    geometry = (golden_pair["width"], golden_pair["height"], golden_pair["pix_fmt"])
    frames = ffmpeg_frames(
        golden_dir / golden_pair["ref"], golden_dir / golden_pair["dist"], geometry, {"std": "vmaf_v0.6.1"}
    )
    x = np.array([[f[f"integer_{k}"] for k in FEATURES] for f in frames])
    got = load_teacher("vmaf_v0.6.1").predict(x)
    np.testing.assert_allclose(got, [f["std"] for f in frames], rtol=0, atol=LOG_ROUNDING)


@pytest.mark.slow
def test_equals_libvmaf_on_every_demo_frame(pipeline: Pipeline) -> None:
    """Every frame of the test corpus (demo sources and ladder rungs, real encodes), as extracted."""
    df = pd.read_parquet(pipeline.path / "features.parquet")
    got = load_teacher("vmaf_v0.6.1").predict(df[[f"integer_{f}" for f in FEATURES]].to_numpy(np.float64))
    dev = np.abs(got - df["vmaf_v0.6.1"].to_numpy())
    assert len(df) > 100 and dev.max() <= LOG_ROUNDING, dev.max()


def test_neg_is_the_same_svr_fed_neg_features(golden_dir: Path) -> None:
    """vmaf_v0.6.1neg differs only in extraction options: the v0.6.1 SVR on the *_egl_1 features is NEG."""
    std, neg = load_teacher("vmaf_v0.6.1"), load_teacher("vmaf_v0.6.1neg")
    assert same_svr(std, neg)
    assert not same_svr(std, load_teacher("vmaf_4k_v0.6.1"))
    assert std.feature_opts == () and any("vif_enhn_gain_limit" in o for o in neg.feature_opts)
    frames = ffmpeg_frames(
        golden_dir / "src01_hrc00_576x324.yuv420p10le.yuv",
        golden_dir / "src01_hrc01_576x324.yuv420p10le.yuv",
        (576, 324, "yuv420p10le"),
        {"neg": "vmaf_v0.6.1neg", "std": "vmaf_v0.6.1"},
    )
    egl = {k: f"integer_{k}_egl_1" for k in FEATURES if k != "motion2"} | {"motion2": "integer_motion2"}
    x_neg = np.array([[f[egl[k]] for k in FEATURES] for f in frames])
    x_std = np.array([[f[f"integer_{k}"] for k in FEATURES] for f in frames])
    np.testing.assert_allclose(std.predict(x_neg), [f["neg"] for f in frames], atol=LOG_ROUNDING)
    np.testing.assert_allclose(std.predict(x_std), [f["std"] for f in frames], atol=LOG_ROUNDING)
    assert abs(frames[0]["neg"] - frames[0]["std"]) > 0.5  # the two really differ: the features do it


def test_columns_are_mapped_by_name() -> None:
    t = load_teacher("vmaf_v0.6.1")
    x = np.array([[0.93, 0.45, 0.8, 0.9, 0.94, 3.0], [0.7, 0.1, 0.4, 0.5, 0.6, 12.0]])
    order = [5, 2, 0, 4, 1, 3]
    shuffled = tuple(FEATURES[i] for i in order)
    np.testing.assert_array_equal(t.predict(x[:, order], order=shuffled), t.predict(x))
    with pytest.raises(TeacherModelError, match="motion2"):
        t.predict(x[:, :5], order=FEATURES[:5])


def test_clip_and_transform_follow_the_model() -> None:
    t = load_teacher("vmaf_v0.6.1")
    enhanced = np.array([[1.117, 1.06, 1.07, 1.06, 1.05, 5.0]])  # enhancement pushes features above 1
    assert t.predict(enhanced)[0] == 100.0
    assert t.predict(enhanced, clip=False)[0] > 110  # the SVR itself reads far above 100 there
    plain = t.predict(np.array([[0.9, 0.4, 0.75, 0.85, 0.9, 4.0]]), clip=False)[0]
    forced = t.predict(np.array([[0.9, 0.4, 0.75, 0.85, 0.9, 4.0]]), clip=False, transform=True)[0]
    st = t.transform
    assert forced == pytest.approx(max(st.p0 + st.p1 * plain + st.p2 * plain**2, plain))


def _tiny_model(**over) -> dict:
    model = (
        "svm_type nu_svr\nkernel_type rbf\ngamma 0.5\nnr_class 2\ntotal_sv 2\nrho 0.25\nSV\n1.5 1:0.5 3:1\n-1 2:2 \n"
    )
    md = {
        "model_type": "LIBSVMNUSVR",
        "feature_names": ["VMAF_feature_adm2_score", "VMAF_feature_motion2_score", "VMAF_feature_vif_scale0_score"],
        "norm_type": "linear_rescale",
        "slopes": [0.5, 1.0, 1.0, 1.0],
        "intercepts": [-10.0, 0.0, 0.0, 0.0],
        "score_clip": [0.0, 100.0],
        "model": model,
        **over,
    }
    return {"model_dict": md}


def test_sparse_support_vectors_and_an_enabled_transform() -> None:
    t = parse_model(_tiny_model(), name="tiny", source="tiny.json")
    np.testing.assert_array_equal(t.support_vectors, [[0.5, 0.0, 1.0], [0.0, 2.0, 0.0]])  # absent indices are 0
    x = np.array([[0.5, 1.0, 0.25]])  # adm2, motion2, vif_scale0 in the model's order
    k = 1.5 * np.exp(-0.5 * (0.0 + 1.0 + 0.5625)) - 1.0 * np.exp(-0.5 * (0.25 + 1.0 + 0.0625))
    want = (k - 0.25 + 10.0) / 0.5
    order = ("adm2", "motion2", "vif_scale0")
    assert t.predict(x, order=order, clip=False)[0] == pytest.approx(want, rel=1e-12)
    on = parse_model(
        _tiny_model(score_transform={"enabled": True, "p0": 1.0, "p1": 2.0, "p2": 0.0}), name="t", source="t.json"
    )
    assert on.predict(x, order=order, clip=False)[0] == pytest.approx(1.0 + 2.0 * want, rel=1e-12)


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"models": []}, "no 'model_dict'"),
        (_tiny_model(model_type="RANDOMFOREST"), "LIBSVMNUSVR"),
        (_tiny_model(slopes=[1.0]), "slopes and intercepts"),
        (_tiny_model(model="svm_type c_svc\nkernel_type rbf\nSV\n"), "nu_svr"),
        (_tiny_model(model="svm_type nu_svr\nkernel_type rbf\ngamma 1\nrho 0\ntotal_sv 3\nSV\n1 1:1\n"), "total_sv 3"),
    ],
)
def test_bad_model_files_are_named(doc: dict, match: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(TeacherModelError, match=match) as err:
        load_teacher(path)
    assert str(path) in str(err.value)
    with pytest.raises(TeacherModelError, match="unknown teacher model"):
        load_teacher("vmaf_v9")
    assert (REPO / "src" / "tinyvmaf" / "teacher" / "models" / "LICENSE").is_file()
