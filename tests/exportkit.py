"""Fixtures for the export/gate/score tests: a small trained student, its labels, its ONNX file.

The labels are synthetic features scored by the real teacher (``synth``);
the student is trained here for a second or so, full batch, one thread, so
that it is good enough to pass the default fidelity thresholds — a gate test
that passes only with loosened thresholds would prove little.  The
checkpoint follows the contract of ``tinyvmaf.student.load_student``.
Built once per test session (``build_kit`` caches), whatever module asks.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from synth import TEACHER, synthetic_features

from tinyvmaf.libvmaf import FEATURES

REPO = Path(__file__).resolve().parents[1]
GIT_COMMIT = "0123456789abcdef0123456789abcdef01234567"
DATA_MD5 = "d41d8cd98f00b204e9800998ecf8427e.dir"
TEST_CONTENTS = ("c01", "c05", "c08")
VAL_CONTENTS = ("c03", "c09")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads, restoring the previous count (other tests share the process)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_labels(path: Path) -> pd.DataFrame:
    """A labels.parquet-shaped table: 10 contents × 4 HRCs × 12 frames, content-level splits."""
    df = synthetic_features(n_contents=10, n_hrcs=4, n_frames=12, seed=7)
    df["label"] = df[TEACHER]
    df["split"] = np.where(
        df["content"].isin(TEST_CONTENTS), "test", np.where(df["content"].isin(VAL_CONTENTS), "val", "train")
    )
    df.to_parquet(path, index=False)
    return df


def train_student(df: pd.DataFrame, width: int = 32, depth: int = 2, seed: int = 0, steps: int = 500):
    """A StudentMLP fitted to the train split (Adam, full batch, MSE), eval mode."""
    import torch

    from tinyvmaf.student import StudentMLP

    train = df[df["split"] == "train"]
    x = torch.tensor(train[list(FEATURES)].to_numpy(np.float32))
    y = torch.tensor(train["label"].to_numpy(np.float32))
    with torch_threads(1):
        torch.manual_seed(seed)
        student = StudentMLP(width, depth, dropout=0.0)
        student.set_normalisation(x.mean(0), x.std(0))
        with torch.no_grad():  # start at the labels' scale, as the real trainer does
            student.net[-1].weight.mul_(float(y.std()))
            student.net[-1].bias.fill_(float(y.mean()))
        opt = torch.optim.Adam(student.parameters(), lr=1e-2)
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(student.forward_unclipped(x), y)
            loss.backward()
            opt.step()
    return student.eval()


def save_ckpt(student, path: Path, arch: str = "mlp_32x2") -> Path:
    """The checkpoint contract: ``hyper_parameters`` (width, depth, dropout, arch), ``student.``-prefixed state."""
    import torch

    hp = {"width": student.width, "depth": student.depth, "dropout": student.dropout, "arch": arch}
    state = {f"student.{k}": v.clone() for k, v in student.state_dict().items()}
    torch.save({"hyper_parameters": hp, "state_dict": state}, path)
    return path


def write_params(path: Path, **sections: dict) -> Path:
    """The repo's params.yaml with some keys of some sections replaced."""
    params = OmegaConf.load(REPO / "params.yaml")
    for section, values in sections.items():
        for key, value in values.items():
            OmegaConf.update(params, f"{section}.{key}", value, merge=False)
    path.write_text(OmegaConf.to_yaml(params))
    return path


@dataclass(frozen=True)
class Kit:
    root: Path
    labels: Path
    ckpt: Path
    train_json: Path
    data_dvc: Path
    onnx: Path
    card: Path
    figures: Path

    def export_config(self, **overrides):
        from tinyvmaf.export import ExportConfig

        kw = {
            "ckpt": self.ckpt,
            "labels": self.labels,
            "train_metrics": self.train_json,
            "out": self.onnx,
            "model_card": self.card,
            "figures": self.figures,
            "data_dvc": self.data_dvc,
            "git_commit": GIT_COMMIT,
        }
        kw.update(overrides)
        return ExportConfig(**kw)

    def params(self, path: Path, *, gate: dict | None = None, **sections: dict) -> Path:
        """A params.yaml pointing the gate at this kit (outputs under ``path``'s folder)."""
        out = path.parent
        g = {
            "model": str(self.onnx),
            "ckpt": str(self.ckpt),
            "labels": str(self.labels),
            "out": str(out / "gate.json"),
            "report": str(out / "gate.md"),
            "golden_sets": ["project"],
        }
        g.update(gate or {})
        return write_params(path, gate=g, **sections)


_KIT: Kit | None = None


def build_kit(root: Path) -> Kit:
    """Labels, a trained checkpoint, train.json, a data.dvc, and the exported ONNX + card (once)."""
    global _KIT
    if _KIT is not None:
        return _KIT
    from tinyvmaf.export import export_model

    root.mkdir(parents=True, exist_ok=True)
    labels = root / "labels.parquet"
    df = make_labels(labels)
    ckpt = save_ckpt(train_student(df), root / "best.ckpt")
    train_json = root / "train.json"
    val = {"val_plcc": 0.9991, "val_srocc": 0.9987, "val_rmse": 0.81}
    train_json.write_text(json.dumps({"winner": "mlp_32x2", **val, "archs": {"mlp_32x2": {"width": 32, **val}}}))
    data_dvc = root / "data.dvc"
    data_dvc.write_text(f"outs:\n- md5: {DATA_MD5}\n  size: 1234\n  nfiles: 5\n  path: data\n")
    kit = Kit(
        root,
        labels,
        ckpt,
        train_json,
        data_dvc,
        root / "model" / "vmaf_tiny_fr_v2_nflx.onnx",
        root / "reports" / "model_card.md",
        root / "reports" / "figures",
    )
    export_model(kit.export_config())
    _KIT = kit
    return kit
