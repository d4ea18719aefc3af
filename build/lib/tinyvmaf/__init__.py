"""tinyvmaf: VMAF ``vmaf_v0.6.1`` distilled into tiny MLP students shipped as ONNX.

Importing the package is cheap (no torch, no onnxruntime): the stages and
the CLI import what they need when they run.  From Python, score a pair
with :func:`tinyvmaf.scoring.score`.
"""

from __future__ import annotations

__version__ = "0.2.0"
__all__ = ["__version__"]
