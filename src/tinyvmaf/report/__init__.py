"""The README's pipeline figures, rendered from the committed results (``python -m tinyvmaf.report readme``)."""
