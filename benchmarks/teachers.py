"""The v1.0.16 family: one network per variant, or one trunk with a graph tail per variant?  And what
every shipped model costs beside its teacher's exact graph.

``python benchmarks/teachers.py`` (after ``dvc repro``: it reads ``samples/vmaf_v1.0.16_3d0h.parquet``,
``labels/vmaf_v1.0.16_3d0h.parquet`` and ``model/tiny``) writes ``benchmarks/teachers.md``.

**Trunk or per variant.**  The eight ``vmaf_v1.0.16*`` files hold one SVR; a variant differs in its
feature options (so its feature *values*), its polynomial ``score_transform`` and its clip.  Two
designs are trained here the same way (64x3 hard-swish, the same 1.5 M samples, a bare Adam
one-cycle loop, one thread, the same seed and steps), chroma correction in front of both:

per variant  the network learns the variant's final score (transform and clip included), as the
             pipeline's student does; another variant needs another network;
trunk        the network learns the SVR's denormalised output *before* the transform (unclipped),
             and each variant's graph adds its own transform and clip (exact: they are the file's
             numbers); one trained network serves every variant.

Both are measured on the 3d0h student's held-out dense set (:func:`tinyvmaf.evaluate.sets.student_sets`),
and the trunk also through the tails of variants with other transforms and clips (on the same
feature vectors, which those variants' extractors would log differently, but the SVR is the same
function of them).

**Sizes and speeds.**  Every model in ``model/tiny`` under ONNX Runtime, one thread, batch 4096 rows,
median of 7 runs, as a ratio to its teacher's exact graph measured in the same loop.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
TEACHER = "vmaf_v1.0.16_3d0h"
OTHERS = ("vmaf_v1.0.16_1d5h_2160", "vmaf_v1.0.16_3d0h_2160")
STEPS = 15000
BATCH = 1024


def train(x: np.ndarray, y: np.ndarray, *, censored: bool, seed: int = 0) -> torch.nn.Module:
    """A 64x3 student of the 3d0h interface fitted to ``y``: the pipeline's censored Huber for the final score
    (no penalty beyond the clip the teacher sits at), plain Huber for the trunk (nothing is clipped)."""
    from tinyvmaf.student.network import StudentMLP
    from tinyvmaf.train.module import residual

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    net = StudentMLP(64, 3, activation="hardswish", dropout=0.0, teacher=TEACHER)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    xc = net.correct(xt).double()
    net.set_normalisation(xc.mean(0).float(), xc.std(0).float())
    with torch.no_grad():
        net.linears()[-1].weight.mul_(float(yt.std()))
        net.linears()[-1].bias.fill_(float(yt.mean()))
    opt = torch.optim.AdamW(net.parameters(), lr=0.02, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.02, total_steps=STEPS, pct_start=0.15)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(STEPS):
        idx = torch.randint(0, len(xt), (BATCH,), generator=gen)
        opt.zero_grad()
        pred = net.forward_unclipped(xt[idx])
        r = residual(pred, yt[idx], "censored", net.clip) if censored else pred - yt[idx]
        torch.nn.functional.huber_loss(r, torch.zeros_like(r), delta=5.0).backward()
        opt.step()
        sched.step()
    return net.eval()


def tail(raw: np.ndarray, teacher: str) -> np.ndarray:
    """A variant's transform and clip (from its file) on the trunk's raw output."""
    from tinyvmaf.teacher.spec import load_spec

    spec = load_spec(teacher)
    out = spec.transform.apply(raw) if spec.transform_enabled else raw
    lo, hi = spec.clip
    return np.clip(out, lo, hi)


def figures(pred: np.ndarray, y: np.ndarray) -> str:
    err = np.abs(pred - y)
    return f"{np.sqrt(np.mean(err**2)):.4f} / {err.max():.3f}"


def trunk_or_variant() -> list[str]:
    from tinyvmaf.config import load_params
    from tinyvmaf.evaluate.sets import student_sets
    from tinyvmaf.teacher.spec import load_spec

    spec = load_spec(TEACHER)
    samples = pd.read_parquet(ROOT / "samples" / f"{TEACHER}.parquet")
    train_rows = samples[samples["split"] == "train"]
    x = train_rows[list(spec.order)].to_numpy(np.float64)
    params = load_params(ROOT / "params.yaml")
    dense = next(s for s in student_sets(params, params.student("v1016_3d0h")) if s.name == "dense")
    xd = torch.tensor(dense.x, dtype=torch.float32)
    rows = []
    t0 = time.perf_counter()
    per_variant = train(x, train_rows["label"].to_numpy(np.float64), censored=True)
    t_variant = time.perf_counter() - t0
    with torch.no_grad():
        pv = per_variant(xd).double().numpy()
    raw_target = spec.teacher.predict(x, order=spec.order, transform=False, clip=False)
    t0 = time.perf_counter()
    trunk = train(x, raw_target, censored=False)
    t_trunk = time.perf_counter() - t0
    with torch.no_grad():
        raw = trunk.forward_unclipped(xd).double().numpy()
    rows.append(f"| per variant (3d0h's own network) | {TEACHER} | {figures(pv, dense.y)} | {t_variant:.0f} s |")
    rows.append(f"| trunk + 3d0h tail | {TEACHER} | {figures(tail(raw, TEACHER), dense.y)} | {t_trunk:.0f} s |")
    xd64 = dense.x.astype(np.float64)
    for other in OTHERS:
        o = load_spec(other)
        y = o.predict(xd64)
        short = other.removeprefix("vmaf_v1.0.16_")
        rows.append(f"| trunk + {short} tail | {other} | {figures(tail(raw, other), y)} | — |")
        rows.append(f"| per variant, 3d0h's network (wrong variant) | {other} | {figures(pv, y)} | — |")
    return rows


def speeds() -> list[str]:
    from tinyvmaf.model.runtime import ort_session

    registry = json.loads((ROOT / "model" / "tiny" / "registry.json").read_text())["models"]
    by_teacher: dict[str, list[dict]] = {}
    for m in registry:
        by_teacher.setdefault(m["teacher"], []).append(m)
    rows = []
    rng = np.random.default_rng(0)
    for teacher, models in by_teacher.items():
        sessions = {}
        for m in models:
            path = ROOT / "model" / "tiny" / m["onnx"]
            side = json.loads(path.with_suffix(".json").read_text())
            sessions[m["id"]] = (ort_session(path.read_bytes()), side)
        n_features = len(next(iter(sessions.values()))[1]["features"])
        x = rng.uniform(0.1, 1.0, (4096, n_features)).astype(np.float32)
        times: dict[str, list[float]] = {k: [] for k in sessions}
        for _ in range(7):
            for k, (s, _side) in sessions.items():
                t0 = time.perf_counter()
                s.run(None, {"features": x})
                times[k].append(time.perf_counter() - t0)
        exact = next(k for k, (_s, side) in sessions.items() if side.get("exact"))
        base = statistics.median(times[exact])
        for k, (_s, side) in sessions.items():
            t = statistics.median(times[k])
            params = side["architecture"].get("n_parameters", "—")
            rows.append(f"| {k} | {teacher} | {params:,} | {4096 / t / 1e3:.0f} k | {base / t:.2f} |")
    return rows


def main() -> None:
    lines = [
        "# The v1.0.16 family: trunk or per variant; sizes and speeds",
        "",
        "Written by `python benchmarks/teachers.py` (see its docstring for the method). Machine: this",
        "project's 2-core box; every figure below from one run.",
        "",
        "## One trunk with a tail per variant, or one network per variant",
        "",
        "Dense-set RMSE / max |error| against each variant's float64 teacher (the 3d0h student's held-out",
        "dense set, 100,000 rows), 64x3 hard-swish, 15,000 steps of 1,024 rows, one thread.",
        "",
        "| design | measured against | RMSE / max | training |",
        "|---|---|---|---|",
        *trunk_or_variant(),
        "",
        "## Sizes and speeds",
        "",
        "ONNX Runtime 1 thread, batch 4,096, median of 7; ratio = the exact graph's time / the model's.",
        "",
        "| model | teacher | parameters | rows/s | × exact graph |",
        "|---|---|---|---|---|",
        *speeds(),
        "",
    ]
    out = Path(__file__).with_name("teachers.md")
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
