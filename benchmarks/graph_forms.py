"""Graph forms of the student's dense layers: fidelity, cross-backend parity, speed (``benchmarks/graph_forms.md``).

Run in a project where ``dvc repro sample golden`` has run (``labels.parquet``,
``golden.parquet``), with trained checkpoints of one arch::

    python benchmarks/graph_forms.py --ckpt hardswish=models_hardswish/best.ckpt \\
        --ckpt silu=models_silu/best.ckpt --out graph_forms.json

For every checkpoint and every form of :data:`FORMS` it builds the ONNX graph
(same weights, same activation ops) and measures

* dense, test and golden RMSE against the teacher (``evaluate.sets.standard_sets``);
* max |ONNX Runtime − reference evaluator| in ULPs at 64 (2⁻¹⁷), ORT with its
  graph optimiser on (``ORT_ENABLE_ALL``) and off (``ORT_DISABLE_ALL``), over
  the gate's rows (test, edge, 20,000 random in-box) and 20,000 rows of an
  unseen seed; whether ORT on and off give the same bits; whether batch 1 and
  batch 4096 give the same bits;
* ORT rows/s on one thread (``intra_op_num_threads=1``) at batch 1, 64 and
  4096 (median of three rounds, the forms interleaved in each round);
* the node count and the ops.

Forms:

gemm        ``Gemm(transB=1)`` per layer (the export before issue 16)
sequential  ``Split`` the input into its k columns, ``acc = x0·W[:,0] + b``,
            then ``acc = acc + xj·W[:,j]`` for j = 1 … k−1 (k ``Mul`` + k ``Add``)
tree        ``Unsqueeze(x)·Wᵀ`` ([N, k, out], each product rounded once), then
            pairwise halving along k with ``Split`` + ``Add``, the bias last
            (``tinyvmaf.export.graph``, what export writes)
tree_outk   the same order in torch's ``[N, out, k]`` layout (halving along the last axis)
gemm_first  ``Gemm`` for the first layer (k = 6), ``tree`` for the others
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tinyvmaf.export.graph import GraphWriter, build_graph, pairwise_plan, student_layers
from tinyvmaf.model.runtime import run_chunked

ULP64 = float(np.spacing(np.float32(64.0)))


class GemmWriter(GraphWriter):
    def dense(self, x: str, w: np.ndarray, b: np.ndarray, prefix: str) -> str:
        wname = self.init(f"{prefix}.weight", np.asarray(w, np.float32))
        bname = self.init(f"{prefix}.bias", np.asarray(b, np.float32))
        return self.node("Gemm", [x, wname, bname], f"{prefix}.out", transB=1)


class SequentialWriter(GraphWriter):
    def dense(self, x: str, w: np.ndarray, b: np.ndarray, prefix: str) -> str:
        k = w.shape[1]
        bname = self.init(f"{prefix}.bias", np.asarray(b, np.float32))
        cols = [f"{prefix}.x{j}" for j in range(k)]
        if k > 1:
            split = self.const(f"split.ones{k}", np.ones(k, dtype=np.int64))
            self.nodes_multi("Split", [x, split], cols, f"{prefix}_split", axis=1)
        else:
            cols = [x]
        acc = None
        for j, col in enumerate(cols):
            wj = self.init(f"{prefix}.weight{j}", np.ascontiguousarray(w[:, j], np.float32))
            p = self.node("Mul", [col, wj], f"{prefix}.p{j}")
            acc = self.node("Add", [p, bname] if acc is None else [acc, p], f"{prefix}.acc{j}")
        return acc


class TreeOutKWriter(GraphWriter):
    """The pairwise tree in torch's ``[N, out, k]`` layout (weights as ``[out, in]``), halving along the last axis."""

    def dense(self, x: str, w: np.ndarray, b: np.ndarray, prefix: str) -> str:
        wname = self.init(f"{prefix}.weight", np.asarray(w, np.float32))
        bname = self.init(f"{prefix}.bias", np.asarray(b, np.float32))
        levels, _ = pairwise_plan(w.shape[1])
        u = self.node("Unsqueeze", [x, self.axes(1)], f"{prefix}.row")  # [N, 1, k]
        p = self.node("Mul", [u, wname], f"{prefix}.products")  # [N, out, k]
        leftovers: list[str] = []
        for j, sizes in enumerate(levels):
            split = self.const("split." + "_".join(map(str, sizes)), np.array(sizes, dtype=np.int64))
            parts = [f"{prefix}.l{j}.{part}" for part in "abc"[: len(sizes)]]
            self.nodes_multi("Split", [p, split], parts, f"{prefix}_l{j}_split", axis=2)
            p = self.node("Add", parts[:2], f"{prefix}.l{j}.sum")
            leftovers += parts[2:]
        for j, c in enumerate(leftovers):
            p = self.node("Add", [p, c], f"{prefix}.leftover{j}")
        s = self.node("Squeeze", [p, self.axes(2)], f"{prefix}.dot")
        return self.node("Add", [s, bname], f"{prefix}.out")


class GemmFirstWriter(GraphWriter):
    def dense(self, x: str, w: np.ndarray, b: np.ndarray, prefix: str) -> str:
        if prefix == "layer0":
            return GemmWriter.dense(self, x, w, b, prefix)  # type: ignore[arg-type]
        return super().dense(x, w, b, prefix)


FORMS = {
    "gemm": GemmWriter,
    "sequential": SequentialWriter,
    "tree": GraphWriter,
    "tree_outk": TreeOutKWriter,
    "gemm_first": GemmFirstWriter,
}


def session(model, optimise: bool):
    from tinyvmaf.model.runtime import ort_session

    return ort_session(model.SerializeToString(), optimise=optimise)


def run_ort(sess, x: np.ndarray) -> np.ndarray:
    return run_chunked(lambda c: sess.run(None, {"features": c})[0], x)


BATCHES = (1, 64, 4096)
ROUNDS = 3


def rows_per_second(sess, x: np.ndarray, batch: int, seconds: float = 1.0) -> float:
    """Rows per second over about ``seconds`` of back-to-back runs at ``batch`` rows."""
    chunks = [np.ascontiguousarray(x[i : i + batch]) for i in range(0, len(x) - batch + 1, batch)]
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for c in chunks[:64]:
            sess.run(None, {"features": c})
            n += len(c)
    return n / (time.perf_counter() - t0)


def speeds(sessions: dict, x: np.ndarray) -> dict[str, dict[int, float]]:
    """Median rows/s of :data:`ROUNDS` rounds, the forms interleaved in each round (the machine is shared)."""
    runs: dict[str, dict[int, list[float]]] = {f: {b: [] for b in BATCHES} for f in sessions}
    for _ in range(ROUNDS):
        for b in BATCHES:
            for f, sess in sessions.items():
                runs[f][b].append(rows_per_second(sess, x, b))
    return {f: {b: float(np.median(v)) for b, v in per.items()} for f, per in runs.items()}


def measure(student, form: str, sets, parity_x: dict[str, np.ndarray]):
    from onnx.reference import ReferenceEvaluator

    mean, std = student.mean.numpy(), student.std.numpy()
    model = build_graph(mean, std, student_layers(student), activation=student.activation, writer=FORMS[form])
    on, off = session(model, True), session(model, False)
    ref = ReferenceEvaluator(model)
    res: dict = {"nodes": len(model.graph.node), "ops": sorted({n.op_type for n in model.graph.node})}
    for s in sets:
        err = run_ort(on, s.x).astype(np.float64) - s.y
        res[f"{s.name}_rmse"] = float(np.sqrt(np.mean(err**2)))
        res[f"{s.name}_max_abs"] = float(np.abs(err).max())
        if s.groups is not None:
            pooled = [abs(err[s.groups == g].mean()) for g in np.unique(s.groups)]
            res[f"{s.name}_pooled_abs_max"] = float(max(pooled))
    ulp_on, ulp_off, same_on_off, same_batch = {}, {}, True, True
    for name, x in parity_x.items():
        with np.errstate(over="ignore", invalid="ignore"):
            r = run_chunked(lambda c: ref.run(None, {"features": c})[0], x, chunk=4096).astype(np.float64)
        a, b = run_ort(on, x), run_ort(off, x)
        ulp_on[name] = float(np.abs(a - r).max() / ULP64)
        ulp_off[name] = float(np.abs(b - r).max() / ULP64)
        same_on_off &= bool(np.array_equal(a.view(np.uint32), b.view(np.uint32)))
        one = np.concatenate([on.run(None, {"features": x[i : i + 1]})[0] for i in range(min(len(x), 500))])
        same_batch &= bool(np.array_equal(one.view(np.uint32), a[: len(one)].view(np.uint32)))
    res.update(
        ulp_ort_vs_ref=max(ulp_on.values()),
        ulp_ort_unoptimised_vs_ref=max(ulp_off.values()),
        ulp_by_set=ulp_on,
        ort_on_off_same_bits=same_on_off,
        batch1_batch4096_same_bits=same_batch,
    )
    return res, on


def main() -> None:
    from tinyvmaf.config.params import load_params
    from tinyvmaf.evaluate.sets import standard_sets
    from tinyvmaf.gate.stage import parity_rows
    from tinyvmaf.student.checkpoint import load_student

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", action="append", required=True, help="LABEL=PATH of a trained checkpoint")
    ap.add_argument("--forms", default=",".join(FORMS))
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", type=Path, default=Path("graph_forms.json"))
    args = ap.parse_args()
    params = load_params(args.params)
    sets = standard_sets(
        params.evaluate.dense,
        teacher=params.label.teacher,
        labels=params.paths.labels,
        golden_frames=params.paths.golden_frames,
    )
    parity_x = parity_rows(params, Path(params.paths.labels))
    results: dict = {"rows": {k: len(v) for k, v in parity_x.items()}, "forms": {}}
    for spec in args.ckpt:
        label, path = spec.split("=", 1)
        student, _ = load_student(path)
        sessions = {}
        for form in args.forms.split(","):
            r, sessions[form] = measure(student, form, sets, parity_x)
            results["forms"][f"{label}/{form}"] = r
        for form, per in speeds(sessions, parity_x["random"]).items():
            r = results["forms"][f"{label}/{form}"]
            r.update({f"rows_per_s_batch{b}": v for b, v in per.items()})
            print(
                f"{label}/{form}: dense {r['dense_rmse']:.4f} (max {r['dense_max_abs']:.3f}) test {r['test_rmse']:.4f}"
                f" golden pooled {r.get('golden_pooled_abs_max', float('nan')):.4f}"
                f" | ULP@64 ORT vs ref {r['ulp_ort_vs_ref']:.1f} (opt off {r['ulp_ort_unoptimised_vs_ref']:.1f},"
                f" on==off {r['ort_on_off_same_bits']}, b1==b4096 {r['batch1_batch4096_same_bits']})"
                f" | rows/s {' / '.join(f'{per[b]:.0f}' for b in BATCHES)} | nodes {r['nodes']}",
                flush=True,
            )
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
