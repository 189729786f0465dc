"""Placement planning by architecture, without Ray: resources vs labels, GPUs vs CPU fallback, wishes."""

from __future__ import annotations

import pytest

from ludus.cluster.placement import NodeInfo, PlacementSpec, allocate, normalize_arch, plan_groups
from ludus.errors import InputError


def node(nid: str, arch: str | None = None, *, cpus=8.0, gpus=0.0, by="resource") -> NodeInfo:
    res = {"CPU": cpus, "GPU": gpus}
    labels = {}
    if arch and by in ("resource", "both"):
        res[f"arch:{arch}"] = 1000.0
    if arch and by in ("label", "both"):
        labels["ludus.io/arch"] = arch
    return NodeInfo(nid, res, labels)


X86 = node("x1", "x86_64", gpus=1)
JETSON = node("j1", "arm64", cpus=6, gpus=1)
HEAD = node("h", None, cpus=4)


def plan(nodes, spec=None, gpus=0.25, cpus=1.0, device="auto"):
    return plan_groups(nodes, PlacementSpec.from_any(spec), gpus_per_actor=gpus, cpus_per_actor=cpus, device=device)


def test_every_marked_arch_gets_a_group_with_fractional_gpus():
    groups = plan([HEAD, X86, JETSON])
    assert [(g.arch, g.num_gpus, g.capacity) for g in groups] == [("arm64", 0.25, 4), ("x86_64", 0.25, 4)]
    assert groups[0].ray_options()["resources"] == {"arch:arm64": 0.001}
    assert "label_selector" not in groups[0].ray_options()


def test_label_only_nodes_are_placed_by_label_selector():
    (group,) = plan([node("j2", "aarch64", gpus=1, by="label")], {"require": "jetson"})
    assert group.arch == "arm64" and group.label_selector == {"ludus.io/arch": "arm64"}
    assert "resources" not in group.ray_options()


def test_architecture_without_gpus_falls_back_to_cpu_actors():
    groups = plan([node("a", "arm64", cpus=4), X86], gpus=0.5)
    by_arch = {g.arch: g for g in groups}
    assert by_arch["arm64"].num_gpus == 0 and by_arch["arm64"].capacity == 4
    assert by_arch["x86_64"].num_gpus == 0.5 and by_arch["x86_64"].capacity == 2
    assert all(g.num_gpus == 0 for g in plan([X86], device="cpu"))


def test_require_exclude_prefer():
    assert [g.arch for g in plan([X86, JETSON], {"require": ["arm64"]})] == ["arm64"]
    assert [g.arch for g in plan([X86, JETSON], {"exclude": ["x86-64"]})] == ["arm64"]
    groups = plan([X86, JETSON], {"prefer": ["x86_64"]})
    assert [g.arch for g in groups] == ["x86_64", "arm64"]
    spec = PlacementSpec(prefer=("x86_64",))
    assert [(g.arch, n) for g, n in allocate(groups, 6, spec)] == [("x86_64", 4), ("arm64", 2)]
    assert [(g.arch, n) for g, n in allocate(groups, 3, spec)] == [("x86_64", 3)]
    assert [(g.arch, n) for g, n in allocate(plan([X86, JETSON]), 5, PlacementSpec())] == [("arm64", 3), ("x86_64", 2)]


def test_impossible_wishes_are_input_errors_naming_what_exists():
    with pytest.raises(InputError, match="cluster has x86_64"):
        plan([HEAD, X86], {"require": ["arm64"]})
    with pytest.raises(InputError, match="both required and excluded"):
        PlacementSpec(require=("arm64",), exclude=("aarch64",))
    with pytest.raises(InputError, match="can hold a trial actor"):
        plan([X86], cpus=16)


def test_unmarked_single_machine_is_this_machine():
    (group,) = plan([HEAD], gpus=0.25)
    assert group.arch == normalize_arch(__import__("platform").machine()) and group.num_gpus == 0
    assert group.capacity == 4 and not group.resources and not group.label_selector
    # once any node is marked, unmarked ones get no trials
    assert all("h" not in g.node_ids for g in plan([HEAD, X86]))


def test_spec_from_job_like_objects():
    class Placement:
        def model_dump(self):
            return {"require": [], "prefer": ["ARM64"], "exclude": None}

    assert PlacementSpec.from_any(Placement()) == PlacementSpec(prefer=("arm64",))
    assert PlacementSpec.from_any(None).describe() == "anywhere"
