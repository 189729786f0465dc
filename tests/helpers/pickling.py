"""Ray's workers cannot import a test module: its objectives and functions travel by value."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType


@contextmanager
def pickled_by_value(module: ModuleType) -> Iterator[None]:
    """Ray (cloudpickle) ships ``module``'s objects by value for the block's length."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        ray.cloudpickle.unregister_pickle_by_value(module)
