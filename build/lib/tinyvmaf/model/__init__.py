"""The shipped artifact: running any tiny model, its sidecar and registry, check, release, MLflow promotion."""
