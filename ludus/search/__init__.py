"""Optuna: studies, samplers, storages and trial objectives."""
