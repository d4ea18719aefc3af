"""Small modules every stage shares: atomic writes, provenance, metrics, ULP distances, check results."""
