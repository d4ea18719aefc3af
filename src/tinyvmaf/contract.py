"""The contracts every stage shares: the canonical-6 feature order and the ONNX model's interface.

One module, imported by extraction, training, export, the gate and scoring,
so that "the order of the features" or "the name of the input" is written
once (DESIGN.md, "Contracts").
"""

from __future__ import annotations

#: canonical-6: the integer features libvmaf reports, in the order the libvmaf fork's runtime feeds them.
FEATURES: tuple[str, ...] = ("adm2", "vif_scale0", "vif_scale1", "vif_scale2", "vif_scale3", "motion2")
N_FEATURES = len(FEATURES)
#: The content-grouped splits of the label stage.
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: The teacher of the v0.6.1 student (the first configured one; the golden values are its).
TEACHER = "vmaf_v0.6.1"

#: ONNX interface: opset, IR version (ONNX 1.12, what older runtimes accept), input and output.
OPSET = 17
IR_VERSION = 8
INPUT_NAME = "features"
OUTPUT_NAME = "vmaf"
#: A bootstrap teacher's students (and its exact graph) output its raw component scores, ``heads [N, n]``.
HEADS_NAME = "heads"
BATCH_DIM = "N"
#: metadata_props every exported model carries (the gate's contract check reads them).
REQUIRED_METADATA: tuple[str, ...] = (
    "feature_order",
    "teacher",
    "data_version",
    "checkpoint_sha256",
    "heldout_metrics",
    "architecture",
)
#: The teacher's score range; the graph ends in Clip(VMAF_MIN, VMAF_MAX) like the teacher.
VMAF_MIN, VMAF_MAX = 0.0, 100.0
