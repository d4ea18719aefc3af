"""The libvmaf fork's published tiny models (``assets/peers``), measured beside ours on the same rows.

Loaded through :func:`tinyvmaf.model.runtime.load_tiny_model`, which reads
their sidecars for the feature order and notices that their graphs carry
their own scaler (so the sidecars' ``input_mean``/``input_std`` are not
applied a second time).  Their outputs are used as they come: ``vmaf_tiny_v4``
has no Clip, and reads above 100 where the teacher clips; that is part of
what is being measured.
"""

from __future__ import annotations

from pathlib import Path

from ..model.runtime import TinyModel, load_tiny_model


def load_peers(folder: Path, names: list[str]) -> dict[str, TinyModel]:
    """``{name: model}`` for ``folder/<name>.onnx``; a missing peer is an error naming the file."""
    out = {}
    for name in names:
        path = folder / f"{name}.onnx"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: peer model missing (evaluate.peers lists {name!r})")
        # Their sidecars' double-scaling risk (TinyModel.warnings) is reported by `tinyvmaf model check`.
        out[name] = load_tiny_model(path, name=name)
    return out
