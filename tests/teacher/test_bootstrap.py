"""The bootstrap teacher (vmaf_b_v0.6.3): components against FFmpeg's libvmaf, statistics against Netflix's CLI."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tinyvmaf.contract import FEATURES
from tinyvmaf.teacher.bootstrap import STATISTICS, load_bootstrap, statistics_from_components
from tinyvmaf.teacher.spec import rounding_bound

#: Netflix's vmaf CLI (libvmaf 3.2.0, Netflix/vmaf HEAD) on the 10-bit src01 pair: frames 0-2, then pooled (issue 18).
NETFLIX = {
    "score": (83.171225, 81.319807, 79.810998, 81.43401),
    "bagging": (82.275541, 80.813865, 79.280655, 80.79002),
    "stddev": (2.302359, 1.316361, 1.250161, 1.622961),
    "ci_p95_lo": (78.728629, 78.883851, 77.410671, 78.34105),
    "ci_p95_hi": (86.205567, 83.262824, 81.490993, 83.653128),
}
PAIRS = (
    ("src01_hrc00_576x324.yuv420p10le.yuv", "src01_hrc01_576x324.yuv420p10le.yuv", 576, 324),
    ("sparks_ref_480x270.yuv42010le.yuv", "sparks_dis_480x270.yuv42010le.yuv", 480, 270),
)


@pytest.fixture(scope="module")
def logs(golden_dir: Path) -> dict[str, list[dict]]:
    """One FFmpeg run per pair with all 21 components loaded by ``path=``."""
    import imageio_ffmpeg

    b = load_bootstrap()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = b.model_options(Path(tmp) / "components")
        for ref, dist, w, h in PAIRS:
            log = Path(tmp) / "log.json"
            raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", f"{w}x{h}"]
            cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *raw]
            cmd += ["-i", str(golden_dir / dist), *raw, "-i", str(golden_dir / ref)]
            cmd += ["-lavfi", f"libvmaf=log_fmt=json:log_path={log}:model='{model}'", "-f", "null", "-"]
            subprocess.run(cmd, check=True, capture_output=True, timeout=120)
            out[ref] = [f["metrics"] for f in json.loads(log.read_text())["frames"]]
    return out


def test_the_file() -> None:
    b = load_bootstrap()
    assert b.n_components == 21 and b.input_order == FEATURES
    assert b.keys == tuple(f"integer_{k}" for k in FEATURES)
    assert all(m.transform is not None and not m.transform.enabled for m in b.models)  # no 'enabled' key: off
    assert all(m.score_clip == (0.0, 100.0) for m in b.models)
    docs = b.component_documents()
    assert all(d["model_dict"]["model_type"] == "LIBSVMNUSVR" for d in docs)
    assert b.docs[0]["model_dict"]["model_type"] == "BOOTSTRAP_LIBSVMNUSVR"  # the file itself is untouched


def test_each_component_equals_libvmaf(logs: dict[str, list[dict]]) -> None:
    b = load_bootstrap()
    worst = 0.0
    for frames in logs.values():
        x = np.array([[f[k] for k in b.keys] for f in frames])
        for k, m in enumerate(b.models):
            want = np.array([f[f"{b.name}_{k:02d}"] for f in frames])
            ratio = float((np.abs(m.predict(x) - want) / rounding_bound(m.predict, x)).max())
            assert ratio <= 1.0, (k, ratio)
            worst = max(worst, ratio)
    print(f"bootstrap components: worst |teacher - libvmaf| / bound = {worst:.3f}")


def test_statistics_equal_netflix_cli(logs: dict[str, list[dict]]) -> None:
    b = load_bootstrap()
    frames = logs[PAIRS[0][0]]
    x = np.array([[f[k] for k in b.keys] for f in frames])
    stats = b.statistics(x)
    assert tuple(stats) == STATISTICS
    worst = 0.0
    for s, want in NETFLIX.items():
        got = np.append(stats[s], stats[s].mean())  # pooled: the mean of the frame values
        dev = np.abs(got - np.array(want))
        print(f"{s}: max |teacher - Netflix CLI| = {dev.max():.2e}")
        assert dev.max() <= 2e-4, (s, dev)
        worst = max(worst, dev.max())
    assert worst > 0  # the values are really compared


def test_statistics_follow_predict_c() -> None:
    b = load_bootstrap()
    raw = np.tile(np.arange(21, dtype=np.float64), (3, 1)) + np.array([[10.0], [85.0], [99.995]])
    st = statistics_from_components(b, raw)
    coll = np.sort(raw[:, 1:], axis=1)
    np.testing.assert_allclose(st["bagging"][:1], coll[0].mean(), rtol=1e-15)
    # the slope (tc(m + 0.01) - tc(m - 0.01)) / 0.02 is 1 only up to rounding, as in predict.c
    np.testing.assert_allclose(st["stddev"][:1], coll[0].std(), rtol=1e-12)
    lo = 0.525 * coll[:, 0] + 0.475 * coll[:, 1]
    hi = 0.475 * coll[:, 18] + 0.525 * coll[:, 19]
    np.testing.assert_allclose(st["ci_p95_lo"], np.clip(lo, 0, 100), rtol=1e-14)
    np.testing.assert_allclose(st["ci_p95_hi"], np.clip(hi, 0, 100), rtol=1e-14)
    assert st["score"][0] == 10.0 and st["ci_p95_hi"][2] == 100.0  # key 0 alone; hi clipped
    assert st["stddev"][2] == 0.0  # raw mean 110.5: past 100.01, transform-then-clip is flat
    with pytest.raises(ValueError, match="21"):
        statistics_from_components(b, raw[:, :20])


def test_shared_kernel_components_are_each_components_own_bits() -> None:
    """components() computes each distinct support vector's kernel once; the bits are each SVR's own predict's."""
    b = load_bootstrap()
    rng = np.random.default_rng(11)
    x = np.column_stack([rng.uniform(0.2, 1.1, (3000, 5)), rng.uniform(0, 40, 3000)])
    x[::7, 5] = 0.0
    fast = b.components(x)
    each = np.stack([m.predict(x, clip=False, transform=False) for m in b.models], axis=1)
    assert fast.shape == (3000, 21)
    assert np.array_equal(fast.view(np.uint64), each.view(np.uint64))
    assert fast.max() > 100 and fast.min() < 0  # raw: the clip is the statistics' business


def test_the_spec_of_a_bootstrap_file() -> None:
    from tinyvmaf.teacher.spec import load_spec, v061_family

    s = load_spec("vmaf_b_v0.6.3")
    assert s.name == "vmaf_b_v0.6.3" and s.bootstrap is not None and v061_family(s)
    assert s.heads == tuple(f"head_{k:02d}" for k in range(21))
    assert s.log_columns == tuple(f"vmaf_b_v0.6.3_{k:02d}" for k in range(21))
    opts = s.model_option().split("|")
    assert len(opts) == 21 and all(o.endswith(f"\\:name=vmaf_b_v0.6.3_{k:02d}") for k, o in enumerate(opts))
    files = [Path(o.split("\\:")[0].removeprefix("path=")) for o in opts]
    assert all(json.loads(f.read_text())["model_dict"]["model_type"] == "LIBSVMNUSVR" for f in files)
    x = np.array([[0.95, 0.6, 0.85, 0.92, 0.95, 4.0], [0.5, 0.1, 0.3, 0.4, 0.5, 30.0]])
    np.testing.assert_array_equal(s.predict(x), np.clip(s.components(x)[:, 0], 0, 100))  # the score is key 0's
    logged = s.logged(x)
    assert logged.shape == (2, 21) and logged.min() >= 0 and logged.max() <= 100
    with pytest.raises(ValueError, match="named after it"):
        s.model_option("other")


def test_each_component_equals_libvmaf_on_demo_content(tmp_path: Path) -> None:
    """The demo corpus' kind of content (synthetic sources, x264 rungs), through the extract stage's own path."""
    from tinyvmaf.config.schema import ExtractConfig
    from tinyvmaf.extract.pair import make_pair, pair_features
    from tinyvmaf.teacher.spec import load_spec

    from servers import render_corpus

    corpus = render_corpus(tmp_path / "data", sources=("mandelbrot",), hrcs=("x264_crf38",), frames=12)
    ref = next((corpus / "ref").iterdir())
    dist = next((corpus / "dist").iterdir())
    cfg = ExtractConfig(teachers=["vmaf_b_v0.6.3"], frame_policy="error", workers=1, ffmpeg=None,
                        cache_dir=str(tmp_path / "cache"))  # fmt: skip
    frames = pair_features(make_pair(ref, dist), cfg)["frames"]
    s = load_spec("vmaf_b_v0.6.3")
    x = np.array([[f[k] for k in s.keys] for f in frames])
    logged = np.array([[f[c] for c in s.log_columns] for f in frames])
    ratio = np.abs(s.logged(x) - logged) / rounding_bound(s.logged, x)
    assert len(frames) == 12 and ratio.max() <= 1.0, ratio.max()
    assert [f["vmaf_b_v0.6.3"] for f in frames] == [f["vmaf_b_v0.6.3_00"] for f in frames]  # the score column
