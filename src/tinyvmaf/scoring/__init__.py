"""Scoring pairs with tiny models beside the teacher: ``tinyvmaf score`` and ``tinyvmaf.score()``."""
