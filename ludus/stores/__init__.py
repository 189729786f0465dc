"""Persistence of results: OptimizedParameters, the jobs table, the model registry."""
