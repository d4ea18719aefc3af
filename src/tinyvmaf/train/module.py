"""The Lightning wrapper that trains a :class:`~tinyvmaf.student.network.StudentMLP` against the teacher.

Loss: Huber (δ = ``train.huber_delta``) on the residual, per row, weighted
(sampled vectors by ``train.sample_weight``), optionally plus
``λ · Huber_δ(clip-mean(student), MOS on 0-100)`` over the real frames of
each pair present in the batch.

``train.loss: censored`` (the default) is the teacher's clip taken
seriously: the teacher reports 100 for anything its SVR puts at or above
100 (and 0 at or below 0), and the shipped graph clips too, so a student
that says 104 where the teacher says 100 is *right*.  The residual is
therefore one-sided at the bounds — only ``student < 100`` is an error
where the label is 100, only ``student > 0`` where it is 0 — and the
network spends no capacity bending towards a kink it never has to draw.
Measured (64x3, 20 epochs): dense-set RMSE 0.012 censored against 0.037
with the plain Huber loss on clipped labels.

The module keeps a per-epoch ``history`` (``epoch, val_plcc, val_srocc,
val_rmse, val_frames_rmse, val_dense_rmse, val_loss, train_loss``) that
MLflow, the DVC plots and the tests all read.  Val metrics are on the
*clipped* output (what ships) against the teacher, over the real val frames
and the dense validation vectors together; ``val_rmse`` picks the epoch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from ..common.metrics import pearson, rounded, spearman
from ..contract import TEACHER, VMAF_MAX, VMAF_MIN
from ..student.network import StudentMLP

METRICS = (
    "val_plcc",
    "val_srocc",
    "val_rmse",
    "val_frames_rmse",
    "val_dense_rmse",
    "val_loss",
    "train_loss",
)
#: The metric ModelCheckpoint monitors (minimised).
MONITOR = "val_rmse"


def residual(
    pred: torch.Tensor, target: torch.Tensor, loss: str, clip: tuple[float, float] = (VMAF_MIN, VMAF_MAX)
) -> torch.Tensor:
    """``pred − target``; under ``censored`` one-sided where the teacher sits at a clip bound (its file's)."""
    r = pred - target
    if loss == "censored":
        r = torch.where(target >= clip[1], torch.clamp(r, max=0.0), r)
        r = torch.where(target <= clip[0], torch.clamp(r, min=0.0), r)
    return r


def weighted_huber(r: torch.Tensor, w: torch.Tensor, delta: float) -> torch.Tensor:
    """Per-row Huber, weighted; a row of several heads counts the mean over its heads."""
    per_row = F.huber_loss(r, torch.zeros_like(r), delta=delta, reduction="none")
    if per_row.ndim == 2:
        per_row = per_row.mean(1)
    return (per_row * w).sum() / w.sum().clamp_min(1e-12)


class LitStudent(pl.LightningModule):
    """``self.student`` is the network that ships; everything else here is training machinery."""

    def __init__(
        self,
        *,
        width: int,
        depth: int,
        activation: str,
        dropout: float,
        arch: str,
        lr: float,
        weight_decay: float,
        huber_delta: float,
        loss: str,
        optimizer: str,
        scheduler: str,
        mos_lambda: float,
        seed: int,
        train: dict[str, Any],
        teacher: str = TEACHER,
    ) -> None:
        super().__init__()
        # width/depth/activation/dropout at the top level: the checkpoint contract load_student() reads.
        self.save_hyperparameters()
        # Manual optimisation: one zero_grad/backward/step/scheduler-step per batch, without the closure and
        # hook machinery of automatic optimisation, which costs more than a 6→64→64→64→1 step itself.
        self.automatic_optimization = False
        self.student = StudentMLP(
            int(width), int(depth), activation=str(activation), dropout=float(dropout), teacher=str(teacher)
        )
        self.mos_targets: torch.Tensor | None = None  # per train pair, 0-100; not saved (data, not model)
        self.val_frames = 0  # how many leading val rows are real frames (the rest dense vectors)
        self.history: list[dict[str, float]] = []
        self._train_sum = torch.zeros((), dtype=torch.float64)
        self._train_n = 0
        self._opt: Any = None
        self._sched: Any = None
        self._val_pred: list[torch.Tensor] = []
        self._val_y: list[torch.Tensor] = []

    @torch.no_grad()
    def init_output(self, label_mean: torch.Tensor | float, label_std: torch.Tensor | float) -> None:
        """Start the last layer at the labels' scale: bias = mean, weights × std.

        The hidden layers see normalised inputs and produce O(1) activations;
        the teacher's scores are O(50 ± 25).  Without this the first epochs
        only walk the output bias towards 50; with it, training starts on the shape.
        """
        last = self.student.linears()[-1]
        mean = torch.as_tensor(label_mean, dtype=torch.float64).reshape(-1)  # one per head
        std = torch.as_tensor(label_std, dtype=torch.float64).reshape(-1)
        if len(mean) == 1:  # one head: exactly the scalar arithmetic of before (same bits)
            last.weight.mul_(float(std[0]))
            last.bias.fill_(float(mean[0]))
        else:
            last.weight.mul_(std.float()[:, None])
            last.bias.copy_(mean.float())

    def set_mos_targets(self, mos100: torch.Tensor) -> None:
        """Per-pair MOS (0-100, NaN unknown) indexed by the datamodule's train ``group`` ids."""
        self.mos_targets = mos100.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(x)

    # --- training -----------------------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hp = self.hparams
        pred = self.student.forward_unclipped(batch["x"])
        clip = self.student.interface.output_clip
        out = weighted_huber(residual(pred, batch["y"], hp.loss, clip), batch["w"], hp.huber_delta)
        if hp.mos_lambda > 0 and self.mos_targets is not None:
            score = pred if pred.ndim == 1 else pred[:, 0]  # a bootstrap: key 0's head is the score
            out = out + hp.mos_lambda * self._mos_term(score, batch["group"])
        return out

    def _mos_term(self, pred: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        real = group >= 0
        target = torch.full_like(pred, float("nan"))
        target[real] = self.mos_targets.to(pred.device)[group[real]]
        known = torch.isfinite(target)
        if not bool(known.any()):
            return pred.new_zeros(())
        pairs, inv = torch.unique(group[known], return_inverse=True)
        sums = pred.new_zeros(len(pairs)).index_add(0, inv, pred[known])
        counts = pred.new_zeros(len(pairs)).index_add(0, inv, torch.ones_like(pred[known]))
        return F.huber_loss(sums / counts, self.mos_targets.to(pred.device)[pairs], delta=self.hparams.huber_delta)

    def on_train_start(self) -> None:
        # Looked up once: Lightning rebuilds these handles on every call.
        self._opt = self.optimizers()  # Lightning's wrapper: its step() advances trainer.global_step
        self._sched = self.lr_schedulers()

    def on_train_epoch_start(self) -> None:
        self._train_sum, self._train_n = torch.zeros((), dtype=torch.float64), 0

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self._opt.zero_grad(set_to_none=True)
        loss = self.loss(batch)
        self.manual_backward(loss)
        self._opt.step()
        if self._sched is not None:
            self._sched.step()
        n = int(batch["y"].shape[0])
        self._train_sum += loss.detach().double() * n
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
        rec = {
            "epoch": int(self.current_epoch),
            **val_metrics(raw, y, self.val_frames, self.hparams, self.student.interface.output_clip),
        }
        rec["train_loss"] = float(self._train_sum) / self._train_n if self._train_n else math.nan
        self.history.append(rec)
        for k in METRICS:
            self.log(k, rec[k], on_epoch=True, prog_bar=k == MONITOR)

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
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp.lr, total_steps=steps, pct_start=0.15)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def val_metrics(
    raw: torch.Tensor, y: torch.Tensor, n_frames: int, hp: Any, clip: tuple[float, float] = (VMAF_MIN, VMAF_MAX)
) -> dict[str, float]:
    """One epoch's val record: PLCC/SROCC/RMSE of the clipped output over all val rows, RMSE per part, loss.

    An undefined correlation (a collapsed, constant student) counts as 0 so
    that it loses every comparison instead of poisoning them with NaN.
    """
    pred = torch.clamp(raw, clip[0], clip[1]).double().numpy()
    target = y.double().numpy()
    err2 = (pred - target) ** 2  # a bootstrap's [N, heads]: the RMSEs run over every head
    score, want = (pred, target) if pred.ndim == 1 else (pred[:, 0], target[:, 0])
    plcc, srocc = pearson(score, want), spearman(score, want)

    def rms(a: np.ndarray) -> float:
        return float(np.sqrt(a.mean())) if a.size else math.nan

    r = residual(raw, y, hp.loss, clip)
    return rounded(
        {
            "val_plcc": plcc if math.isfinite(plcc) else 0.0,
            "val_srocc": srocc if math.isfinite(srocc) else 0.0,
            "val_rmse": rms(err2),
            "val_frames_rmse": rms(err2[:n_frames]),
            "val_dense_rmse": rms(err2[n_frames:]),
            "val_loss": float(F.huber_loss(r, torch.zeros_like(r), delta=hp.huber_delta)),
        },
        places=9,
    )
