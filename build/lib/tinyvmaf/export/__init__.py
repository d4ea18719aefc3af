"""The export stage: the student as ONNX opset 17 (built node by node), its sidecar, registry entry and model card."""
