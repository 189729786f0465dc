"""Conditional Parameter Optimization: labels, conditional model, policy, gate, ONNX export."""
