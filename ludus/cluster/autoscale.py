"""Backlog-driven autoscaling inside Ray: the job backlog becomes a standing request for GPU bundles.

Ray's autoscaler (KubeRay's in-tree autoscaler on Kubernetes, or any Ray cluster launcher) scales on
*pending resource demand*. Jobs waiting in RabbitMQ, or running between two searches, are invisible to it, so
the head turns the backlog into ``ray.autoscaler.sdk.request_resources(bundles=...)``: one ``{"GPU": 1,
"arch:<a>": 0.001}`` bundle per GPU the backlog justifies. The tiny ``arch:`` amount pins a bundle to a node
type of that architecture (every Ludus node advertises ``arch:<a>: 1000``) without consuming it.

Three parts:

- :class:`Backlog` is what waits for capacity: ready messages (their placement is unknown until a worker reads
  them) and unfinished jobs (accepted or running; their ``placement`` says which architectures may run them).
  It is also the signal KEDA scales on (``/backlog`` of the worker, :meth:`Backlog.to_dict`): per architecture,
  the jobs that may run there. A running job stays in it until it finishes, so its nodes stay up.
- :func:`decide` is the pure policy: backlog -> desired GPUs within ``[min, max]``; scale up at once,
  scale down only after the backlog has stayed low for the cooldown.
- :class:`QueueDepthAutoscaler` is the small loop the worker runs: it reads the backlog through a
  function it is given (this module never imports the queue or the worker), applies the policy, splits the
  GPUs over the architectures the backlog's jobs allow, and issues or releases the resource request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ludus import constants as c
from ludus.cluster.placement import PlacementSpec
from ludus.config import Settings
from ludus.errors import InputError

log = logging.getLogger(__name__)

#: Amount of the architecture resource each bundle asks for: enough to select a node type, far too
#: little to ever exhaust the 1000 units a node advertises.
ARCH_BUNDLE_AMOUNT = 0.001

RequestFn = Callable[..., None]


@dataclass(frozen=True)
class Backlog:
    """Jobs waiting for capacity: ``ready`` messages in the queue plus ``jobs`` recorded but not finished.

    A ready message may run anywhere as far as anyone knows (its placement is read only when a worker takes
    it); an unfinished job only where its placement allows. ``oldest_age_s`` is the age of the oldest
    unfinished job; ``stale`` says the numbers are the last ones read because the database or broker did not
    answer just now (scaling keeps its course instead of dropping to zero).
    """

    ready: int = 0
    jobs: tuple[PlacementSpec, ...] = ()
    oldest_age_s: float = 0.0
    stale: bool = False
    architectures: tuple[str, ...] = field(default=c.ARCHITECTURES)

    @classmethod
    def of(cls, ready: int, placements: Iterable[object] = (), **kwargs: object) -> Backlog:
        """From the ready-message count and the ``placement`` of every unfinished job (dicts, models, None)."""
        return cls(ready=max(0, int(ready)), jobs=tuple(PlacementSpec.from_any(p) for p in placements), **kwargs)  # type: ignore[arg-type]

    @property
    def total(self) -> int:
        return self.ready + len(self.jobs)

    def for_arch(self, arch: str) -> int:
        """Ready messages plus the unfinished jobs whose placement allows ``arch``."""
        return self.ready + sum(1 for spec in self.jobs if spec.allows(arch))

    def by_arch(self) -> dict[str, int]:
        return {arch: self.for_arch(arch) for arch in self.architectures}

    def shares(self) -> dict[str, float]:
        """Weights for splitting GPUs over architectures (empty when there is no backlog).

        Each job weighs 1: all of it on its preferred architecture when that is allowed, else shared evenly by
        the architectures it allows; a ready message is shared by all of them.
        """
        weights = dict.fromkeys(self.architectures, 0.0)
        every = list(self.architectures)
        for arch in every:
            weights[arch] += self.ready / len(every)
        for spec in self.jobs:
            allowed = [a for a in every if spec.allows(a)]
            preferred = [a for a in spec.prefer if a in allowed]
            targets = preferred or allowed
            for arch in targets:
                weights[arch] += 1.0 / len(targets)
        return {a: w for a, w in weights.items() if w > 0}

    def to_dict(self) -> dict[str, object]:
        """The JSON the worker serves on ``/backlog`` (KEDA's metrics-api trigger reads ``architectures.<a>``)."""
        return {
            "backlog": self.total,
            "ready": self.ready,
            "unfinished": len(self.jobs),
            "architectures": self.by_arch(),
            "shares": {a: round(w, 6) for a, w in self.shares().items()},
            "oldest_age_s": round(self.oldest_age_s, 3),
            "stale": self.stale,
        }


@dataclass(frozen=True)
class ScalePolicy:
    """Bounds and rates of queue-depth scaling (see :meth:`from_settings`)."""

    jobs_per_gpu: float = 1.0
    min_gpus: int = 0
    max_gpus: int = 8
    cooldown_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.jobs_per_gpu > 0:
            raise InputError("autoscale_jobs_per_gpu", self.jobs_per_gpu, "must be > 0")
        if self.min_gpus < 0:
            raise InputError("autoscale_min_gpus", self.min_gpus, "must be >= 0")
        if self.max_gpus < self.min_gpus:
            raise InputError("autoscale_max_gpus", self.max_gpus, f"must be >= autoscale_min_gpus ({self.min_gpus})")
        if self.cooldown_s < 0:
            raise InputError("autoscale_cooldown_s", self.cooldown_s, "must be >= 0")

    @classmethod
    def from_settings(cls, settings: Settings) -> ScalePolicy:
        return cls(
            jobs_per_gpu=settings.autoscale_jobs_per_gpu,
            min_gpus=settings.autoscale_min_gpus,
            max_gpus=settings.autoscale_max_gpus,
            cooldown_s=settings.autoscale_cooldown_s,
        )

    def target(self, backlog: int) -> int:
        """GPUs the backlog justifies right now, clamped to ``[min_gpus, max_gpus]``."""
        wanted = math.ceil(max(0, backlog) / self.jobs_per_gpu)
        return max(self.min_gpus, min(self.max_gpus, wanted))


@dataclass(frozen=True)
class Decision:
    """Outcome of one policy step."""

    desired: int  # GPUs to request from now on
    target: int  # what the backlog alone would justify
    last_busy_at: float  # last time the backlog justified at least the current count
    reason: str


def decide(policy: ScalePolicy, *, backlog: int, current: int, last_busy_at: float | None, now: float) -> Decision:
    """Pure scaling rule.

    Scale-up (target >= current) takes effect immediately and restarts the cooldown clock.
    Scale-down takes effect only once the backlog has justified fewer GPUs than ``current`` for
    ``cooldown_s`` seconds, so a queue that empties for a moment between jobs keeps its nodes.
    """
    target = policy.target(backlog)
    current = max(policy.min_gpus, min(policy.max_gpus, current))
    if last_busy_at is None:
        last_busy_at = now
    if target >= current:
        reason = "scale-up" if target > current else "steady"
        return Decision(target, target, now, reason)
    quiet_for = now - last_busy_at
    if quiet_for >= policy.cooldown_s:
        return Decision(target, target, last_busy_at, "scale-down")
    return Decision(current, target, last_busy_at, f"cooldown ({quiet_for:.0f}/{policy.cooldown_s:.0f}s)")


def split_by_arch(total: int, arch_split: Mapping[str, float]) -> dict[str, int]:
    """Share ``total`` GPUs among architectures in proportion to the weights (largest remainder).

    Deterministic: ties go to the architecture listed first. Architectures with weight 0 get nothing.
    """
    weights = {a: float(w) for a, w in arch_split.items()}
    for arch, w in weights.items():
        if w < 0 or not math.isfinite(w):
            raise InputError(f"arch_split.{arch}", w, "must be a finite weight >= 0")
    wsum = sum(weights.values())
    if wsum <= 0:
        raise InputError("arch_split", dict(arch_split), "needs at least one positive weight")
    exact = {a: total * w / wsum for a, w in weights.items()}
    shares = {a: math.floor(x) for a, x in exact.items()}
    left = total - sum(shares.values())
    order = sorted(weights, key=lambda a: (-(exact[a] - shares[a]), list(weights).index(a)))
    for arch in order[:left]:
        shares[arch] += 1
    return shares


def bundles_for(total: int, arch_split: Mapping[str, float] | None) -> list[dict[str, float]]:
    """Resource bundles asking for ``total`` GPUs; pinned to architectures when a split is given."""
    if arch_split is None:
        return [{"GPU": 1}] * total
    out: list[dict[str, float]] = []
    for arch, n in split_by_arch(total, arch_split).items():
        out.extend({"GPU": 1, f"{c.ARCH_RESOURCE_PREFIX}{arch}": ARCH_BUNDLE_AMOUNT} for _ in range(n))
    return out


def describe_bundles(bundles: list[dict[str, float]]) -> str:
    """``{x86_64: 2, arm64: 1}``-like summary of GPU bundles by the architecture they are pinned to."""
    counts: dict[str, int] = {}
    for bundle in bundles:
        arch = next((k[len(c.ARCH_RESOURCE_PREFIX) :] for k in bundle if k.startswith(c.ARCH_RESOURCE_PREFIX)), "any")
        counts[arch] = counts.get(arch, 0) + 1
    return "{" + ", ".join(f"{a}: {n}" for a, n in counts.items()) + "}"


def _ray_request_resources(*, bundles: list[dict[str, float]]) -> None:
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=bundles)


class QueueDepthAutoscaler:
    """Keeps Ray's autoscaler asked for as many GPU bundles as the job backlog justifies.

    ``backlog_fn`` returns the backlog: a :class:`Backlog` (the worker's ``backlog_snapshot``: the GPUs are
    split over the architectures its jobs allow) or a plain count, split by the static ``arch_split``
    (architecture -> weight; ``None`` asks for GPUs of any architecture). While the backlog is empty but the
    cooldown keeps GPUs requested, the last split stays. Call :meth:`step` yourself or :meth:`start` a daemon
    thread that steps every ``interval_s``; :meth:`stop` ends it and releases the request.
    """

    def __init__(
        self,
        settings: Settings,
        backlog_fn: Callable[[], Backlog | int],
        *,
        arch_split: Mapping[str, float] | None = None,
        interval_s: float = 5.0,
        request_fn: RequestFn | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = ScalePolicy.from_settings(settings)
        self._backlog_fn = backlog_fn
        self._arch_split = dict(arch_split) if arch_split is not None else None
        if self._arch_split is not None:
            split_by_arch(1, self._arch_split)  # validate the weights now, not in the thread
        self._split = self._arch_split
        self._interval_s = interval_s
        self._request = request_fn or _ray_request_resources
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current = 0
        self.last_busy_at: float | None = None
        self.requested: list[dict[str, float]] | None = None  # None: nothing issued yet
        self.last_decision: Decision | None = None

    def _read(self) -> int:
        """The backlog's size; a Backlog also sets the split of the GPUs over architectures."""
        raw = self._backlog_fn()
        if isinstance(raw, Backlog):
            shares = raw.shares()
            if shares:
                self._split = shares
            return raw.total
        return int(raw)

    def step(self) -> Decision:
        """Read the backlog once, apply the policy and update Ray's request when it changed."""
        with self._lock:
            now = self._clock()
            try:
                backlog = self._read()
            except Exception as exc:  # noqa: BLE001 - broker briefly away: keep the request, retry later
                log.warning("autoscale: backlog unavailable (%s); keeping %d GPUs", exc, self.current)
                backlog = math.ceil(self.current * self.policy.jobs_per_gpu)
            decision = decide(
                self.policy, backlog=backlog, current=self.current, last_busy_at=self.last_busy_at, now=now
            )
            self.last_busy_at = decision.last_busy_at
            self.last_decision = decision
            bundles = bundles_for(decision.desired, self._split)
            if bundles != self.requested:
                # request_resources replaces the previous request; an empty list withdraws it.
                self._request(bundles=bundles)
                log.info(
                    "autoscale: backlog=%d -> %d GPUs %s (%s)",
                    backlog,
                    decision.desired,
                    describe_bundles(bundles),
                    decision.reason,
                )
                self.requested = bundles
            self.current = decision.desired
            return decision

    def release(self) -> None:
        """Withdraw the standing request (Ray may then let idle nodes go)."""
        with self._lock:
            self._request(bundles=[])
            self.requested = []
            self.current = 0
            self.last_busy_at = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # never let the scaling thread die silently; the next tick retries
                log.exception("autoscale: step failed")
            self._stop.wait(self._interval_s)

    def start(self) -> QueueDepthAutoscaler:
        """Step every ``interval_s`` on a daemon thread."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="ludus-autoscale", daemon=True)
            self._thread.start()
        return self

    def stop(self, *, release: bool = True) -> None:
        """Stop the thread and (by default) release the request."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval_s + 5)
            self._thread = None
        if release:
            self.release()
