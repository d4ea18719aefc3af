"""The train stage: Lightning over in-memory tensors, a Hydra-configured arch sweep, MLflow tracking."""
