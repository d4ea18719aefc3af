"""tinyvmaf: VMAF ``vmaf_v0.6.1`` distilled into tiny MLP students shipped as ONNX.

Importing the package is cheap (no torch, no onnxruntime): the stages and
the CLI import what they need when they run.  The one Python entry point
exported here, :func:`tinyvmaf.score` (:func:`tinyvmaf.scoring.score.score`),
is resolved on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"
__all__ = ["__version__", "score"]

if TYPE_CHECKING:
    from .scoring.score import score


def __getattr__(name: str) -> Any:
    if name == "score":
        from .scoring.score import score

        return score
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
