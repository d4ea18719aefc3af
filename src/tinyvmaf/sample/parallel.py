"""The callable teacher over many rows on every core: the same bits as one call, in a fraction of the time.

The sample stage labels 1.6 M vectors per student; a bootstrap teacher is
21 SVRs a row.  Every output row depends on its own input row only (the SVR's
kernel, products and pairwise sum run along one row:
:mod:`tinyvmaf.common.exactmath`), so splitting the rows into chunks,
scoring the chunks in worker processes and concatenating gives exactly the
bytes of one call — on any number of cores.  Workers are forked (they
inherit the CPU pinning of :mod:`tinyvmaf.common.cpu`) and get the teacher
by name, not by pickling it.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

#: Rows per task: large enough that a task's overhead is noise, small enough to share the work evenly.
CHUNK = 1 << 17
WHAT = ("predict", "components")


def _score(teacher: str, what: str, rows: np.ndarray) -> np.ndarray:
    from ..teacher.spec import load_spec

    spec = load_spec(teacher)
    return spec.predict(rows) if what == "predict" else spec.components(rows)


def score_rows(teacher: str, rows: np.ndarray, what: str = "predict", *, workers: int | None = None) -> np.ndarray:
    """``load_spec(teacher).<what>(rows)`` (rows in the spec's order), chunked over ``workers`` processes."""
    if what not in WHAT:
        raise ValueError(f"what must be one of {WHAT}, got {what!r}")
    rows = np.asarray(rows, dtype=np.float64)
    workers = workers or len(os.sched_getaffinity(0))
    if workers <= 1 or len(rows) <= CHUNK:
        return _score(teacher, what, rows)
    chunks = [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]
    with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=multiprocessing.get_context("fork")) as pool:
        parts = list(pool.map(_score, [teacher] * len(chunks), [what] * len(chunks), chunks))
    return np.concatenate(parts)
