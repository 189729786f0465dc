"""Conditional Parameter Optimization: labels, the conditional model and its policy, the arms of a decision,
rolling-origin evaluation, the rule (bootstrap standard errors, deflation), ONNX export and recommendation."""
