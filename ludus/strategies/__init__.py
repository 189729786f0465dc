"""Strategies, their parameter spaces, and the batched backtest engine."""
