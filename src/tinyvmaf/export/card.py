"""The model card and its figures: what the file is, where it came from, how good it is, next to its peers.

PNGs are written without a timestamp or software chunk, so the same model
gives the same bytes (the card and figures are DVC outputs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..common.atomic import atomic_path
from ..contract import FEATURES
from ..evaluate.measure import comparison_table
from ..evaluate.sets import EvalSet

_PNG_META = {"Software": None}
SET_TITLES = {
    "dense": "Held-out dense set (its own distribution and seed, not a training generator)",
    "dense_zero": "Held-out dense rows with speed_chroma_uv = 0 (libvmaf's chroma correction)",
    "test": "Test contents (frames of sources no training row came from)",
    "golden": "Netflix golden pairs (real 10-bit content, outside any corpus)",
}


@dataclass
class CardInputs:
    model_id: str
    path: Path
    n_bytes: int
    sha256: str
    metadata: dict[str, str]
    architecture: dict[str, Any]
    ops: list[str]
    opset: int
    ir_version: int
    winner: str
    val: dict[str, float]
    evaluation: dict[str, dict[str, dict[str, Any]]]  # {model: {set: figures}}
    loco: dict[str, Any] | None
    data_version: str
    figures: list[Path]
    order: tuple[str, ...] = FEATURES  # the input, as the sidecar names it
    clip: tuple[float, float] = (0.0, 100.0)
    exact_name: str = ""
    subjective: str = ""  # markdown (evaluate.subjective.markdown_table)
    interval: str = ""  # markdown (evaluate.interval.markdown_table): a bootstrap teacher's heads and statistics


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata=_PNG_META)
    plt.close(fig)
    return path


def write_figures(
    folder: Path, preds: dict[str, np.ndarray], sets: list[EvalSet], order: tuple[str, ...] = FEATURES
) -> list[Path]:
    """Student vs teacher (test), error against teacher score (every set), error against each feature (dense)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_name = {s.name: s for s in sets}
    paths = []

    test = by_name["test"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(test.y, preds["test"], s=4, alpha=0.5)
    ax.plot([0, 100], [0, 100], "k--", lw=1)
    ax.set(xlabel="teacher VMAF", ylabel="student VMAF (ONNX)")
    ax.set_title(f"test contents, {len(test)} frames")
    fig.tight_layout()
    paths.append(_save(fig, folder / "student_vs_teacher.png"))

    fig, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 4), sharey=True)
    for ax, s in zip(np.atleast_1d(axes), sets, strict=True):
        err = preds[s.name] - s.y
        ax.scatter(s.y, err, s=2 if len(s) > 5000 else 6, alpha=0.3 if len(s) > 5000 else 0.7, linewidths=0)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set(xlabel="teacher VMAF", title=f"{s.name} ({len(s)} rows)")
    np.atleast_1d(axes)[0].set_ylabel("student − teacher")
    fig.suptitle("error against teacher score")
    fig.tight_layout()
    paths.append(_save(fig, folder / "error_vs_teacher.png"))

    dense = by_name["dense"]
    err = preds["dense"] - dense.y
    ncol = 3 if len(order) > 4 else 2
    nrow = -(-len(order) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3.5 * nrow), sharey=True, squeeze=False)
    for ax, j, name in zip(axes.flat, range(len(order)), order, strict=False):
        ax.scatter(dense.x[:, j], err, s=2, alpha=0.3, linewidths=0)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xlabel(name)
    for ax in axes[:, 0]:
        ax.set_ylabel("student − teacher")
    fig.suptitle("error against each feature (held-out dense set)")
    fig.tight_layout()
    paths.append(_save(fig, folder / "error_vs_features.png"))
    return paths


def _val_table(val: dict[str, float]) -> list[str]:
    if not val:
        return ["(none recorded)"]
    rows = ["| metric | value |", "|---|---|"]
    return rows + [f"| {k} | {v:.6g} |" for k, v in val.items()]


def _loco_section(loco: dict[str, Any] | None, data_version: str) -> list[str]:
    if not loco:
        return ["Not computed for this data (`make loco` writes `loco/<teacher>.json`, then `dvc repro`)."]
    lines = []
    if loco.get("data_version") != data_version:
        lines += [
            f"**Stale:** computed on data version `{loco.get('data_version')}`, this model's is "
            f"`{data_version}`; rerun `make loco`.",
            "",
        ]
    lines += [
        f"Arch `{loco.get('arch')}` retrained once per held-out content with the same config "
        "(samples redrawn around the remaining contents' frames), evaluated on the held-out content's frames:",
        "",
        "| held-out content | frames | RMSE | max | p99 | PLCC | SROCC | within |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for content, f in loco.get("folds", {}).items():
        lines.append(
            f"| {content} | {f['n']} | {f['rmse']:.4f} | {f['max_abs']:.4f} | {f['p99_abs']:.4f} | "
            f"{f['plcc']:.6f} | {f['srocc']:.6f} | {100 * f['within']:.2f} % |"
        )
    w = loco.get("worst", {})
    if w:
        lines += ["", f"Worst fold: RMSE {w['rmse']:.4f}, max |error| {w['max_abs']:.4f}."]
    return lines


def render_card(c: CardInputs, card_path: Path) -> str:
    arch = c.architecture
    layers = " → ".join(str(n) for n in arch["layers"])
    lo, hi = c.clip
    card_dir = card_path.parent
    lines = [
        f"# Model card: `{c.model_id}`",
        "",
        f"File: `{c.path}` ({c.n_bytes} bytes, sha256 `{c.sha256}`), sidecar `{c.path.with_suffix('.json').name}`, "
        "registry entry in `registry.json`.",
        "",
        "## What it is",
        "",
        f"A tiny MLP distilled from the VMAF teacher `{c.metadata['teacher']}` (libvmaf's nu-SVR). "
        f"Input `features` float32 `[N, {len(c.order)}]`: raw libvmaf features in the order "
        f"`{', '.join(c.order)}`. Output `vmaf` float32 `[N]`: per-frame VMAF clipped to [{lo:g}, {hi:g}] "
        "(the teacher's own clip); pool a clip by the mean over frames. Standardisation is inside the graph "
        "(the sidecar says `onnx_has_scaler: true`)"
        + (
            "; so is libvmaf's chroma correction (a `speed_chroma_uv` of exactly 0 becomes 120·(1 − adm3))."
            if "chroma_correction" in c.metadata
            else "."
        ),
        "",
        f"- architecture: {layers} ({arch['activation']}), `{arch['name']}`, winner of the sweep",
        f"- parameters: {arch['n_parameters']}",
        f"- ONNX: opset {c.opset}, IR version {c.ir_version}, ops {', '.join(c.ops)}; dynamic batch",
        f"- data version (data.dvc md5): `{c.data_version}`",
        f"- checkpoint sha256: `{c.metadata['checkpoint_sha256']}`",
        "",
        "## Fidelity",
        "",
        "Frame-level figures of the exported file (ONNX Runtime) against the teacher, beside the teacher "
        f"itself exported exactly as an ONNX graph (`{c.exact_name}`: the reference row), the other swept "
        "archs and, for v0.6.1, the libvmaf fork's published tiny models, on the very same rows. `within` is "
        "the share of rows within ±0.5 VMAF points; `max pooled` the worst |pooled student − pooled teacher| "
        "over the pairs of the set; `params` the numbers each model holds (the exact graph's: support vectors, "
        "coefficients and the file's constants).",
        "",
    ]
    for set_name, title in SET_TITLES.items():
        if all(set_name in r for r in c.evaluation.values()):
            lines += [f"### {title}", "", *comparison_table(c.evaluation, set_name), ""]
    ours = c.evaluation.get(c.model_id, {})
    golden = ours.get("golden", {}).get("pooled", {})
    if golden:
        lines += [
            "Pooled per golden pair (this model):",
            "",
            "| pair | student | teacher | diff |",
            "|---|---|---|---|",
        ]
        lines += [f"| {k} | {v['student']:.4f} | {v['teacher']:.4f} | {v['diff']:+.4f} |" for k, v in golden.items()]
        lines.append("")
    if c.interval:
        lines += [
            "### Heads and the confidence interval (bootstrap)",
            "",
            "The graph outputs the raw component scores; libvmaf's score, bagging, stddev and 95% interval derive "
            "from them (sidecar `statistics`), for the model and for the teacher alike. Per set: the worst head's "
            "RMSE / max against its own component, and each statistic's RMSE / max against the teacher's.",
            "",
            c.interval,
            "",
        ]
    if c.subjective:
        lines += [
            "### Against subjective scores (the original design's secondary metric)",
            "",
            "Clip level (mean of frames) on the test contents, against the corpus' MOS/DMOS on the 0–100 scale; "
            "the teacher's own agreement is the ceiling a student can reach.",
            "",
            c.subjective,
            "",
        ]
    lines += [
        "### Leave-one-content-out",
        "",
        *_loco_section(c.loco, c.data_version),
        "",
        f"### Validation (epoch and arch selection; winner `{c.winner}`)",
        "",
        *_val_table(c.val),
        "",
        "## Plots",
        "",
    ]
    for p in c.figures:
        rel = p.relative_to(card_dir) if p.is_relative_to(card_dir) else p.resolve()
        lines += [f"![{p.stem}]({rel.as_posix()})", ""]
    lines += [
        "## Limits",
        "",
        f"- The student reproduces `{c.metadata['teacher']}` as a function of its features; it is exactly as "
        "good a quality metric as VMAF and no better. Features outside the trained box (the sidecar's "
        "`training_box`) are extrapolation.",
        *(
            ["- NEG: the same SVR scores `vmaf_v0.6.1neg` when fed features extracted with NEG's gain limits."]
            if c.metadata["teacher"] == "vmaf_v0.6.1"
            else []
        ),
        "",
    ]
    return "\n".join(lines)


def load_loco(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None
