"""Queue-depth scaling policy (pure) and the loop object with a recording request function."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ludus.cluster.autoscale import (
    ARCH_BUNDLE_AMOUNT,
    Backlog,
    QueueDepthAutoscaler,
    ScalePolicy,
    bundles_for,
    decide,
    split_by_arch,
)
from ludus.config import Settings
from ludus.errors import InputError


def test_target_rounds_up_and_clamps():
    p = ScalePolicy(jobs_per_gpu=2, min_gpus=1, max_gpus=3, cooldown_s=10)
    assert [p.target(n) for n in (0, 1, 2, 3, 4, 5, 6, 100)] == [1, 1, 1, 2, 2, 3, 3, 3]
    assert p.target(-5) == 1  # a negative count (broker quirk) never scales below min


def test_policy_from_settings_and_invalid_bounds():
    s = Settings(autoscale_jobs_per_gpu=0.5, autoscale_min_gpus=2, autoscale_max_gpus=4, autoscale_cooldown_s=7)
    p = ScalePolicy.from_settings(s)
    assert (p.jobs_per_gpu, p.min_gpus, p.max_gpus, p.cooldown_s) == (0.5, 2, 4, 7)
    assert p.target(1) == 2 and p.target(10) == 4
    with pytest.raises(InputError, match="autoscale_max_gpus"):
        ScalePolicy(min_gpus=3, max_gpus=2)


def test_scale_up_is_immediate_and_scale_down_waits_for_cooldown():
    p = ScalePolicy(jobs_per_gpu=1, min_gpus=0, max_gpus=4, cooldown_s=30)
    d = decide(p, backlog=3, current=0, last_busy_at=None, now=100.0)
    assert (d.desired, d.reason) == (3, "scale-up")
    # backlog drops: nothing changes inside the cooldown
    d2 = decide(p, backlog=0, current=3, last_busy_at=d.last_busy_at, now=110.0)
    assert d2.desired == 3 and d2.target == 0 and d2.reason.startswith("cooldown")
    d3 = decide(p, backlog=0, current=3, last_busy_at=d2.last_busy_at, now=129.9)
    assert d3.desired == 3
    d4 = decide(p, backlog=0, current=3, last_busy_at=d3.last_busy_at, now=130.0)
    assert (d4.desired, d4.reason) == (0, "scale-down")
    # a new burst during a cooldown scales up at once and restarts the clock
    d5 = decide(p, backlog=9, current=1, last_busy_at=0.0, now=500.0)
    assert d5.desired == 4 and d5.last_busy_at == 500.0


def test_scale_down_goes_straight_to_target_not_step_by_step():
    p = ScalePolicy(jobs_per_gpu=1, min_gpus=1, max_gpus=8, cooldown_s=0)
    assert decide(p, backlog=2, current=8, last_busy_at=0.0, now=1.0).desired == 2
    assert decide(p, backlog=0, current=8, last_busy_at=0.0, now=1.0).desired == 1  # min holds


@given(
    backlog=st.integers(-10, 10_000),
    current=st.integers(0, 50),
    jpg=st.floats(0.1, 10),
    lo=st.integers(0, 5),
    extra=st.integers(0, 10),
    quiet=st.floats(0, 1000),
)
def test_decision_always_within_bounds(backlog, current, jpg, lo, extra, quiet):
    p = ScalePolicy(jobs_per_gpu=jpg, min_gpus=lo, max_gpus=lo + extra, cooldown_s=60)
    d = decide(p, backlog=backlog, current=current, last_busy_at=0.0, now=quiet)
    assert lo <= d.desired <= lo + extra
    assert d.desired >= d.target  # never below what the backlog justifies


def test_split_by_arch_largest_remainder():
    assert split_by_arch(5, {"x86_64": 1, "arm64": 1}) == {"x86_64": 3, "arm64": 2}
    assert split_by_arch(4, {"x86_64": 3, "arm64": 1}) == {"x86_64": 3, "arm64": 1}
    assert split_by_arch(3, {"x86_64": 0, "arm64": 1}) == {"x86_64": 0, "arm64": 3}
    assert split_by_arch(0, {"x86_64": 1, "arm64": 1}) == {"x86_64": 0, "arm64": 0}
    with pytest.raises(InputError, match="arch_split"):
        split_by_arch(1, {"x86_64": 0})
    with pytest.raises(InputError, match=r"arch_split\.arm64"):
        split_by_arch(1, {"arm64": -1})


@given(total=st.integers(0, 200), w=st.lists(st.floats(0.01, 100), min_size=1, max_size=4))
def test_split_sums_to_total(total, w):
    shares = split_by_arch(total, {f"a{i}": x for i, x in enumerate(w)})
    assert sum(shares.values()) == total


def test_bundles_carry_gpu_and_arch_marker():
    b = bundles_for(3, {"x86_64": 1, "arm64": 2})
    assert b.count({"GPU": 1, "arch:x86_64": ARCH_BUNDLE_AMOUNT}) == 1
    assert b.count({"GPU": 1, "arch:arm64": ARCH_BUNDLE_AMOUNT}) == 2
    assert bundles_for(2, None) == [{"GPU": 1}, {"GPU": 1}]


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_loop_requests_within_bounds_and_releases_after_cooldown():
    calls: list[list[dict]] = []
    backlog = {"n": 0}
    clock = FakeClock()
    s = Settings(autoscale_jobs_per_gpu=1, autoscale_min_gpus=0, autoscale_max_gpus=2, autoscale_cooldown_s=20)
    a = QueueDepthAutoscaler(
        s,
        lambda: backlog["n"],
        arch_split={"arm64": 1},
        request_fn=lambda *, bundles: calls.append(bundles),
        clock=clock,
    )
    a.step()
    assert calls == [[]]  # first step states the (empty) request explicitly
    backlog["n"] = 5
    a.step()
    assert calls[-1] == [{"GPU": 1, "arch:arm64": ARCH_BUNDLE_AMOUNT}] * 2  # capped at max 2
    n_calls = len(calls)
    a.step()
    assert len(calls) == n_calls  # unchanged request is not re-issued
    backlog["n"] = 0
    clock.t = 10
    a.step()
    assert calls[-1] == [{"GPU": 1, "arch:arm64": ARCH_BUNDLE_AMOUNT}] * 2  # still cooling down
    clock.t = 21
    a.step()
    assert calls[-1] == []  # released when the backlog drained for the cooldown
    assert a.current == 0


def test_loop_survives_backlog_errors_and_stop_releases():
    calls: list[list[dict]] = []
    state = {"fail": False, "n": 1}

    def backlog() -> int:
        if state["fail"]:
            raise ConnectionError("broker away")
        return state["n"]

    s = Settings(autoscale_max_gpus=4, autoscale_cooldown_s=0)
    a = QueueDepthAutoscaler(s, backlog, request_fn=lambda *, bundles: calls.append(bundles), interval_s=0.01)
    a.step()
    assert calls[-1] == [{"GPU": 1}]
    state["fail"] = True
    a.step()  # keeps the current request instead of dropping it
    assert a.current == 1 and calls[-1] == [{"GPU": 1}]
    state["fail"] = False
    a.start()
    a.stop()
    assert calls[-1] == [] and a.current == 0


# --- the backlog by architecture ---------------------------------------------------------------------


def test_backlog_counts_for_every_architecture_a_job_may_run_on():
    b = Backlog.of(
        2, [{"require": "arm64", "prefer": None, "exclude": []}, {"exclude": ["arm64"]}, {"prefer": "x86_64"}, None]
    )
    assert b.total == 6
    # ready messages (placement unknown until read) count everywhere; jobs where their placement allows
    assert b.by_arch() == {"x86_64": 2 + 3, "arm64": 2 + 3}
    assert b.for_arch("arm64") == 5 and Backlog().by_arch() == {"x86_64": 0, "arm64": 0}
    shares = b.shares()  # each job weighs 1: all on its preferred arch, else shared by the allowed ones
    assert shares == pytest.approx({"x86_64": 1 + 1 + 1 + 0.5, "arm64": 1 + 1 + 0.5})
    assert sum(shares.values()) == pytest.approx(b.total)
    d = b.to_dict()
    assert d["architectures"] == b.by_arch() and d["backlog"] == 6 and d["unfinished"] == 4


@given(
    st.integers(0, 5),
    st.lists(
        st.sampled_from(
            [None, {"require": "x86_64"}, {"require": "arm64"}, {"exclude": ["x86_64"]}, {"prefer": "arm64"}]
        ),
        max_size=12,
    ),
)
def test_backlog_shares_add_up_and_never_name_a_forbidden_architecture(ready, placements):
    b = Backlog.of(ready, placements)
    shares = b.shares()
    assert sum(shares.values()) == pytest.approx(b.total)
    for arch in ("x86_64", "arm64"):
        assert 0 <= shares.get(arch, 0) <= b.for_arch(arch) + 1e-9
        if b.for_arch(arch) == 0:
            assert arch not in shares


def test_loop_pins_bundles_to_the_architectures_of_the_backlog_and_keeps_them_in_cooldown():
    calls: list[list[dict]] = []
    now = {"backlog": Backlog.of(0, [{"require": "x86_64"}] * 2 + [{"require": "arm64"}])}
    clock = FakeClock()
    s = Settings(autoscale_jobs_per_gpu=1, autoscale_max_gpus=8, autoscale_cooldown_s=30)
    a = QueueDepthAutoscaler(
        s, lambda: now["backlog"], request_fn=lambda *, bundles: calls.append(bundles), clock=clock
    )
    a.step()
    x86 = {"GPU": 1, "arch:x86_64": ARCH_BUNDLE_AMOUNT}
    arm = {"GPU": 1, "arch:arm64": ARCH_BUNDLE_AMOUNT}
    assert sorted(calls[-1], key=str) == sorted([x86, x86, arm], key=str)
    now["backlog"] = Backlog()  # drained: during the cooldown the same nodes stay asked for
    clock.t = 10
    a.step()
    assert sorted(calls[-1], key=str) == sorted([x86, x86, arm], key=str)
    clock.t = 41
    a.step()
    assert calls[-1] == []
