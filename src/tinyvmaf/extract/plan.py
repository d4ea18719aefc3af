"""What one libvmaf pass computes: every configured teacher's features and score, read from its model file.

The teachers' specs (:mod:`tinyvmaf.teacher.spec`) say which model files
libvmaf loads (``model='path=<file>\\:name=<teacher>|...'``) and under which
per-frame keys it logs each feature.  One pass scores them all: libvmaf runs
each feature extractor once per distinct option set, so v0.6.1 and
v1.0.16_3d0h together cost one decode of each clip.

Rows are keyed by libvmaf's own per-frame keys (``integer_adm2``,
``cambi_hrs_1080_cmxv_17_vlt_0.06``, ...) plus one column per teacher (its
score, as libvmaf logged it); a student's stages rename its teacher's keys
to the spec's short names (:meth:`ExtractionPlan.rename`).  The cache key
holds each model file's sha256, so adding a teacher, or a model file that
changed, extracts each pair once more.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..common.provenance import file_sha256

if TYPE_CHECKING:
    from ..teacher.spec import TeacherSpec


class MissingFeatureKey(KeyError):
    """libvmaf did not log a key a teacher needs; the message names the key, the teacher and the pair."""

    def __str__(self) -> str:  # KeyError quotes its message; this one is a sentence
        return str(self.args[0])


@dataclass(frozen=True)
class ExtractionPlan:
    """The teachers of one libvmaf pass, their specs, the columns they log."""

    teachers: tuple[str, ...]

    @cached_property
    def specs(self) -> tuple[TeacherSpec, ...]:
        from ..teacher.spec import load_spec

        return tuple(load_spec(t) for t in self.teachers)

    @cached_property
    def feature_keys(self) -> tuple[str, ...]:
        """Every teacher's feature keys, each once, teachers in order (v0.6.1's first when configured first)."""
        return tuple(dict.fromkeys(k for s in self.specs for k in s.keys))

    @property
    def columns(self) -> tuple[str, ...]:
        """A frame row's columns: the feature keys, one score column per teacher, then each bootstrap
        teacher's component columns (``<teacher>_00`` …)."""
        return (*self.feature_keys, *self.teachers, *self.component_columns)

    @property
    def component_columns(self) -> tuple[str, ...]:
        return tuple(c for s in self.specs if s.bootstrap is not None for c in s.log_columns)

    def model_option(self) -> str:
        """The libvmaf filter's ``model`` value: each carried file by ``path=``, named after its teacher."""
        return "|".join(s.model_option(t) for s, t in zip(self.specs, self.teachers, strict=True))

    def cache_params(self) -> dict[str, Any]:
        """What of the teachers changes a pass's result: each model file's bytes and the keys read."""
        return {
            t: {"sha256": file_sha256(s.path), "keys": list(s.keys)}
            for t, s in zip(self.teachers, self.specs, strict=True)
        }

    def frame_row(self, metrics: dict[str, Any], *, pair: str, frame: int) -> dict[str, float]:
        """One logged frame as a row of :attr:`columns`; a missing key is an error naming it."""
        row: dict[str, float] = {}
        for spec, teacher in zip(self.specs, self.teachers, strict=True):
            if spec.bootstrap is not None:
                # FFmpeg logs each component under <teacher>_<kk>; key "0" is libvmaf's bootstrap score.
                metrics = {**metrics, teacher: metrics.get(spec.log_columns[0], metrics.get(teacher))}
                metrics = {k: v for k, v in metrics.items() if v is not None}
            for k in (*spec.keys, *dict.fromkeys((teacher, *spec.log_columns))):
                if k not in metrics:
                    raise MissingFeatureKey(
                        f"libvmaf logged no {k!r} for teacher {teacher} on pair {pair!r} frame {frame} "
                        f"(it logged {sorted(metrics)})"
                    )
                row[k] = float(metrics[k])
        return row


def plan_for(teachers: Iterable[str]) -> ExtractionPlan:
    teachers = tuple(dict.fromkeys(teachers))
    if not teachers:
        raise ValueError("no teacher to extract: configure a student (students:) or extract.teachers")
    return ExtractionPlan(teachers)


def rename_to_spec(columns: Iterable[str], spec: TeacherSpec) -> dict[str, str]:
    """``{libvmaf key: short name}`` for a spec's features (what a student's tables call them)."""
    have = set(columns)
    missing = [k for k in spec.keys if k not in have]
    if missing:
        raise MissingFeatureKey(
            f"teacher {spec.name} needs feature column(s) {missing}, which the features table lacks "
            "(is the teacher in the extract stage's list? `tinyvmaf params` shows it)"
        )
    return dict(zip(spec.keys, spec.order, strict=True))


def golden_frames_for(golden_frames: Any, teacher: str) -> Any:
    """The golden frames ``teacher`` scored, its features under the spec's short names."""
    import pandas as pd

    from ..teacher.spec import load_spec

    df = golden_frames if isinstance(golden_frames, pd.DataFrame) else pd.read_parquet(golden_frames)
    if teacher not in df.columns:
        raise KeyError(f"{golden_frames}: no {teacher!r} column (the golden stage did not score this teacher)")
    names = rename_to_spec(df.columns, load_spec(teacher))
    return df.loc[scored_by(df, teacher)].rename(columns=names).reset_index(drop=True)


def scored_by(golden: Any, teacher: str) -> Any:
    """Rows of the golden pairs ``teacher`` was run on (the project pairs are v0.6.1's only).

    By pair, not by row: a NaN inside a pair the teacher scored stays, so the figures fail closed.
    """
    return golden.groupby(["set", "pair"], sort=False)[teacher].transform(lambda v: v.notna().any()).astype(bool)
