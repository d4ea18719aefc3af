"""The Lightning wrapper that trains a :class:`~tinyvmaf.student.StudentMLP` against the teacher.

Loss: ``Huber_δ(student, teacher)`` per frame (δ = 5 VMAF points: quadratic
for the usual sub-point errors, linear for the rare outliers — scene cuts,
the first frame's zero motion — so they cannot dominate), plus optionally
``λ · Huber_δ(clip-mean(student), MOS on 0-100)``.  The clip mean is taken
over the pair's frames present in the batch: batches are random frames, so
that is an unbiased estimate of the pair's mean, and it needs no second
data path.

The module keeps a per-epoch ``history`` (``epoch, val_plcc, val_srocc,
val_rmse, val_loss, train_loss``) that the MLflow callback, the DVC plots
and the tests all read, so every consumer sees the same numbers.  Val
metrics are frame-level, on the *clipped* output (what ships), against the
teacher.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from .metrics import pearson, spearman
from .student import StudentMLP

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "onecycle", "none")
METRICS = ("val_plcc", "val_srocc", "val_rmse", "val_loss", "train_loss")


def regression_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Frame-level PLCC, SROCC and RMSE; an undefined correlation (constant output) counts as 0.

    0 rather than NaN: checkpointing and the sweep compare these numbers, and
    a collapsed student must lose to any real one.
    """
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    rmse = float(np.sqrt(np.mean((pred - target) ** 2)))
    plcc, srocc = pearson(pred, target), spearman(pred, target)
    return {
        "plcc": plcc if math.isfinite(plcc) else 0.0,
        "srocc": srocc if math.isfinite(srocc) else 0.0,
        "rmse": rmse,
    }


class LitStudent(pl.LightningModule):
    """``self.student`` is the network that ships; everything else here is training machinery."""

    def __init__(
        self,
        width: int,
        depth: int,
        dropout: float = 0.1,
        *,
        arch: str = "",
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        huber_delta: float = 5.0,
        optimizer: str = "adamw",
        scheduler: str = "cosine",
        mos_lambda: float = 0.0,
        seed: int = 0,
        train: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"train.optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        if scheduler not in SCHEDULERS:
            raise ValueError(f"train.scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
        if huber_delta <= 0 or lr <= 0 or weight_decay < 0 or mos_lambda < 0:
            raise ValueError("need huber_delta > 0, lr > 0, weight_decay >= 0, mos_lambda >= 0")
        # width/depth/dropout at the top level: the checkpoint contract load_student() reads.
        self.save_hyperparameters()
        self.student = StudentMLP(int(width), int(depth), float(dropout))
        self.mos_targets: torch.Tensor | None = None  # per train pair, 0-100; not saved (data, not model)
        self.history: list[dict[str, float]] = []
        self._train_sum = 0.0
        self._train_n = 0
        self._val_pred: list[torch.Tensor] = []
        self._val_y: list[torch.Tensor] = []

    @torch.no_grad()
    def init_output(self, label_mean: float, label_std: float) -> None:
        """Start the last layer at the train labels' scale: bias = mean, weights × std.

        The hidden layers see normalised inputs and produce O(1) activations;
        the teacher's scores are O(50 ± 25).  Without this the first epochs
        only walk the output bias towards 50, at most δ of gradient per step
        under the Huber loss; with it, training starts on the shape.
        """
        last = self.student.net[-1]
        last.weight.mul_(float(label_std))
        last.bias.fill_(float(label_mean))

    def set_mos_targets(self, mos100: torch.Tensor) -> None:
        """Per-pair MOS (0-100, NaN unknown) indexed by the datamodule's train ``group`` ids."""
        self.mos_targets = mos100.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(x)

    # --- training -----------------------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hp = self.hparams
        pred = self.student.forward_unclipped(batch["x"])
        loss = F.huber_loss(pred, batch["y"], delta=hp.huber_delta)
        if hp.mos_lambda > 0 and self.mos_targets is not None:
            loss = loss + hp.mos_lambda * self._mos_term(pred, batch["group"])
        return loss

    def _mos_term(self, pred: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        target = self.mos_targets.to(pred.device)[group]
        known = torch.isfinite(target)
        if not bool(known.any()):
            return pred.new_zeros(())
        pairs, inv = torch.unique(group[known], return_inverse=True)
        sums = pred.new_zeros(len(pairs)).index_add(0, inv, pred[known])
        counts = pred.new_zeros(len(pairs)).index_add(0, inv, torch.ones_like(pred[known]))
        return F.huber_loss(sums / counts, self.mos_targets.to(pred.device)[pairs], delta=self.hparams.huber_delta)

    def on_train_epoch_start(self) -> None:
        self._train_sum, self._train_n = 0.0, 0

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        n = int(batch["y"].shape[0])
        self._train_sum += float(loss.detach()) * n
        self._train_n += n
        return loss

    # --- validation -----------------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_pred, self._val_y = [], []

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._val_pred.append(self.student.forward_unclipped(batch["x"]).detach())
        self._val_y.append(batch["y"])

    def on_validation_epoch_end(self) -> None:
        """Close the epoch's record; validation runs after the epoch's last training step, so both are known."""
        if self.trainer.sanity_checking or not self._val_pred:
            return
        raw = torch.cat(self._val_pred)
        y = torch.cat(self._val_y)
        m = regression_metrics(torch.clamp(raw, 0.0, 100.0).numpy(), y.numpy())
        rec = {
            "epoch": int(self.current_epoch),
            "val_plcc": m["plcc"],
            "val_srocc": m["srocc"],
            "val_rmse": m["rmse"],
            "val_loss": float(F.huber_loss(raw, y, delta=self.hparams.huber_delta)),
            "train_loss": self._train_sum / self._train_n if self._train_n else math.nan,
        }
        self.history.append(rec)
        for k in METRICS:
            self.log(k, rec[k], on_epoch=True, prog_bar=k == "val_plcc")

    # --- optimisation ---------------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        params = self.student.parameters()
        if hp.optimizer == "adamw":
            opt = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
        elif hp.optimizer == "adam":  # L2 through the gradient (coupled), the textbook form
            opt = torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=hp.lr, momentum=0.9, nesterov=True, weight_decay=hp.weight_decay)
        if hp.scheduler == "none":
            return opt
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        if hp.scheduler == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=hp.lr * 0.01)
        else:
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp.lr, total_steps=steps, pct_start=0.2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
