"""Fidelity beyond the corpus: the evaluation sets, the figures, the peers side by side, leave-one-content-out."""
