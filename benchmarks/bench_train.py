"""Row 4: training — Lightning against a bare PyTorch loop over the same tensors, model, batch size and work.

Both sides run the same ``LitStudent.loss`` on the same ``TrainBatches``
(one fancy-index per batch of the in-memory tensors), the same AdamW and
one-cycle schedule, and the same validation every epoch; the Lightning side
is ``Trainer.fit`` as the train stage runs it (checkpointing included).
Target ≥ 0.8× (bare time / Lightning time).  ``--full`` adds the epoch time
as the training set grows from 1e4 to 2e6 rows (linear: the slope is
reported), the peak memory of a training process at 2e6 rows, and the
three-arch sweep serially against ``hydra/launcher=joblib`` with two jobs.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import REPO, Row, side_by_side, timed_run

sys.path.insert(0, str(REPO / "tests"))


def setup(rows: int, epochs: int, arch: str = "mlp_64x3"):
    import torch

    from tinyvmaf.contract import FEATURES
    from tinyvmaf.sample.stage import make_samples

    from conftest import config
    from synth import synthetic_features

    torch.set_num_threads(1)
    labels = synthetic_features(n_contents=10, n_hrcs=4, n_frames=12, seed=3)
    labels["label"] = labels["vmaf_v0.6.1"]
    labels["mos100"] = np.nan
    labels["split"] = np.where(labels["content"] == "c00", "val", np.where(labels["content"] == "c01", "test", "train"))
    cfg = config(f"sample.count={rows}", "sample.val_count=20000", f"train.epochs={epochs}", f"arch={arch}",
                 "train.jobs=1")  # fmt: skip
    train = labels.loc[labels["split"] == "train", list(FEATURES)].to_numpy(np.float64)
    samples, _ = make_samples(train, cfg.sample, "vmaf_v0.6.1")
    return cfg, labels, samples


def bare(cfg, labels: pd.DataFrame, samples: pd.DataFrame) -> float:
    import torch

    from tinyvmaf.train.loop import build_datamodule, build_model
    from tinyvmaf.train.module import val_metrics

    torch.manual_seed(cfg.seed)
    dm = build_datamodule(cfg, labels, samples)
    dm.setup("fit")
    m = build_model(cfg)
    m.student.set_normalisation(dm.mean, dm.std)
    opt = torch.optim.AdamW(m.student.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    steps = cfg.train.epochs * len(dm.train_dataloader())
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.train.lr, total_steps=steps, pct_start=0.15)
    val = dm.splits["val"]
    t0 = time.perf_counter()
    for _ in range(cfg.train.epochs):
        m.train()
        for batch in dm.train_dataloader():
            opt.zero_grad(set_to_none=True)
            loss = m.loss(batch)
            loss.backward()
            opt.step()
            sched.step()
        m.eval()
        with torch.no_grad():
            raw = m.student.forward_unclipped(val.x)
        val_metrics(raw, val.y, val.n_frames, m.hparams)
    return time.perf_counter() - t0


def lightning(cfg, labels: pd.DataFrame, samples: pd.DataFrame) -> float:
    from tinyvmaf.train.loop import fit_one

    with tempfile.TemporaryDirectory() as d:
        return fit_one(cfg, labels, samples, workdir=d, progress=False).fit_seconds


def training_rows(*, full: bool) -> list[Row]:
    cfg, labels, samples = setup(200_000, 8)
    res = side_by_side(lambda: lightning(cfg, labels, samples), lambda: bare(cfg, labels, samples), 5)
    rows = [Row("training, 2e5 rows, 64x3, batch 1024", "bare loop time / Lightning Trainer.fit time",
                res["ratio"], ">= 0.8", res["ratio"] >= 0.8, res)]  # fmt: skip
    if not full:
        return rows
    sizes = [10_000, 100_000, 500_000, 1_000_000, 2_000_000]
    per_epoch = []
    for n in sizes:
        c, lab, s = setup(n, 2)
        per_epoch.append(statistics.median([lightning(c, lab, s) / 2 for _ in range(2)]))
    slope, intercept = np.polyfit(sizes, per_epoch, 1)
    fit = np.polyval([slope, intercept], sizes)
    r2 = 1 - float(np.sum((np.asarray(per_epoch) - fit) ** 2) / np.sum((per_epoch - np.mean(per_epoch)) ** 2))
    rows.append(
        Row(
            "epoch time vs rows (1e4..2e6)",
            "seconds per million rows (slope; R² beside it)",
            slope * 1e6,
            "report",
            None,
            {"rows": sizes, "epoch_s": [round(t, 3) for t in per_epoch], "r2": round(r2, 5)},
        )
    )
    rows.append(peak_memory_row())
    rows.append(sweep_row())
    return rows  # fmt: skip


def peak_memory_row() -> Row:
    code = (
        "import sys; sys.path.insert(0, 'benchmarks'); import bench_train as b; "
        "c, l, s = b.setup(2_000_000, 1); print(b.lightning(c, l, s))"
    )
    seconds, rss = timed_run([sys.executable, "-c", code], cwd=REPO)
    return Row("training peak memory, 2e6 rows", "MiB (whole process: data, sample, model)", rss / 1024,
               "report", None, {"seconds": round(seconds, 1)})  # fmt: skip


def sweep_row() -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        cfg, labels, samples = setup(200_000, 3)
        root = Path(tmp)
        labels.to_parquet(root / "labels.parquet")
        samples.to_parquet(root / "samples.parquet")
        base = [sys.executable, str(REPO / "train.py"), "-m", "train.epochs=3", f"+labels={root / 'labels.parquet'}",
                f"+samples={root / 'samples.parquet'}", f"hydra.sweep.dir={root / 'multirun'}"]  # fmt: skip
        uri = {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
        res = side_by_side(
            lambda: timed_run([*base, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], cwd=root, extra_env=uri)[0],
            lambda: timed_run(base, cwd=root, extra_env=uri)[0],
            2,
            warmup=False,
        )
    return Row(
        "3-arch sweep: joblib (2 jobs) vs serial", "serial time / joblib time", res["ratio"], "report", None, res
    )
