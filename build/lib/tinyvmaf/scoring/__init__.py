"""Scoring pairs with tiny models beside the teacher: ``tinyvmaf score`` and, from Python, ``score()``.

from tinyvmaf.scoring import score
result = score("ref.y4m", "dist.mp4")            # the packaged model
result = score(ref, dist, ["a.onnx", "b.onnx"])  # any tiny models, one column each
"""

from .scorer import format_table, score

__all__ = ["format_table", "score"]
