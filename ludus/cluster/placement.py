"""Where trial actors may run: architectures (x86-64 GPU nodes, ARM64 Jetsons) told apart per node.

A node says what it is in one of two ways, both set at ``ray start``:

- a custom resource ``arch:<name>`` (``--resources '{"arch:arm64": 1000}'``): works with every Ray version and
  with the autoscaler, which knows node types by their resources. Actors ask for a tiny amount of it.
- a node label ``ludus.io/arch=<name>`` (``--labels ludus.io/arch=arm64``): Ray's label selectors.

Per architecture the planner uses the resource when that architecture's nodes carry it, else the label.
Nodes without either mark are used only while no node in the cluster is marked (a single machine, the
embedded default): once any node is marked, an unmarked node could be anything, so it gets no trials.

A job may *require* architectures (only those), *exclude* some (never those) and *prefer* some (their
capacity is filled first, the rest spills over to the others).
"""

from __future__ import annotations

import math
import platform
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ludus.constants import ARCH_LABEL, ARCH_RESOURCE_PREFIX
from ludus.errors import InputError
from ludus.vocabulary import PLACEMENT_EXCLUDE, PLACEMENT_KEYS, PLACEMENT_PREFER, PLACEMENT_REQUIRE, normalize_arch

#: the smallest share of an ``arch:*`` resource an actor asks for (nodes advertise 1000)
ARCH_RESOURCE_AMOUNT = 0.001


def local_arch() -> str:
    """The architecture of this machine."""
    return normalize_arch(platform.machine() or "unknown")


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [part for part in value.replace(",", " ").split() if part]
    return tuple(dict.fromkeys(normalize_arch(v) for v in value))


@dataclass(frozen=True)
class PlacementSpec:
    """A job's wishes about architectures (empty = anywhere)."""

    require: tuple[str, ...] = ()
    prefer: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, PLACEMENT_REQUIRE, _as_tuple(self.require))
        object.__setattr__(self, PLACEMENT_PREFER, _as_tuple(self.prefer))
        object.__setattr__(self, PLACEMENT_EXCLUDE, _as_tuple(self.exclude))
        clash = set(self.require) & set(self.exclude)
        if clash:
            raise InputError("placement", sorted(clash), "an architecture cannot be both required and excluded")

    @classmethod
    def from_any(cls, value: Any) -> PlacementSpec:
        """From a PlacementSpec, a job's ``placement`` (pydantic model), a dict, or None."""
        if value is None:
            return cls()
        if isinstance(value, PlacementSpec):
            return value
        if hasattr(value, "model_dump"):
            value = value.model_dump()
        if not isinstance(value, dict):
            raise InputError("placement", value, "expected require/prefer/exclude lists of architectures")
        low = {str(k).lower(): v for k, v in value.items()}
        unknown = sorted(set(low) - set(PLACEMENT_KEYS))
        if unknown:
            raise InputError("placement", unknown[0], f"unknown key; one of {', '.join(PLACEMENT_KEYS)}")
        return cls(
            require=_as_tuple(low.get(PLACEMENT_REQUIRE)),
            prefer=_as_tuple(low.get(PLACEMENT_PREFER)),
            exclude=_as_tuple(low.get(PLACEMENT_EXCLUDE)),
        )

    def allows(self, arch: str | None) -> bool:
        if arch is None:
            return not self.require and not self.exclude
        if self.require and arch not in self.require:
            return False
        return arch not in self.exclude

    def describe(self) -> str:
        parts = [
            f"{k}={','.join(v)}"
            for k, v in (
                (PLACEMENT_REQUIRE, self.require),
                (PLACEMENT_PREFER, self.prefer),
                (PLACEMENT_EXCLUDE, self.exclude),
            )
            if v
        ]
        return " ".join(parts) or "anywhere"


@dataclass(frozen=True)
class NodeInfo:
    """What the planner needs of one alive Ray node."""

    node_id: str
    resources: dict[str, float]
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def arch_by_resource(self) -> str | None:
        for key in self.resources:
            if key.startswith(ARCH_RESOURCE_PREFIX):
                return normalize_arch(key[len(ARCH_RESOURCE_PREFIX) :])
        return None

    @property
    def arch_by_label(self) -> str | None:
        value = self.labels.get(ARCH_LABEL)
        return normalize_arch(value) if value else None

    @property
    def arch(self) -> str | None:
        return self.arch_by_resource or self.arch_by_label

    @property
    def gpus(self) -> float:
        return float(self.resources.get("GPU", 0.0))

    @property
    def cpus(self) -> float:
        return float(self.resources.get("CPU", 0.0))


def cluster_nodes() -> list[NodeInfo]:
    """Alive nodes of the connected Ray cluster."""
    import ray

    out = []
    for node in ray.nodes():
        if not node.get("Alive", node.get("alive", False)):
            continue
        out.append(NodeInfo(node["NodeID"], dict(node.get("Resources") or {}), dict(node.get("Labels") or {})))
    return out


@dataclass
class ActorGroup:
    """Actors of one architecture: the Ray options that pin them there and how many the nodes can hold."""

    arch: str  # "any" when the cluster marks no architecture
    num_gpus: float
    num_cpus: float
    resources: dict[str, float]
    label_selector: dict[str, str] | None
    capacity: int
    node_ids: tuple[str, ...]

    def ray_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "scheduling_strategy": "SPREAD"}
        if self.resources:
            opts["resources"] = dict(self.resources)
        if self.label_selector:
            opts["label_selector"] = dict(self.label_selector)
        return opts


def _slots(node: NodeInfo, num_cpus: float, num_gpus: float) -> int:
    by_cpu = math.floor(node.cpus / num_cpus + 1e-9) if num_cpus > 0 else 10**6
    by_gpu = math.floor(node.gpus / num_gpus + 1e-9) if num_gpus > 0 else 10**6
    return max(0, min(by_cpu, by_gpu))


def plan_groups(
    nodes: Sequence[NodeInfo],
    spec: PlacementSpec,
    *,
    gpus_per_actor: float,
    cpus_per_actor: float,
    device: str = "auto",
    strict: bool = True,
) -> list[ActorGroup]:
    """Actor groups for ``spec`` on ``nodes``, preferred architectures first.

    GPUs: an architecture whose nodes have GPUs gets ``gpus_per_actor`` (fractions share a GPU); one without
    any falls back to CPU actors (``num_gpus=0``); ``device="cpu"`` never asks for GPUs.
    ``strict``: raise InputError when no node satisfies the spec (the message lists what the cluster has).
    Not strict (a cluster that grows: nodes may still join): return what fits now, possibly nothing or groups
    of capacity 0.
    """
    marked = [n for n in nodes if n.arch is not None]
    if not marked:
        # Nothing marked: a single machine counts as this machine's architecture; a cluster as "any".
        arch = local_arch() if len(nodes) == 1 else None
        if not spec.allows(arch) or (spec.require and arch is None):
            if not strict:
                return []
            raise InputError(
                "placement",
                spec.describe(),
                "no node of the Ray cluster is marked with an architecture (start workers with "
                f"--resources '{{\"{ARCH_RESOURCE_PREFIX}<arch>\": 1000}}' or --labels "
                f"{ARCH_LABEL}=<arch>)" + (f"; this machine is {arch}" if arch else ""),
            )
        groups = [_group(arch or "any", list(nodes), None, None, gpus_per_actor, cpus_per_actor, device)]
        _require_capacity(groups, spec, gpus_per_actor, cpus_per_actor, strict)
        return groups

    by_arch: dict[str, list[NodeInfo]] = {}
    for node in marked:
        by_arch.setdefault(node.arch, []).append(node)  # type: ignore[arg-type]
    allowed = [a for a in by_arch if spec.allows(a)]
    if not allowed:
        if not strict:
            return []
        raise InputError(
            "placement",
            spec.describe(),
            f"no node of the Ray cluster satisfies it; the cluster has {', '.join(sorted(by_arch))}",
        )
    preferred = [a for a in spec.prefer if a in allowed]
    ordered = preferred + sorted(a for a in allowed if a not in preferred)
    groups = []
    for arch in ordered:
        arch_nodes = by_arch[arch]
        use_resource = all(n.arch_by_resource == arch for n in arch_nodes)
        resources = {f"{ARCH_RESOURCE_PREFIX}{arch}": ARCH_RESOURCE_AMOUNT} if use_resource else None
        selector = None if use_resource else {ARCH_LABEL: arch}
        if not use_resource:
            # label-only nodes: the resource marks some, the label all of them
            arch_nodes = [n for n in arch_nodes if n.arch_by_label == arch]
        groups.append(_group(arch, arch_nodes, resources, selector, gpus_per_actor, cpus_per_actor, device))
    _require_capacity(groups, spec, gpus_per_actor, cpus_per_actor, strict)
    return groups


def _require_capacity(
    groups: list[ActorGroup], spec: PlacementSpec, gpus_per_actor: float, cpus_per_actor: float, strict: bool
) -> None:
    if strict and not any(g.capacity for g in groups):
        raise InputError(
            "placement",
            spec.describe(),
            f"no allowed node can hold a trial actor ({cpus_per_actor:g} CPU, {gpus_per_actor:g} GPU each)",
        )


def _group(
    arch: str,
    nodes: list[NodeInfo],
    resources: dict[str, float] | None,
    selector: dict[str, str] | None,
    gpus_per_actor: float,
    cpus_per_actor: float,
    device: str,
) -> ActorGroup:
    gpu_nodes = [n for n in nodes if n.gpus > 0]
    num_gpus = gpus_per_actor if (gpu_nodes and gpus_per_actor > 0 and device != "cpu") else 0.0
    usable = gpu_nodes if num_gpus > 0 else nodes
    capacity = sum(_slots(n, cpus_per_actor, num_gpus) for n in usable)
    return ActorGroup(
        arch=arch,
        num_gpus=num_gpus,
        num_cpus=cpus_per_actor,
        resources=resources or {},
        label_selector=selector,
        capacity=capacity,
        node_ids=tuple(n.node_id for n in usable),
    )


def allocate(groups: Iterable[ActorGroup], total: int, spec: PlacementSpec) -> list[tuple[ActorGroup, int]]:
    """How many actors per group: preferred groups fill first, the others share the rest evenly."""
    groups = [g for g in groups if g.capacity > 0]
    counts = {id(g): 0 for g in groups}
    left = max(0, total)
    for g in groups:
        if g.arch in spec.prefer:
            take = min(left, g.capacity)
            counts[id(g)] += take
            left -= take
    rest = [g for g in groups if g.arch not in spec.prefer]
    while left > 0 and rest:
        progressed = False
        for g in rest:
            if left and counts[id(g)] < g.capacity:
                counts[id(g)] += 1
                left -= 1
                progressed = True
        if not progressed:
            break
    return [(g, counts[id(g)]) for g in groups if counts[id(g)]]
