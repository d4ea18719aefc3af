"""The kit: a small trained student with everything export, the gate, scoring and the model tools read.

* ``labels/vmaf_v0.6.1.parquet``: synthetic features scored by the real teacher
  (``synth``), 10 contents × 4 HRCs × 12 frames, content-level splits;
* ``golden.parquet`` / ``golden.json``: the golden stage run for real on
  Netflix's golden pairs (libvmaf through the extract path);
* ``models/vmaf_v0.6.1/best.ckpt``: a 32x2 hard-swish student (the default activation) trained here
  (a bare loop, one thread,
  ~20 s) on teacher-labelled samples drawn by the sample stage's own code,
  so that it passes the *default* gate thresholds — a gate test that passes
  only with loosened thresholds would prove little;
* the exported ONNX file, its sidecar and the teacher's exact graph (``model/``).

Built once per test session (``build_kit`` caches), whatever module asks.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from tinyvmaf.config import Config, compose_conf, validate
from tinyvmaf.contract import FEATURES

from synth import TEACHER, synthetic_features

REPO = Path(__file__).resolve().parents[1]
DATA_MD5 = "d41d8cd98f00b204e9800998ecf8427e.dir"
TEST_CONTENTS = ("c01", "c05", "c08")
VAL_CONTENTS = ("c03", "c09")
MODEL_ID = "vmaf_tiny_fr_v2_nflx"


def make_labels(path: Path) -> pd.DataFrame:
    df = synthetic_features(n_contents=10, n_hrcs=4, n_frames=12, seed=7, keys=False)
    df["label"] = df[TEACHER]
    df["mos100"] = np.nan
    df["split"] = np.where(
        df["content"].isin(TEST_CONTENTS), "test", np.where(df["content"].isin(VAL_CONTENTS), "val", "train")
    )
    df.to_parquet(path, index=False)
    return df


def train_student(
    samples: pd.DataFrame,
    *,
    width: int = 32,
    depth: int = 2,
    steps: int = 15000,
    seed: int = 0,
    activation: str = "hardswish",
):
    """A student (hard-swish by default) fitted to the samples: censored Huber, Adam one-cycle, one thread."""
    import torch

    from tinyvmaf.student.network import StudentMLP
    from tinyvmaf.train.module import residual

    x = torch.tensor(samples[list(FEATURES)].to_numpy(np.float32))
    y = torch.tensor(samples["label"].to_numpy(np.float32))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        student = StudentMLP(width, depth, activation=activation, dropout=0.0)
        student.set_normalisation(x.mean(0), x.std(0))
        with torch.no_grad():  # start at the labels' scale, as the real trainer does
            student.linears()[-1].weight.mul_(float(y.std()))
            student.linears()[-1].bias.fill_(float(y.mean()))
        opt = torch.optim.Adam(student.parameters(), lr=0.02)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.02, total_steps=steps, pct_start=0.15)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            idx = torch.randint(0, len(x), (1024,), generator=gen)
            opt.zero_grad()
            r = residual(student.forward_unclipped(x[idx]), y[idx], "censored")
            (0.5 * r * r).mean().backward()
            opt.step()
            sched.step()
    finally:
        torch.set_num_threads(before)
    return student.eval()


@dataclass(frozen=True)
class Kit:
    root: Path
    labels: Path
    golden_frames: Path
    golden_metrics: Path
    ckpt: Path
    train_json: Path
    onnx: Path

    @property
    def model_dir(self) -> Path:
        return self.onnx.parent

    def config(self, out: Path, *overrides: str, paths: dict[str, Path] | None = None) -> Config:
        """The project config with the kit's inputs, outputs under ``out``, and Hydra ``overrides``.

        One student, ``v061`` (the kit trained a v0.6.1 student); its inputs are the kit's files (the
        per-teacher folders point into the kit), its outputs (metrics, reports) land under ``out``.
        """
        paths = {
            **{
                "labels_dir": self.root / "labels",
                "models_dir": self.root / "models",
                "golden_frames": self.golden_frames,
                "golden_metrics": self.golden_metrics,
                "model_dir": self.model_dir,
                "registry": self.model_dir / "registry.json",
                "peers_dir": REPO / "assets" / "peers",
                "golden_dir": REPO / "assets" / "golden",
                "metrics_dir": out / "metrics",
                "reports_dir": out / "reports",
                "plots_dir": out / "plots",
                "loco_dir": out / "loco",
                "data_dvc": self.root / "data.dvc",
            },
            **(paths or {}),
        }
        train_json = Path(paths["metrics_dir"]) / TEACHER / "train.json"
        if not train_json.is_file():
            train_json.parent.mkdir(parents=True, exist_ok=True)
            train_json.write_bytes(self.train_json.read_bytes())
        others = [f"~students.{k}" for k in OmegaConf.load(REPO / "conf" / "config.yaml").students if k != "v061"]
        cfg = compose_conf(REPO / "conf", [f"paths.{k}={v}" for k, v in paths.items()] + others + list(overrides))
        return validate(cfg)

    def params(self, out: Path, *overrides: str, paths: dict[str, Path] | None = None) -> Path:
        """:meth:`config` written as ``out/params.yaml`` (what the CLI reads)."""
        out.mkdir(parents=True, exist_ok=True)
        path = out / "params.yaml"
        path.write_text(OmegaConf.to_yaml(OmegaConf.structured(self.config(out, *overrides, paths=paths))))
        return path


_KIT: Kit | None = None


def build_kit(root: Path) -> Kit:
    """Labels, golden frames, a trained checkpoint, train.json, and the exported model (once)."""
    global _KIT
    if _KIT is not None:
        return _KIT
    from tinyvmaf.export.stage import ExportPaths, evaluate_model, export_model
    from tinyvmaf.golden.stage import run_golden, write_outputs
    from tinyvmaf.model.sidecar import registry_entry, upsert_registry
    from tinyvmaf.sample.stage import make_samples
    from tinyvmaf.student.checkpoint import save_student

    root.mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    labels = make_labels(root / "labels" / f"{TEACHER}.parquet")
    base = validate(compose_conf(REPO / "conf"))
    report, table = run_golden(
        REPO / "assets" / "golden", dataclasses.replace(base.golden, sets=["netflix"]), teachers=[TEACHER], ffmpeg=None
    )
    assert report.passed, report.as_dict()
    golden_frames, golden_metrics = root / "golden.parquet", root / "golden.json"
    write_outputs(report, table, frames_out=golden_frames, metrics_out=golden_metrics, report_out=root / "golden.md")
    train = labels.loc[labels["split"] == "train", list(FEATURES)].to_numpy(np.float64)
    samples, _ = make_samples(train, dataclasses.replace(base.sample, count=300_000, val_count=0), TEACHER)
    ckpt = save_student(train_student(samples), root / "models" / TEACHER / "best.ckpt", arch="mlp_32x2")
    train_json = root / "train.json"
    val = {"val_plcc": 0.99999, "val_srocc": 0.99998, "val_rmse": 0.03}
    train_json.write_text(json.dumps({"winner": "mlp_32x2", **val, "archs": {"mlp_32x2": {"width": 32, **val}}}))
    (root / "data.dvc").write_text(f"outs:\n- md5: {DATA_MD5}\n  size: 1234\n  nfiles: 5\n  path: data\n")
    kit = Kit(
        root,
        root / "labels" / f"{TEACHER}.parquet",
        golden_frames,
        golden_metrics,
        ckpt,
        train_json,
        root / "model" / f"{MODEL_ID}.onnx",
    )
    cfg = kit.config(root / "export")
    export_model(cfg, ExportPaths.from_params(cfg))
    evaluate_model(cfg, ExportPaths.from_params(cfg))  # the eval stage: eval.json, figures, model card
    # What the registry stage would write from a passing gate (the kit's gate tests gate it themselves).
    for onnx_path in (kit.onnx, kit.model_dir / f"{cfg.student().config.exact}.onnx"):
        sidecar = json.loads(onnx_path.with_suffix(".json").read_text())
        upsert_registry(kit.model_dir / "registry.json", registry_entry(sidecar, license_url="-", description="kit"))
    _KIT = kit
    return kit
