"""Train students with Hydra: ``python train.py`` (one arch) or ``python train.py -m`` (the arch sweep).

    python train.py                                    # the default arch (conf/config.yaml)
    python train.py arch=mlp_32x2 train.lr=0.01        # any override
    python train.py -m                                 # all archs in hydra.sweeper.params
    python train.py -m arch=mlp_32x2,mlp_64x3          # your own list
    python train.py -m hydra/launcher=joblib           # the same sweep, jobs in parallel processes
    python train.py +labels=path/to/labels.parquet     # other inputs (default: the student's labels and samples)
    python train.py +student=v1016_3d0h                # another configured student (default: the first)

Each job is :func:`tinyvmaf.train.loop.run_sweep` over one arch, the code the
DVC ``train`` stage runs.  In a multirun the Hydra callback
(:class:`tinyvmaf.train.tracking.MlflowSweepCallback`) opens one MLflow
parent run and every job logs a child run under it; without ``-m`` the job
is a top-level run.  Checkpoints, the val scatter plot and the resolved
config land in the job's Hydra output folder (and in MLflow).  The DVC
pipeline does not use this script: it reads params.yaml so ``dvc exp run -S``
works.
"""

from __future__ import annotations

from tinyvmaf.common.cpu import pin_process

pin_process()  # before numpy/torch load: the same bytes on any x86-64 CPU (tinyvmaf.common.cpu)

import logging  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

log = logging.getLogger("train")


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> float:
    """One job: train ``cfg.arch``; returns its val PLCC (what a Hydra optimisation sweeper maximises)."""
    from hydra.core.hydra_config import HydraConfig

    from tinyvmaf.config.params import validate, without_run_options
    from tinyvmaf.train.loop import run_sweep
    from tinyvmaf.train.tracking import PARENT_ENV

    task, options = without_run_options(cfg)  # +labels/+samples say where the inputs are; they are not config
    params = validate(task, source="conf/")
    student = params.student(options.get("student"))  # +student=v1016_3d0h (default: the first configured)
    labels = Path(options.get("labels") or student.paths.labels)
    samples = Path(options.get("samples") or student.paths.samples)
    workdir = Path(HydraConfig.get().runtime.output_dir)
    for path in (labels, samples):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: missing (run `dvc repro sample@{student.key}`, or pass +labels=PATH +samples=PATH)"
            )
    result = run_sweep(
        params,
        [params.arch],
        labels,
        samples,
        workdir=workdir,
        jobs=1,
        parent_run_id=os.environ.get(PARENT_ENV) or None,
        create_parent=False,
        teacher=student.teacher,
    )
    best = result.winner
    log.info(
        "%s: val RMSE %.4f PLCC %.6f SROCC %.6f at epoch %d -> %s",
        best.arch,
        best.val["val_rmse"],
        best.val["val_plcc"],
        best.val["val_srocc"],
        best.best_epoch,
        best.ckpt_path,
    )
    return float(best.val["val_plcc"])


if __name__ == "__main__":
    main()
