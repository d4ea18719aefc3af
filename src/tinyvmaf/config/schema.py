"""The typed shape of the configuration; its *values* live in ``conf/`` only.

Every field here is ``MISSING``: a dataclass says what a key is called, what
type it has and which values make sense, never what it defaults to, so the
one place a default is written is ``conf/`` (and ``params.yaml``, which is
``conf/`` composed).  :func:`tinyvmaf.config.params.validate` merges a
loaded config onto :class:`Config`: an unknown key, a missing key or a value
of the wrong type is an error naming the key (OmegaConf's struct mode), and
:func:`check_all` then calls each section's ``check()`` for what a type cannot
say (ranges, choices).  (Not ``__post_init__``: OmegaConf instantiates the
dataclasses with ``MISSING`` values while building the schema.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..contract import FEATURES

#: OmegaConf's marker of a mandatory value (``omegaconf.MISSING`` is this very string); spelled out
#: here so that importing the schema does not import OmegaConf.
MISSING: Any = "???"


class ConfigError(ValueError):
    """A configuration value is out of range or not one of its choices; the message names the key."""


def check_all(node: object) -> None:
    """Call ``check()`` on every dataclass in a config tree, depth first."""
    import dataclasses

    if not dataclasses.is_dataclass(node):
        return
    for f in dataclasses.fields(node):
        check_all(getattr(node, f.name))
    check = getattr(node, "check", None)
    if callable(check):
        check()


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {list(choices)}, got {value!r}")


def _range(key: str, value: float, lo: float | None = None, hi: float | None = None, *, open_lo: bool = False) -> None:
    if value != value:  # NaN compares False with everything: it would pass both bounds below
        raise ConfigError(f"{key} must be a number, got {value}")
    if lo is not None and (value <= lo if open_lo else value < lo):
        raise ConfigError(f"{key} must be {'>' if open_lo else '>='} {lo}, got {value}")
    if hi is not None and value > hi:
        raise ConfigError(f"{key} must be <= {hi}, got {value}")


@dataclass
class PathsConfig:
    """Every file a stage reads or writes, named once (dvc.yaml interpolates them).

    Files of one student live under per-teacher folders of the ``*_dir``
    entries (``metrics/<teacher>/eval.json``, ...): :class:`StudentPaths`
    names them, and dvc.yaml's ``foreach`` stages spell the same names
    (``tests/pipeline/test_stage_deps.py`` checks that the two agree).
    """

    data: str = MISSING
    manifest: str = MISSING
    features: str = MISSING
    golden_dir: str = MISSING
    golden_frames: str = MISSING
    golden_metrics: str = MISSING
    golden_report: str = MISSING
    labels_dir: str = MISSING
    samples_dir: str = MISSING
    models_dir: str = MISSING
    metrics_dir: str = MISSING
    reports_dir: str = MISSING
    plots_dir: str = MISSING
    loco_dir: str = MISSING
    model_dir: str = MISSING
    registry: str = MISSING
    peers_dir: str = MISSING
    data_dvc: str = MISSING


@dataclass(frozen=True)
class StudentPaths:
    """The files of one student (teacher ``t``, model id ``i``), under the names every stage uses."""

    data: str
    manifest: str
    features: str
    golden_frames: str
    golden_metrics: str
    peers_dir: str
    data_dvc: str
    model_dir: str
    registry: str
    labels: str  # labels/<t>.parquet
    samples: str  # samples/<t>.parquet
    sample_metrics: str  # metrics/<t>/sample.json
    ckpt: str  # models/<t>/best.ckpt
    arch_ckpts: str  # models/<t>/archs
    train_metrics: str  # metrics/<t>/train.json
    train_plots: str  # plots/<t>/train
    onnx: str  # model/tiny/<i>.onnx (sidecar: .json beside it)
    exact_onnx: str  # model/tiny/<exact id>.onnx: the teacher's exact graph
    eval_metrics: str  # metrics/<t>/eval.json
    loco_metrics: str  # loco/<t>.json (make loco; committed; the eval stage's dep is the folder)
    model_card: str  # reports/<t>/model_card.md
    figures: str  # reports/<t>/figures
    gate_metrics: str  # metrics/<t>/gate.json
    gate_report: str  # reports/<t>/gate.md

    @classmethod
    def of(cls, p: PathsConfig, teacher: str, model_id: str, exact_id: str) -> StudentPaths:
        t = teacher
        return cls(
            data=p.data,
            manifest=p.manifest,
            features=p.features,
            golden_frames=p.golden_frames,
            golden_metrics=p.golden_metrics,
            peers_dir=p.peers_dir,
            data_dvc=p.data_dvc,
            model_dir=p.model_dir,
            registry=p.registry,
            labels=f"{p.labels_dir}/{t}.parquet",
            samples=f"{p.samples_dir}/{t}.parquet",
            sample_metrics=f"{p.metrics_dir}/{t}/sample.json",
            ckpt=f"{p.models_dir}/{t}/best.ckpt",
            arch_ckpts=f"{p.models_dir}/{t}/archs",
            train_metrics=f"{p.metrics_dir}/{t}/train.json",
            train_plots=f"{p.plots_dir}/{t}/train",
            onnx=f"{p.model_dir}/{model_id}.onnx",
            exact_onnx=f"{p.model_dir}/{exact_id}.onnx",
            eval_metrics=f"{p.metrics_dir}/{t}/eval.json",
            loco_metrics=f"{p.loco_dir}/{t}.json",
            model_card=f"{p.reports_dir}/{t}/model_card.md",
            figures=f"{p.reports_dir}/{t}/figures",
            gate_metrics=f"{p.metrics_dir}/{t}/gate.json",
            gate_report=f"{p.reports_dir}/{t}/gate.md",
        )


FRAME_POLICIES = ("error", "truncate")


def check_teacher(key: str, name: str) -> None:
    """``name`` is a libvmaf model file the project carries (``src/tinyvmaf/teacher/models``)."""
    from ..teacher.svr import packaged_models

    known = packaged_models()
    if name not in known:
        raise ConfigError(f"{key}: unknown teacher {name!r}; the project carries {known}")


@dataclass
class ExtractConfig:
    teachers: list[str] = MISSING
    frame_policy: str = MISSING
    workers: Optional[int] = MISSING  # noqa: UP045 - OmegaConf reads typing.Optional, not X | None
    ffmpeg: Optional[str] = MISSING  # noqa: UP045
    cache_dir: Optional[str] = MISSING  # noqa: UP045

    def check(self) -> None:
        for t in self.teachers:
            check_teacher("extract.teachers[]", t)
        _choice("extract.frame_policy", self.frame_policy, FRAME_POLICIES)
        if self.workers is not None:
            _range("extract.workers", self.workers, 1)

    def cache_params(self) -> dict:
        """The params that change results (workers and paths do not): part of every cache key.

        The teachers' own model files enter the key through
        :func:`tinyvmaf.extract.plan.plan_key` (their bytes, not their names).
        """
        return {"frame_policy": self.frame_policy}


GOLDEN_SETS = ("project", "netflix")


@dataclass
class GoldenConfig:
    sets: list[str] = MISSING
    tolerance: float = MISSING
    teacher_tolerance: float = MISSING

    def check(self) -> None:
        for s in self.sets:
            _choice("golden.sets[]", s, GOLDEN_SETS)
        _range("golden.tolerance", self.tolerance, 0.0, open_lo=True)
        _range("golden.teacher_tolerance", self.teacher_tolerance, 0.0, open_lo=True)


@dataclass
class SplitConfig:
    salt: str = MISSING
    val: float = MISSING
    test: float = MISSING

    def check(self) -> None:
        for name in ("val", "test"):
            frac = getattr(self, name)
            if not 0.0 < frac < 1.0:
                raise ConfigError(f"label.split.{name} must be in (0, 1), got {frac}")
        if self.val + self.test >= 1.0:
            raise ConfigError(
                f"label.split.val + label.split.test must be < 1 (no train left), got {self.val + self.test}"
            )


@dataclass
class LabelConfig:
    split: SplitConfig = field(default_factory=SplitConfig)


@dataclass
class MixConfig:
    """Shares of the training sample drawn by each generator (normalised to sum to 1)."""

    uniform: float = MISSING
    quality: float = MISSING
    jitter: float = MISSING

    def check(self) -> None:
        for k in ("uniform", "quality", "jitter"):
            _range(f"sample.mix.{k}", getattr(self, k), 0.0)
        if self.uniform + self.quality + self.jitter <= 0:
            raise ConfigError("sample.mix: at least one share must be > 0")


@dataclass
class BoundsConfig:
    """The box the student is taught over: adm2 and vif_scale0..3 in [0, quality_max], motion2 in [0, motion2_max]."""

    quality_max: float = MISSING
    motion2_max: float = MISSING
    motion2_scale: float = MISSING

    def check(self) -> None:
        _range("sample.bounds.quality_max", self.quality_max, 1.0)
        _range("sample.bounds.motion2_max", self.motion2_max, 0.0, open_lo=True)
        _range("sample.bounds.motion2_scale", self.motion2_scale, 0.0, open_lo=True)


@dataclass
class QualityGenConfig:
    enhance: float = MISSING
    enhance_gain: float = MISSING
    noise: float = MISSING

    def check(self) -> None:
        _range("sample.quality.enhance", self.enhance, 0.0, 1.0)
        _range("sample.quality.enhance_gain", self.enhance_gain, 0.0)
        _range("sample.quality.noise", self.noise, 0.0)


@dataclass
class JitterConfig:
    sigma: float = MISSING
    motion2_sigma: float = MISSING

    def check(self) -> None:
        _range("sample.jitter.sigma", self.sigma, 0.0)
        _range("sample.jitter.motion2_sigma", self.motion2_sigma, 0.0)


@dataclass
class SpecMixConfig:
    """Shares of the generic sampler's generators (:mod:`tinyvmaf.sample.spec_box`)."""

    uniform: float = MISSING
    jitter: float = MISSING
    corner: float = MISSING

    def check(self) -> None:
        for k in ("uniform", "jitter", "corner"):
            _range(f"sample.spec.mix.{k}", getattr(self, k), 0.0)
        if self.uniform + self.jitter + self.corner <= 0:
            raise ConfigError("sample.spec.mix: at least one share must be > 0")


@dataclass
class SpecSampleConfig:
    """Teachers outside the v0.6.1 family: the box from the model file and the extractors' bounds."""

    margin: float = MISSING
    zero_share_min: float = MISSING
    jitter_sigma: float = MISSING
    mix: SpecMixConfig = field(default_factory=SpecMixConfig)

    def check(self) -> None:
        _range("sample.spec.margin", self.margin, 0.0, 1.0)
        _range("sample.spec.zero_share_min", self.zero_share_min, 0.0, 0.5)
        _range("sample.spec.jitter_sigma", self.jitter_sigma, 0.0, 1.0)


@dataclass
class SampleConfig:
    count: int = MISSING
    val_count: int = MISSING
    seed: int = MISSING
    mix: MixConfig = field(default_factory=MixConfig)
    bounds: BoundsConfig = field(default_factory=BoundsConfig)
    quality: QualityGenConfig = field(default_factory=QualityGenConfig)
    jitter: JitterConfig = field(default_factory=JitterConfig)
    spec: SpecSampleConfig = field(default_factory=SpecSampleConfig)

    def check(self) -> None:
        _range("sample.count", self.count, 0)
        _range("sample.val_count", self.val_count, 0)


ACTIVATIONS = ("hardswish", "silu", "relu")


@dataclass
class ArchConfig:
    name: str = MISSING
    width: int = MISSING
    depth: int = MISSING
    activation: str = MISSING

    def check(self) -> None:
        _range(f"arch {self.name}: width", self.width, 1)
        _range(f"arch {self.name}: depth", self.depth, 1)
        _choice(f"arch {self.name}: activation", self.activation, ACTIVATIONS)


@dataclass
class SweepConfig:
    archs: list[str] = MISSING

    def check(self) -> None:
        if not self.archs:
            raise ConfigError("sweep.archs is empty: nothing to train")
        dup = sorted({n for n in self.archs if self.archs.count(n) > 1})
        if dup:
            raise ConfigError(f"sweep.archs lists {dup} more than once")


NOISE_SIGMA_MAX = 0.01


@dataclass
class AugmentConfig:
    noise_sigma: float = MISSING
    subsample: float = MISSING
    vif_flip: bool = MISSING

    def check(self) -> None:
        if not 0.0 <= self.noise_sigma <= NOISE_SIGMA_MAX:
            raise ConfigError(
                f"train.augment.noise_sigma must be in [0, {NOISE_SIGMA_MAX}] "
                f"(larger noise changes what the teacher would say), got {self.noise_sigma}"
            )
        if not 0.0 < self.subsample <= 1.0:
            raise ConfigError(f"train.augment.subsample must be in (0, 1], got {self.subsample}")


OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("onecycle", "cosine", "none")
LOSSES = ("censored", "huber")


@dataclass
class TrainConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    huber_delta: float = MISSING
    loss: str = MISSING
    dropout: float = MISSING
    optimizer: str = MISSING
    scheduler: str = MISSING
    sample_weight: float = MISSING
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    mos_lambda: float = MISSING
    accelerator: str = MISSING
    deterministic: bool = MISSING
    threads: int = MISSING
    jobs: int = MISSING

    def check(self) -> None:
        _range("train.epochs", self.epochs, 1)
        _range("train.batch_size", self.batch_size, 1)
        _range("train.lr", self.lr, 0.0, open_lo=True)
        _range("train.weight_decay", self.weight_decay, 0.0)
        _range("train.huber_delta", self.huber_delta, 0.0, open_lo=True)
        _choice("train.loss", self.loss, LOSSES)
        _range("train.dropout", self.dropout, 0.0, 0.9)
        _choice("train.optimizer", self.optimizer, OPTIMIZERS)
        _choice("train.scheduler", self.scheduler, SCHEDULERS)
        _range("train.sample_weight", self.sample_weight, 0.0)
        _range("train.mos_lambda", self.mos_lambda, 0.0)
        _range("train.threads", self.threads, 1)
        _range("train.jobs", self.jobs, 1)


@dataclass
class MlflowConfig:
    tracking_uri: str = MISSING
    experiment: str = MISSING
    alias: str = MISSING


@dataclass
class ExportConfig:
    opset: int = MISSING
    license: str = MISSING
    license_url: str = MISSING

    def check(self) -> None:
        _range("export.opset", self.opset, 13)


#: A student's key names its DVC stages (``train@v1016_3d0h``) and its ``params:`` entry
#: (``students.v1016_3d0h``), where a dot would split the path: letters, digits and ``_`` only.
STUDENT_KEY_RE = r"[a-z][a-z0-9_]*"
#: libvmaf's registry ids.
MODEL_ID_RE = r"[a-z0-9][a-z0-9_-]*"


@dataclass
class StudentConfig:
    """One student: its teacher (a carried libvmaf model), model id, exact graph id, MLflow registered model.

    What it trains is ``student_archs.<key>`` (else ``default_archs``), kept apart so that a sweep
    over archs changes no ``students`` param: the extract and golden stages depend on ``students``
    (its teachers) and must not re-run for a new arch.
    """

    teacher: str = MISSING
    id: str = MISSING
    exact: str = MISSING  # the registry id of the teacher's exact graph (ids have no dots: vmaf_v0_6_1_exact)
    registered_model: str = MISSING

    def check_as(self, key: str) -> None:
        import re

        if not re.fullmatch(STUDENT_KEY_RE, key):
            raise ConfigError(f"students.{key}: a student key must match ^{STUDENT_KEY_RE}$ (it names DVC stages)")
        check_teacher(f"students.{key}.teacher", self.teacher)
        for field_name in ("id", "exact"):
            value = getattr(self, field_name)
            if not re.fullmatch(MODEL_ID_RE, value):
                raise ConfigError(
                    f"students.{key}.{field_name} {value!r} must match ^{MODEL_ID_RE}$ (libvmaf's registry ids)"
                )
        if self.exact == self.id:
            raise ConfigError(f"students.{key}: exact and id are both {self.id!r}")


@dataclass
class DenseEvalConfig:
    """The held-out dense set: a Gaussian copula, own correlation, bounds and seed (not a training generator)."""

    count: int = MISSING
    seed: int = MISSING
    correlation: float = MISSING
    skew: float = MISSING
    lo: list[float] = MISSING
    hi: list[float] = MISSING
    motion2: list[float] = MISSING
    motion2_zero: float = MISSING

    def check(self) -> None:
        _range("evaluate.dense.count", self.count, 2)
        _range("evaluate.dense.correlation", self.correlation, -0.2, 0.99)
        _range("evaluate.dense.skew", self.skew, 0.0, open_lo=True)
        n = len(FEATURES) - 1
        if len(self.lo) != n or len(self.hi) != n or any(a >= b for a, b in zip(self.lo, self.hi, strict=True)):
            raise ConfigError(f"evaluate.dense.lo/hi must be {n} pairs lo < hi (adm2, vif_scale0..3)")
        if len(self.motion2) != 2 or not 0 < self.motion2[0] < self.motion2[1]:
            raise ConfigError("evaluate.dense.motion2 must be [lo, hi] with 0 < lo < hi (drawn log-uniform)")
        _range("evaluate.dense.motion2_zero", self.motion2_zero, 0.0, 1.0)


@dataclass
class LocoConfig:
    arch: str = MISSING
    jobs: int = MISSING

    def check(self) -> None:
        _range("evaluate.loco.jobs", self.jobs, 1)


@dataclass
class DenseSpecEvalConfig:
    """The held-out dense set of a teacher outside the v0.6.1 family (``spec_box.dense_generic``)."""

    count: int = MISSING
    seed: int = MISSING

    def check(self) -> None:
        _range("evaluate.dense_spec.count", self.count, 2)


@dataclass
class EvaluateConfig:
    dense: DenseEvalConfig = field(default_factory=DenseEvalConfig)
    dense_spec: DenseSpecEvalConfig = field(default_factory=DenseSpecEvalConfig)
    within: float = MISSING
    peers: list[str] = MISSING
    loco: LocoConfig = field(default_factory=LocoConfig)

    def check(self) -> None:
        _range("evaluate.within", self.within, 0.0, open_lo=True)


# The gate's thresholds are range-checked so that no override (``dvc exp run -S``, a hand edit) can
# switch a check off: an error bound of 100 VMAF points or a correlation floor of -1 passes anything.
#: Error bounds (VMAF points: RMSE, max |error|, pooled |error|) lie in (0, ERROR_BOUND_MAX].
ERROR_BOUND_MAX = 1.0
#: Correlation floors (PLCC, SROCC) lie in [CORRELATION_MIN, 1].
CORRELATION_MIN = 0.9
#: The parity ceiling lies in [1, PARITY_ULP_MAX] ULPs.
PARITY_ULP_MAX = 64


def _error_bound(key: str, value: float) -> None:
    _range(key, value, 0.0, ERROR_BOUND_MAX, open_lo=True)


@dataclass
class FrameThresholds:
    rmse_max: float = MISSING
    max_abs_max: float = MISSING

    def check_set(self, prefix: str) -> None:
        _error_bound(f"{prefix}.rmse_max", self.rmse_max)
        _error_bound(f"{prefix}.max_abs_max", self.max_abs_max)


@dataclass
class TestThresholds(FrameThresholds):
    plcc_min: float = MISSING
    srocc_min: float = MISSING

    def check_set(self, prefix: str) -> None:
        super().check_set(prefix)
        _range(f"{prefix}.plcc_min", self.plcc_min, CORRELATION_MIN, 1.0)
        _range(f"{prefix}.srocc_min", self.srocc_min, CORRELATION_MIN, 1.0)


@dataclass
class GoldenThresholds:
    pooled_abs_max: float = MISSING

    def check(self) -> None:
        _error_bound("gate.fidelity.golden.pooled_abs_max", self.pooled_abs_max)


@dataclass
class ExactThresholds:
    """The teacher's exact graph against the float64 teacher (float32 rounding only)."""

    rmse_max: float = MISSING

    def check(self) -> None:
        _error_bound("gate.fidelity.exact.rmse_max", self.rmse_max)


@dataclass
class FidelityThresholds:
    dense: FrameThresholds = field(default_factory=FrameThresholds)
    test: TestThresholds = field(default_factory=TestThresholds)
    golden: GoldenThresholds = field(default_factory=GoldenThresholds)
    exact: ExactThresholds = field(default_factory=ExactThresholds)

    def check(self) -> None:
        # Here, not in a check() of their own: the two sets share a class and the message names the set.
        self.dense.check_set("gate.fidelity.dense")
        self.test.check_set("gate.fidelity.test")


@dataclass
class ParityConfig:
    max_ulp: float = MISSING
    ulp_scale: float = MISSING
    student_max_ulp: float = MISSING
    random_rows: int = MISSING
    unseen_seed: int = MISSING
    motion2_large: float = MISSING

    def check(self) -> None:
        _range("gate.parity.max_ulp", self.max_ulp, 1, PARITY_ULP_MAX)
        _range("gate.parity.student_max_ulp", self.student_max_ulp, 1, PARITY_ULP_MAX)
        _range("gate.parity.unseen_seed", self.unseen_seed, 0)
        _range("gate.parity.ulp_scale", self.ulp_scale, 0.0, open_lo=True)
        _range("gate.parity.random_rows", self.random_rows, 0)


@dataclass
class IntervalThresholds:
    """A bootstrap teacher's student (``gate``'s ``interval`` check): every head, every statistic."""

    heads: FrameThresholds = field(default_factory=FrameThresholds)  # each head vs its component, dense set
    statistics: FrameThresholds = field(default_factory=FrameThresholds)  # score, bagging, lo, hi: dense, test
    stddev_rmse_max: float = MISSING  # away from the bounds (evaluate.interval.EDGE), dense and test
    width_rmse_max: float = MISSING
    golden_pooled_max: float = MISSING  # every statistic, pooled per Netflix golden pair

    def check(self) -> None:
        self.heads.check_set("gate.interval.heads")
        self.statistics.check_set("gate.interval.statistics")
        _error_bound("gate.interval.stddev_rmse_max", self.stddev_rmse_max)
        _error_bound("gate.interval.width_rmse_max", self.width_rmse_max)
        _error_bound("gate.interval.golden_pooled_max", self.golden_pooled_max)


@dataclass
class GateConfig:
    fidelity: FidelityThresholds = field(default_factory=FidelityThresholds)
    parity: ParityConfig = field(default_factory=ParityConfig)
    interval: IntervalThresholds = field(default_factory=IntervalThresholds)


@dataclass
class Config:
    """The whole configuration, as ``params.yaml`` holds it."""

    seed: int = MISSING
    students: dict[str, StudentConfig] = field(default_factory=dict)
    student_archs: dict[str, list[str]] = field(default_factory=dict)
    default_archs: list[str] = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    golden: GoldenConfig = field(default_factory=GoldenConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    arch: ArchConfig = field(default_factory=ArchConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    gate: GateConfig = field(default_factory=GateConfig)

    def check(self) -> None:
        if not self.students:
            raise ConfigError("students is empty: configure at least one student (conf/config.yaml)")
        ids: dict[str, str] = {}
        for key, st in self.students.items():
            st.check_as(key)
            for mid in (st.id, st.exact):
                if mid in ids:
                    raise ConfigError(f"students.{key}: model id {mid!r} is also used by students.{ids[mid]}")
                ids[mid] = key
        for key in self.student_archs:
            if key not in self.students:
                raise ConfigError(f"student_archs.{key}: no such student (configured: {list(self.students)})")
        for key, archs in [*self.student_archs.items(), ("default_archs", self.default_archs)]:
            where = "default_archs" if key == "default_archs" else f"student_archs.{key}"
            if not archs:
                raise ConfigError(f"{where} is empty: nothing to train")
            dup = sorted({n for n in archs if archs.count(n) > 1})
            if dup:
                raise ConfigError(f"{where} lists {dup} more than once")
        teachers = [st.teacher for st in self.students.values()]
        dup = sorted({t for t in teachers if teachers.count(t) > 1})
        if dup:
            raise ConfigError(f"students: teacher(s) {dup} have more than one student (their files would collide)")

    def teachers(self) -> list[str]:
        """Every teacher the extract stage scores: the students' teachers, then ``extract.teachers`` (extras)."""
        return list(dict.fromkeys([*(s.teacher for s in self.students.values()), *self.extract.teachers]))

    def student(self, key: str | None = None) -> Student:
        """One student's view: its config, teacher spec and files (``key`` None: the first configured)."""
        if key is None:
            key = next(iter(self.students))
        if key not in self.students:
            raise ConfigError(f"no student {key!r}; configured: {list(self.students)}")
        st = self.students[key]
        archs = list(self.student_archs.get(key) or self.default_archs)
        return Student(key=key, config=st, paths=StudentPaths.of(self.paths, st.teacher, st.id, st.exact), archs=archs)


@dataclass(frozen=True)
class Student:
    """What a per-student stage needs: the key, its config, its files and (lazily) its teacher spec."""

    key: str
    config: StudentConfig
    paths: StudentPaths
    archs: list[str]  # what it trains (student_archs.<key>, else default_archs)

    @property
    def teacher(self) -> str:
        return self.config.teacher

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def spec(self) -> Any:
        """The teacher spec (:class:`tinyvmaf.teacher.spec.TeacherSpec`), read from the carried model file."""
        from ..teacher.spec import load_spec

        return load_spec(self.teacher)

    @property
    def description(self) -> str:
        f = self.spec.order
        return f"VMAF {self.teacher} distilled into a tiny MLP over {len(f)} libvmaf features ({', '.join(f)})"
