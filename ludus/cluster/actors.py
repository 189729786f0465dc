"""Long-lived trial actors (one set per job) and the pruning broker.

A trial actor keeps what every trial of its job shares: the job's data (one ``ray.put`` on the driver, fetched
once per actor and moved to the actor's device) and the objective itself (one ``ray.put`` per search, cached
per actor). A trial then costs one small message each way: parameters in, a TrialOutcome out.

Pruning: the driver owns the real Optuna study, which may live in memory or in a database the nodes cannot
reach. A small :class:`PruneBroker` actor next to the driver keeps a *mirror* study (same direction and
pruner, seeded with the real study's finished trials) and answers ``should_prune`` from it; intermediate values
also travel back with the outcome and are written into the real study when the trial is told. If the broker
is unreachable, trials simply are not pruned: pruning saves time, it never decides correctness.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from collections import OrderedDict
from typing import Any

from ludus.cluster.placement import ARCH_LABEL, ARCH_RESOURCE_PREFIX, normalize_arch


def _to_device(obj: Any, device: str) -> Any:
    """Move torch tensors inside dicts/lists/tuples to ``device`` (other objects unchanged)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_device(v, device) for v in obj]
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_to_device(v, device) for v in obj)
    return obj


def _node_arch() -> str:
    """This node's architecture as the cluster marks it (resource, then label), else the machine's."""
    import ray

    ctx = ray.get_runtime_context()
    node_id = ctx.get_node_id()
    try:
        label = ctx.get_node_labels().get(ARCH_LABEL)
    except Exception:  # noqa: BLE001 - older Ray without labels
        label = None
    for node in ray.nodes():
        if node.get("NodeID") == node_id:
            for key in node.get("Resources", {}):
                if key.startswith(ARCH_RESOURCE_PREFIX):
                    return normalize_arch(key[len(ARCH_RESOURCE_PREFIX) :])
    return normalize_arch(label or platform.machine())


def _pin_torch_threads() -> int:
    """torch on as many threads as the CPUs Ray gave this actor (a fraction: one), never on every core of
    the node: N actors of one CPU each with N torch threads apiece oversubscribe the node N-fold."""
    import ray

    try:
        cpus = float(ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0))
    except Exception:  # noqa: BLE001 - an older Ray: one thread is the safe choice
        cpus = 1.0
    n = max(1, int(cpus))
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
    return n


class ActorTrialContext:
    """TrialContext on an actor: params fixed by the driver; report/should_prune go to the broker."""

    def __init__(self, params: dict[str, Any], number: int, broker: Any, device: str, data: Any) -> None:
        self.params = params
        self.number = number
        self.device = device
        self.data = data
        self.reported: list[tuple[int, float]] = []
        self.user_attrs: dict[str, Any] = {}
        self._broker = broker

    def set_user_attr(self, key: str, value: Any) -> None:
        """Kept here and written on the trial by the driver when it is told."""
        self.user_attrs[str(key)] = value

    def report(self, value: float, step: int) -> None:
        value = float(value)
        self.reported.append((int(step), value))
        if self._broker is not None:
            try:
                # fire and forget; calls from one caller to one actor run in order, so should_prune sees it
                self._broker.report.remote(self.number, int(step), value)
            except Exception:  # noqa: BLE001 - the prune broker is optional: lose it, keep the trial
                self._broker = None

    def should_prune(self) -> bool:
        if self._broker is None:
            return False
        import ray

        try:
            return bool(ray.get(self._broker.should_prune.remote(self.number), timeout=30))
        except Exception:  # noqa: BLE001 - the prune broker is optional
            self._broker = None  # broker gone: carry on unpruned
            return False


class LudusTrialActor:
    """A trial actor's body (Ray actor class via :func:`trial_actor_class`; the dashboard shows this name)."""

    def __init__(self, name: str, data_box: list | None, device_pref: str = "auto") -> None:
        import ray

        self.name = name
        self._data_box = data_box  # [ObjectRef] boxed so Ray does not resolve it at creation
        self._data: Any = None
        self._data_loaded = False
        self._fns: OrderedDict[str, Any] = OrderedDict()
        gpu_ids = ray.get_gpu_ids()
        threads = _pin_torch_threads()
        self.device = "cpu"
        if device_pref != "cpu" and gpu_ids:
            try:
                import torch

                if torch.cuda.is_available():
                    self.device = "cuda"
            except ImportError:  # pragma: no cover
                pass
        self.info = {
            "actor": name,
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "host": socket.gethostname(),
            "arch": _node_arch(),
            "machine": platform.machine(),
            "device": self.device,
            "gpu_ids": [str(g) for g in gpu_ids],
            "torch_threads": threads,
        }
        self.trials_run = 0

    def ping(self) -> dict[str, Any]:
        return dict(self.info, trials_run=self.trials_run)

    def pid(self) -> int:
        return os.getpid()

    def _load_data(self) -> Any:
        if not self._data_loaded:
            import ray

            if self._data_box:
                self._data = _to_device(ray.get(self._data_box[0]), self.device)
            self._data_loaded = True
        return self._data

    def _fn(self, fn_box: list) -> Any:
        import ray

        key = fn_box[0].hex()
        fn = self._fns.get(key)
        if fn is None:
            fn = ray.get(fn_box[0])
            self._fns[key] = fn
            while len(self._fns) > 4:  # functions of finished searches/maps
                self._fns.popitem(last=False)
        else:
            self._fns.move_to_end(key)
        return fn

    def run_trial(self, fn_box: list, number: int, params: dict[str, Any], broker: Any) -> tuple[Any, dict]:
        """Run one trial; returns (TrialOutcome, where-it-ran info). Trial-level errors become FAIL outcomes."""
        from ludus.search.trial import TrialOutcome, evaluate

        started = time.perf_counter()
        try:
            fn = self._fn(fn_box)
            data = self._load_data()
        except Exception as exc:  # noqa: BLE001 - reported as the trial's failure, with the reason
            outcome = TrialOutcome.failed(f"actor could not load the objective or data: {type(exc).__name__}: {exc}")
            return outcome, dict(self.info)
        ctx = ActorTrialContext(params, number, broker, self.device, data)
        outcome = evaluate(fn, ctx)
        outcome.intermediate = list(ctx.reported)
        self.trials_run += 1
        info = dict(self.info, wall_s=time.perf_counter() - started, user_attrs=ctx.user_attrs)
        return outcome, info

    def map_item(self, fn_box: list, item: Any) -> Any:
        """``fn(item)``; exceptions propagate to the driver (a map is not a search: errors are errors)."""
        return self._fn(fn_box)(item)


class LudusPruneBroker:
    """Body of the Ray actor answering ``should_prune`` from a mirror of the study (see module doc)."""

    def __init__(self, directions: list[Any], pruner: Any, finished: list[Any]) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._study = optuna.create_study(
            directions=directions, pruner=pruner, storage=optuna.storages.InMemoryStorage()
        )
        if finished:
            self._study.add_trials(finished)
        self._storage = self._study._storage
        self._study_id = self._study._study_id
        self._ids: dict[int, int] = {}

    def _trial_id(self, number: int) -> int:
        tid = self._ids.get(number)
        if tid is None:
            tid = self._storage.create_new_trial(self._study_id)
            self._ids[number] = tid
        return tid

    def report(self, number: int, step: int, value: float) -> None:
        self._storage.set_trial_intermediate_value(self._trial_id(number), step, value)

    def should_prune(self, number: int) -> bool:
        trial = self._storage.get_trial(self._trial_id(number))
        if not trial.intermediate_values:
            return False
        return bool(self._study.pruner.prune(self._study, trial))

    def finish(self, number: int, state: Any, value: float | None, intermediate: list[tuple[int, float]]) -> None:
        from optuna.trial import TrialState

        tid = self._trial_id(number)
        for step, v in intermediate:
            self._storage.set_trial_intermediate_value(tid, step, v)
        values = [value] if state == TrialState.COMPLETE and value is not None else None
        try:
            self._storage.set_trial_state_values(tid, state, values)
        except RuntimeError:
            pass  # already finished (a retried trial)


_classes: dict[str, Any] = {}


def trial_actor_class():
    """The Ray actor class of trial actors (defined lazily: importing this module does not need Ray up)."""
    if "trial" not in _classes:
        import ray

        # max_restarts=0: a dead actor stays dead; the dispatcher re-runs its trial elsewhere and replaces it
        _classes["trial"] = ray.remote(max_restarts=0, max_task_retries=0)(LudusTrialActor)
    return _classes["trial"]


def prune_broker_class():
    if "broker" not in _classes:
        import ray

        _classes["broker"] = ray.remote(num_cpus=0, max_restarts=0)(LudusPruneBroker)
    return _classes["broker"]
