"""RayExecutor: a job's Optuna study stays on the driver; its trials run on long-lived Ray actors.

How a search runs
-----------------
- Actors: created per job (per executor), as many as the allowed nodes hold (``Settings.max_actors`` at most),
  spread over nodes, each asking for ``Settings.gpus_per_trial`` GPUs where the architecture has GPUs. They
  stay up for every search and map of the job and are killed by :meth:`RayExecutor.close`.
- The pool grows with the cluster: every ``grow_interval_s`` the driver looks at the alive nodes again and
  starts actors where allowed nodes have room the pool does not use yet, so nodes that join mid-job (the
  autoscaler answering the backlog) get trials at once. On a cluster that can grow (``wait_for_nodes``: any
  Ray address but an in-process local Ray) a job that arrives before any allowed node exists waits for one
  (``actor_start_timeout_s``, then a TransientError the worker retries) instead of being rejected; on a local
  Ray, which never gains nodes, an unsatisfiable placement is an InputError at once.
- Dispatch: whenever actors are idle, the driver asks the study for that many trials at once (the sampler is
  TPE with constant liar, so trials in flight are "lied" about and parallel trials spread out) and hands one
  to each idle actor; results are told back as they arrive (``ray.wait``), so a faster node simply gets
  more trials. The objective is ``ray.put`` once per search and the job's data once per job; an actor fetches
  each once and caches it.
- Pruning: see :mod:`ludus.cluster.actors` (a broker actor mirrors the study; values come back with results).

Failures (the contract of ``ludus.search.trial.BaseExecutor``; its ``TrialBudget`` does the counting)
--------
- An actor or its node dies mid-trial (``ActorDiedError``, node removal, OOM kill): the *same* Optuna trial
  (same number, same parameters, still RUNNING in the study) is re-run on another actor, and a replacement
  actor is started where resources allow. The trial records ``retries`` and ``retry_reasons``. After
  ``max_attempts`` deaths the trial is told FAIL with the reason (a trial that kills every actor it touches is
  the trial's fault). Re-running the same trial keeps the sampler's view exact (no duplicate point), leaves the
  study free of infrastructure noise, and a lost actor never uses up a trial of the budget.
- The objective raises (diverging loss, NaN): the trial is told FAIL with the reason in the user attribute
  ``fail_reason`` and counts towards ``n_trials`` like every ending; the search goes on until the contract's
  give-up rules (``max_failures``, or the first trials all failing) raise :class:`TooManyFailedTrials`.
- Whatever stops a search (error, Ctrl-C), no trial is left RUNNING: trials in flight are told FAIL with why.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ludus.cluster import metrics
from ludus.cluster.actors import prune_broker_class, trial_actor_class
from ludus.cluster.placement import ActorGroup, PlacementSpec, allocate, cluster_nodes, plan_groups
from ludus.config import Settings
from ludus.constants import RAY_NAMESPACE
from ludus.errors import LudusError, TransientError
from ludus.search.trial import (
    BaseExecutor,
    TooManyFailedTrials,
    TrialOutcome,
    tell_trial,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


__all__ = ["RayExecutor", "TooManyFailedTrials", "connect"]


def connect(settings: Settings | None = None, *, address: str | None = None, **init_kwargs: Any):
    """Connect to Ray once per process: ``address`` / ``Settings.ray_address`` (``"auto"`` = the local head),
    else start a local Ray in this process (the embedded default). Returns the ``ray`` module."""
    import os

    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    import ray

    if ray.is_initialized():
        return ray
    target = address or (settings.ray_address if settings is not None else None)
    kwargs: dict[str, Any] = {"namespace": RAY_NAMESPACE, "ignore_reinit_error": True, "log_to_driver": False}
    kwargs.update(init_kwargs)
    # "local": a new in-process instance even when another Ray runs on this machine (plain ray.init() would
    # join that one through /tmp/ray/ray_current_cluster)
    kwargs["address"] = target or "local"
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        raise TransientError(
            f"no Ray cluster reachable at {target or 'a new local instance'}: {exc} (start one "
            "with `ray start --head`, or unset LUDUS_RAY_ADDRESS for a local Ray)"
        ) from exc
    return ray


def _ray_errors():
    from ray import exceptions as rex

    lost = tuple(
        getattr(rex, name)
        for name in (
            "RayActorError",
            "ActorDiedError",
            "ActorUnavailableError",
            "WorkerCrashedError",
            "NodeDiedError",
            "ObjectLostError",
            "OwnerDiedError",
            "OutOfMemoryError",
            "ObjectFetchTimedOutError",
            "ReferenceCountingAssertionError",
        )
        if hasattr(rex, name)
    )
    return rex.RayTaskError, lost


@dataclass
class _Actor:
    name: str
    handle: Any
    group: ActorGroup
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Flight:
    trial: Any  # optuna.Trial
    params: dict[str, Any]
    attempt: int = 1
    reasons: list[str] = field(default_factory=list)


class _QueueSend:
    """The picklable sending end of :meth:`RayExecutor.channel`."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def __call__(self, message: Any) -> None:
        try:
            self.queue.put(message, timeout=30)
        except Exception:  # progress is best effort: losing an event never fails the work
            log.warning("could not send a message to the driver", exc_info=True)


class _QueueDrain:
    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def __call__(self) -> list[Any]:
        out: list[Any] = []
        try:
            while True:
                n = self.queue.qsize()
                if not n:
                    return out
                out += self.queue.get_nowait_batch(n)
        except Exception:  # noqa: BLE001 - the queue is gone (executor closed)
            return out


class RayExecutor(BaseExecutor):
    """The search layer's executor contract on Ray actors (see the module doc for dispatch, pruning and
    failure handling)."""

    def __init__(
        self,
        settings: Settings,
        placement: Any = None,
        *,
        job_id: Any = None,
        data: Any = None,
        max_actors: int | None = None,
        actor_start_timeout_s: float = 180.0,
        max_attempts: int = 3,
        max_failures: int | None = None,
        wait_for_nodes: bool | None = None,
        grow_interval_s: float = 2.0,
    ) -> None:
        self.settings = settings
        # a Ray cluster may gain nodes (autoscaler, KEDA); the in-process local Ray never does
        self.wait_for_nodes = settings.ray_address is not None if wait_for_nodes is None else bool(wait_for_nodes)
        self.grow_interval_s = float(grow_interval_s)
        self._next_grow = 0.0
        self.spec = PlacementSpec.from_any(placement)
        self.job_id = str(job_id or uuid.uuid4())
        self.tag = self.job_id.replace("-", "")[:8]
        self.max_actors = int(max_actors or settings.max_actors)
        self.actor_start_timeout_s = float(actor_start_timeout_s)
        self.max_attempts = max(1, int(max_attempts))
        self.max_failures = max_failures
        self._ray = connect(settings)
        self._data_box = [self._ray.put(data)] if data is not None else None
        self._actors: dict[str, _Actor] = {}
        self._idle: deque[_Actor] = deque()
        self._starting: dict[Any, _Actor] = {}  # ping ref -> actor not yet placed
        self._target = 0
        self._counter = itertools.count()
        self._start_failures = 0
        self._last_progress = time.monotonic()
        self._closed = False
        self.retries = 0  # trials re-run after an actor died (for tests and progress)
        self._channels: list[Any] = []

    @classmethod
    def for_job(cls, job: Any, settings: Settings, *, data: Any = None, **kwargs: Any) -> RayExecutor:
        """An executor for one OptimizationJob (its id names the actors, its ``placement`` places them)."""
        return cls(settings, getattr(job, "placement", None), job_id=getattr(job, "job_id", None), data=data, **kwargs)

    # --- actors ------------------------------------------------------------------------------------------

    def _plan(self, *, strict: bool = False) -> list[ActorGroup]:
        return plan_groups(
            cluster_nodes(),
            self.spec,
            gpus_per_actor=self.settings.gpus_per_trial,
            cpus_per_actor=self.settings.cpus_per_actor,
            device=self.settings.device,
            strict=strict,
        )

    def _start_actor(self, group: ActorGroup) -> _Actor:
        cls = trial_actor_class()
        i = next(self._counter)
        name = f"ludus-trial-{self.tag}-{group.arch}-{i}"
        opts = dict(group.ray_options(), name=name, namespace=RAY_NAMESPACE)
        try:
            handle = cls.options(**opts).remote(name, self._data_box, self.settings.device)
        except ValueError:  # the same job running twice at once: keep names unique
            name = f"{name}-{uuid.uuid4().hex[:4]}"
            opts["name"] = name
            handle = cls.options(**opts).remote(name, self._data_box, self.settings.device)
        actor = _Actor(name, handle, group)
        self._actors[name] = actor
        self._starting[handle.ping.remote()] = actor
        return actor

    def _grow(self, *, strict: bool = False) -> int:
        """Start actors where allowed nodes have room the pool does not use yet (``max_actors`` in all).

        The same allocation as a fresh start would make on today's nodes, minus the actors the pool already
        has per architecture: a node that joined gets its share, nothing already running is moved. Returns
        how many actors were started."""
        self._next_grow = time.monotonic() + self.grow_interval_s
        room = self.max_actors - len(self._actors)
        if room <= 0:
            return 0
        plan = allocate(self._plan(strict=strict), self.max_actors, self.spec)
        live = Counter(a.group.arch for a in self._actors.values())
        started: Counter[str] = Counter()
        for group, want in plan:
            for _ in range(max(0, min(want - live[group.arch], room - sum(started.values())))):
                self._start_actor(group)
                started[group.arch] += 1
        self._target = max(self._target, len(self._actors))
        if started:
            log.info(
                "job %s: %d more trial actor(s) (%s); pool %d of at most %d",
                self.tag,
                sum(started.values()),
                ", ".join(f"{arch} x{n}" for arch, n in started.items()),
                len(self._actors),
                self.max_actors,
            )
        return sum(started.values())

    def _maybe_grow(self) -> None:
        """:meth:`_grow` at most every ``grow_interval_s`` (it asks the GCS for the node list)."""
        if time.monotonic() >= self._next_grow and len(self._actors) < self.max_actors and not self._closed:
            try:
                self._grow()
            except Exception as exc:  # noqa: BLE001 - growing is opportunistic; the next tick retries
                log.warning("job %s: could not grow the actor pool: %s", self.tag, exc)

    def _ensure_pool(self) -> None:
        """Make sure the pool has actors and at least one is ready; waits for capacity on a growing cluster."""
        self._check_open()
        if self._actors:
            return
        self._grow(strict=not self.wait_for_nodes)
        self._last_progress = time.monotonic()
        deadline = self._last_progress + self.actor_start_timeout_s
        if not self._actors:
            log.info(
                "job %s: no allowed node can hold a trial actor yet (placement %s); waiting up to %gs for "
                "nodes to join",
                self.tag,
                self.spec.describe(),
                self.actor_start_timeout_s,
            )
        while not self._idle:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise TransientError(
                    f"no trial actor could be placed within {self.actor_start_timeout_s:g}s "
                    f"(placement {self.spec.describe()}; Ray resources {self._resources_text()})"
                )
            step = min(left, self.grow_interval_s)
            if self._starting:
                ready, _ = self._ray.wait(list(self._starting), num_returns=1, timeout=step)
                for ref in ready:
                    self._on_started(ref)
            else:
                time.sleep(step)
            if not self._idle:
                self._maybe_grow()

    def start(self, *, wait_all: bool = False, timeout_s: float | None = None) -> int:
        """Create the job's actors now (run/map do it on first use) and return how many are ready.

        Searches begin as soon as one actor is ready and the others join as they come up; ``wait_all`` waits
        for every placeable actor first (benchmarks, tests, or to fail fast on a misconfigured cluster)."""
        self._ensure_pool()
        if wait_all and self._starting:
            ready, _ = self._ray.wait(
                list(self._starting),
                num_returns=len(self._starting),
                timeout=self.actor_start_timeout_s if timeout_s is None else timeout_s,
            )
            for ref in ready:
                self._on_started(ref)
        return len(self._idle)

    def _resources_text(self) -> str:
        try:
            res = self._ray.cluster_resources()
            return ", ".join(f"{k}={v:g}" for k, v in sorted(res.items()) if not k.startswith("node:"))
        except Exception:  # noqa: BLE001 - only decorates an error message
            return "unknown"

    def _on_started(self, ref: Any) -> None:
        actor = self._starting.pop(ref)
        try:
            actor.info = self._ray.get(ref)
        except Exception as exc:
            self._start_failures += 1
            self._drop(actor)
            log.warning("trial actor %s failed to start: %s", actor.name, exc)
            if self._start_failures > 2 * max(1, self._target):
                raise TransientError(f"trial actors keep failing to start: {type(exc).__name__}: {exc}") from exc
            self._replace()
            return
        self._idle.append(actor)
        self._last_progress = time.monotonic()

    def _drop(self, actor: _Actor) -> None:
        self._actors.pop(actor.name, None)
        try:
            self._idle.remove(actor)
        except ValueError:
            pass
        try:
            self._ray.kill(actor.handle, no_restart=True)
        except Exception:  # noqa: BLE001 - the actor may already be gone
            pass

    def _replace(self) -> None:
        """Start actors to replace lost ones, where allowed nodes still have room."""
        try:
            self._grow()
        except LudusError:
            pass  # no allowed node left for now; the remaining actors carry on, and new nodes are picked up

    def _lose(self, actor: _Actor, reason: str) -> None:
        log.warning("trial actor %s lost: %s", actor.name, reason)
        self._drop(actor)
        if not self._closed:
            self._replace()

    def actors(self, *, include_starting: bool = False) -> list[dict[str, Any]]:
        """Placed actors: name, pid, node_id, arch, device (for status output and tests); with
        ``include_starting`` also those Ray has not placed yet (``ready: False``, name and arch only)."""
        out = []
        for a in self._actors.values():
            if a.info:
                out.append(dict(a.info, ready=True))
            elif include_starting:
                out.append({"actor": a.name, "arch": a.group.arch, "ready": False})
        return out

    def _wait(self, refs: list, timeout: float) -> list:
        ready, rest = self._ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = self._ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        return ready

    def _check_stalled(self, busy: int) -> None:
        """Called while dispatching: grow the pool when nodes joined; fail when nothing could run for too long."""
        self._maybe_grow()
        if busy or self._idle:
            return
        if not self._starting:
            self._replace()  # every actor died: start new ones as soon as an allowed node has room
        if time.monotonic() - self._last_progress > self.actor_start_timeout_s:
            raise TransientError(
                f"no trial actor available for {self.actor_start_timeout_s:g}s "
                f"(placement {self.spec.describe()}; Ray resources {self._resources_text()})"
            )

    # --- search ------------------------------------------------------------------------------------------

    def _make_broker(self, study: Any) -> Any:
        import optuna
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if isinstance(study.pruner, optuna.pruners.NopPruner) or len(study.directions) != 1:
            return None
        finished = study.get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        )
        here = self._ray.get_runtime_context().get_node_id()
        return (
            prune_broker_class()
            .options(
                name=f"ludus-pruner-{self.tag}-{uuid.uuid4().hex[:4]}",
                namespace=RAY_NAMESPACE,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=True),
            )
            .remote(list(study.directions), study.pruner, finished)
        )

    def run(
        self,
        study: Any,
        trial_fn: Callable[[Any], float],
        n_trials: int,
        timeout_s: float | None = None,
        on_trial_done: Callable[[Any, Any], None] | None = None,
    ) -> None:
        """Run ``n_trials`` new trials on the actors, keeping the contract of ``BaseExecutor``: failed trials
        count, a trial whose actor died runs again as the same trial, ``timeout_s`` stops new trials only."""
        self._check_open()
        if n_trials <= 0:
            return
        budget = self._budget(study, n_trials, timeout_s, on_trial_done)  # the clock starts now, pool start included
        self._ensure_pool()
        task_error, lost = _ray_errors()
        fn_box = [self._ray.put(trial_fn)]
        broker = self._make_broker(study)
        flights: dict[Any, tuple[_Flight, _Actor]] = {}  # ref -> the trial and the actor it runs on
        retry: deque[_Flight] = deque()

        def dispatch(flight: _Flight) -> None:
            actor = self._idle.popleft()
            ref = actor.handle.run_trial.remote(fn_box, flight.trial.number, flight.params, broker)
            flights[ref] = flight, actor

        with budget:
            try:
                while True:
                    while self._idle and retry:
                        dispatch(retry.popleft())  # started trials first, deadline or not: they must finish
                    while self._idle and budget.may_start():
                        dispatch(_Flight(*budget.ask(trial_fn)))
                    if not flights and not retry and not budget.may_start():
                        break
                    self._check_stalled(len(flights))
                    left = budget.seconds_left()
                    timeout = 1.0 if left is None or left <= 0 else min(1.0, left)
                    for ref in self._wait(list(flights) + list(self._starting), timeout):
                        if ref in self._starting:
                            self._on_started(ref)
                            continue
                        flight, actor = flights.pop(ref)
                        try:
                            outcome, info = self._ray.get(ref)
                        except task_error as exc:  # our actor code itself raised: a failure of this trial
                            outcome, info = TrialOutcome.failed(f"actor error: {exc}"), dict(actor.info)
                            self._idle.append(actor)
                        except lost as exc:
                            reason = (
                                f"{type(exc).__name__} on {actor.name} ({actor.info.get('arch', '?')} "
                                f"node {str(actor.info.get('node_id', '?'))[:8]})"
                            )
                            self._lose(actor, reason)
                            flight.reasons.append(reason)
                            self.retries += 1
                            metrics.trial_retried(self.job_id, actor.info.get("arch"))
                            if flight.attempt < self.max_attempts:
                                flight.attempt += 1
                                retry.append(flight)
                                continue
                            outcome, info = TrialOutcome.failed(f"its actor died {flight.attempt} times: {reason}"), {}
                        else:
                            self._idle.append(actor)
                        self._last_progress = time.monotonic()
                        budget.told(self._tell(study, flight, outcome, info, broker))
            finally:
                # the budget tells the trials still in flight FAIL on the way out; here their actors are freed
                for ref, (_, actor) in flights.items():
                    finished, _ = self._ray.wait([ref], timeout=0)
                    if finished:
                        self._idle.append(actor)
                    else:
                        # its trial is still running there; a fresh actor is cheaper than waiting for it
                        self._lose(actor, "abandoned with a running trial")
                if broker is not None:
                    try:
                        self._ray.kill(broker, no_restart=True)
                    except Exception:  # noqa: BLE001 - the broker may already be gone
                        pass
                fn_box.clear()  # drop the object-store reference now, not when the closures go

    def _tell(self, study: Any, flight: _Flight, outcome: Any, info: dict[str, Any], broker: Any) -> Any:
        trial = flight.trial
        if len(study.directions) == 1:
            for step, value in outcome.intermediate:
                try:
                    trial.report(float(value), int(step))
                except Exception:  # noqa: BLE001 - see below
                    pass  # a non-finite value or a repeated step: not worth failing the trial
        for key, value in (info.get("user_attrs") or {}).items():
            try:
                trial.set_user_attr(key, value)
            except Exception:  # noqa: BLE001 - logged; one bad attribute must not fail the trial
                log.warning("trial %s: user attribute %r is not JSON-serializable; dropped", trial.number, key)
        if info:
            trial.set_user_attr("node", {k: info.get(k) for k in ("arch", "node_id", "host", "actor", "device")})
            trial.set_user_attr("arch", info.get("arch"))
        if flight.reasons:
            trial.set_user_attr("retries", len(flight.reasons))
            trial.set_user_attr("retry_reasons", flight.reasons[-3:])
        frozen = tell_trial(study, trial, outcome)
        metrics.trial_finished(self.job_id, info.get("arch"), frozen.state.name, outcome.duration_s)
        if broker is not None:
            try:
                broker.finish.remote(trial.number, frozen.state, frozen.value, outcome.intermediate)
            except Exception:  # noqa: BLE001 - the broker may already be gone
                pass
        return frozen

    # --- map ---------------------------------------------------------------------------------------------

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(x) for x in items]`` spread over the job's actors (order kept). An item whose actor dies is
        re-run elsewhere; an exception from ``fn`` is raised here."""
        self._check_open()
        items = list(items)
        if not items:
            return []
        self._ensure_pool()
        task_error, lost = _ray_errors()
        fn_box = [self._ray.put(fn)]
        results: list[Any] = [None] * len(items)
        todo = deque(range(len(items)))
        flights: dict[Any, tuple[int, _Actor]] = {}
        attempts: Counter[int] = Counter()
        try:
            while todo or flights:
                self._start_items(fn_box, items, todo, flights)
                for ref in self._wait(list(flights) + list(self._starting), 1.0):
                    if ref in self._starting:
                        self._on_started(ref)
                        continue
                    i, actor = flights.pop(ref)
                    try:
                        results[i] = self._ray.get(ref)
                    except task_error as exc:
                        self._idle.append(actor)
                        raise exc.as_instanceof_cause() from None
                    except lost as exc:
                        self._lose(actor, f"{type(exc).__name__} during map")
                        attempts[i] += 1
                        if attempts[i] >= self.max_attempts:
                            raise TransientError(
                                f"map item {i}: its actor died {attempts[i]} times ({type(exc).__name__})"
                            ) from exc
                        todo.appendleft(i)
                    else:
                        self._idle.append(actor)
                        self._last_progress = time.monotonic()
        finally:
            # actors still busy with items of an aborted map finish them first, then serve the next call
            for _, actor in flights.values():
                if actor.name in self._actors:
                    self._idle.append(actor)
            fn_box.clear()  # drop the object-store reference now, not when the closures go
        return results

    def _start_items(
        self, fn_box: list[Any], items: list[Any], todo: deque[int], flights: dict[Any, tuple[int, _Actor]]
    ) -> None:
        """Hand the next items of ``todo`` to the idle actors (into ``flights``: ref -> (index, actor)), then
        check that the pool is not stalled (map and imap_unordered)."""
        while self._idle and todo:
            i = todo.popleft()
            actor = self._idle.popleft()
            flights[actor.handle.map_item.remote(fn_box, items[i])] = (i, actor)
        self._check_stalled(len(flights))

    # --- independent work items (a universe job's symbols) ---------------------------------------------------

    def prestart(self) -> None:
        """Start the pool's actors now without waiting for them (they come up while the job loads its data)."""
        self._check_open()
        if not self._actors:
            self._grow(strict=not self.wait_for_nodes)

    def capacity(self) -> int:
        """How many work items can run at once: the actors the pool has or is starting (at least 1)."""
        return max(1, len(self._actors))

    def channel(self) -> tuple[Callable[[Any], None], Callable[[], list[Any]]]:
        """``(send, drain)``: ``send`` is picklable and goes with work to the actors; ``drain()`` on the driver
        returns what was sent since the last drain, in the order sent by each sender (progress events of
        work still in flight). A send returns once the message is queued, so everything a work item sent is
        drained before its result is seen."""
        from ray.util.queue import Queue

        queue = Queue(
            actor_options={
                "num_cpus": 0,
                "name": f"ludus-channel-{self.tag}-{uuid.uuid4().hex[:4]}",
                "namespace": RAY_NAMESPACE,
            }
        )
        self._channels.append(queue)
        return _QueueSend(queue), _QueueDrain(queue)

    def imap_unordered(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        on_tick: Callable[[], None] | None = None,
    ) -> Iterable[tuple[int, R | None, BaseException | None]]:
        """``fn(item)`` for every item on the pool's actors, as many at once as there are actors; yields
        ``(index, result, None)`` or ``(index, None, error)`` as each one finishes (not in order). An error
        raised by ``fn`` ends only that item; an item whose actor died is re-run elsewhere (``max_attempts``).
        ``on_tick()`` is called at least once a second while items are in flight."""
        self._check_open()
        items = list(items)
        if not items:
            return
        self._ensure_pool()
        task_error, lost = _ray_errors()
        fn_box = [self._ray.put(fn)]
        todo = deque(range(len(items)))
        flights: dict[Any, tuple[int, _Actor]] = {}
        attempts: Counter[int] = Counter()
        try:
            while todo or flights:
                self._start_items(fn_box, items, todo, flights)
                ready = self._wait(list(flights) + list(self._starting), 1.0)
                if on_tick is not None:
                    on_tick()
                for ref in ready:
                    if ref in self._starting:
                        self._on_started(ref)
                        continue
                    i, actor = flights.pop(ref)
                    try:
                        result = self._ray.get(ref)
                    except task_error as exc:
                        self._idle.append(actor)
                        yield i, None, exc.as_instanceof_cause()
                    except lost as exc:
                        self._lose(actor, f"{type(exc).__name__} during a work item")
                        attempts[i] += 1
                        if attempts[i] >= self.max_attempts:
                            yield (
                                i,
                                None,
                                TransientError(
                                    f"work item {i}: its actor died {attempts[i]} times ({type(exc).__name__})"
                                ),
                            )
                        else:
                            todo.appendleft(i)
                    else:
                        self._idle.append(actor)
                        self._last_progress = time.monotonic()
                        yield i, result, None
        finally:
            for ref, (_, actor) in flights.items():
                finished, _ = self._ray.wait([ref], timeout=0)
                if finished:
                    self._idle.append(actor)
                else:
                    self._lose(actor, "abandoned with a running work item")
            fn_box.clear()

    # --- lifetime ----------------------------------------------------------------------------------------

    def _release(self) -> None:
        """Kill the job's actors (``close``; once)."""
        for actor in list(self._actors.values()):
            self._drop(actor)
        for queue in self._channels:
            try:
                queue.shutdown()
            except Exception:  # noqa: BLE001 - the queue actor may already be gone
                pass
        self._channels.clear()
        self._starting.clear()
        self._idle.clear()
        self._data_box = None
