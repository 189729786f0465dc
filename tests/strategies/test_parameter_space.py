"""ParameterSpace: validation errors name field, value and rule; sampling respects constraints; narrowing."""

from __future__ import annotations

import pytest

from ludus.errors import InputError
from ludus.strategies.registry import get_strategy
from ludus.strategies.space import CategoricalParam, IntParam
from tests.strategies.conftest import RULES


def _space(name: str = "sma_cross"):
    return get_strategy(name).space


@pytest.mark.parametrize(
    "values,field,value,rule",
    [
        ({"fast": 2.5}, "fast", 2.5, "must be an integer"),
        ({"fast": "ten"}, "fast", "ten", "must be an integer"),
        ({"fast": 1}, "fast", 1, "between 2 and 100"),
        ({"slow": 301}, "slow", 301, "between 10 and 300"),
        ({"mode": "short_only"}, "mode", "short_only", "must be one of long_flat, long_short"),
        ({"speed": 3}, "speed", 3, "unknown parameter"),
        ({"fast": 60, "slow": 40}, "fast", 60, "violates constraint fast < slow"),
    ],
)
def test_bad_values_name_field_value_and_rule(values, field, value, rule) -> None:
    with pytest.raises(InputError) as info:
        _space().validate(values)
    err = info.value
    assert err.field == field and err.value == value and rule in err.rule
    assert str(err).startswith(f"{field}=") and rule in str(err)


def test_float_and_step_rules() -> None:
    rsi = _space("rsi_reversion")
    with pytest.raises(InputError) as info:
        rsi.validate({"lower": float("nan")})
    assert info.value.field == "lower" and "between 5.0 and 45.0" in info.value.rule
    with pytest.raises(InputError) as info:
        rsi.validate({"lower": 40.0, "exit": 35.0})
    assert "violates constraint lower < exit" in info.value.rule
    stepped = IntParam("w", 10, 50, 5)
    assert stepped.check(35) == 35
    with pytest.raises(InputError) as info:
        stepped.check(33)
    assert (info.value.field, info.value.value) == ("w", 33) and "multiple of 5" in info.value.rule


def test_validate_fills_defaults_and_coerces_strings() -> None:
    space = _space()
    out = space.validate({"fast": "20"})
    assert out == {**space.defaults, "fast": 20} and isinstance(out["fast"], int)


@pytest.mark.parametrize("name", RULES)
def test_sample_respects_bounds_steps_and_constraints(name: str) -> None:
    space = _space(name)
    sets = space.sample(300, seed=4)
    assert len(sets) == 300 and sets[0] == space.defaults
    assert len({tuple(sorted(s.items())) for s in sets}) == 300
    for s in sets:
        assert space.validate(s) == s  # bounds, steps, choices, constraints
        assert all(c.holds(s) for c in space.constraints)
    assert space.sample(20, seed=4, include_defaults=False) != space.sample(20, seed=5, include_defaults=False)
    # Sobol spreads the sample: every categorical choice and both halves of each int range appear.
    for p in space.params:
        seen = {s[p.name] for s in sets}
        if isinstance(p, CategoricalParam):
            assert seen == set(p.choices)
        else:
            mid = (p.low + p.high) / 2
            assert min(seen) < mid < max(seen)


def test_sample_is_deterministic_per_seed() -> None:
    space = _space("macd")
    assert space.sample(40, seed=9) == space.sample(40, seed=9)
    with pytest.raises(InputError) as info:
        space.sample(0)
    assert info.value.field == "samples"


def test_narrow_bounds_values_and_choices() -> None:
    space = _space()
    narrow = space.narrow({"fast": {"low": 5, "high": 20}, "slow": {"value": 60}, "mode": {"choices": ["long_short"]}})
    sets = narrow.sample(16, seed=1)
    assert len(sets) == 16
    assert all(5 <= s["fast"] <= 20 and s["slow"] == 60 and s["mode"] == "long_short" for s in sets)
    assert narrow.defaults == {"fast": 10, "slow": 60, "mode": "long_short"}
    # A narrowed categorical keeps the declared index, so the engine still recognises long_short.
    assert narrow.to_tensors(sets)["mode"].tolist() == space.to_tensors(sets)["mode"].tolist() == [1] * 16
    with pytest.raises(InputError) as info:
        narrow.validate({"fast": 30})
    assert info.value.field == "fast" and "between 5 and 20" in info.value.rule


def test_narrow_moves_broken_defaults_inside_and_rejects_bad_overrides() -> None:
    space = _space()
    narrow = space.narrow({"fast": {"low": 60, "high": 80}})
    assert 60 <= narrow.defaults["fast"] <= 80 and narrow.defaults["fast"] < narrow.defaults["slow"]
    for overrides, field in [
        ({"fast": {"low": 0}}, "fast"),
        ({"nope": {"low": 1}}, "overrides.nope"),
        ({"fast": {"low": 30, "high": 20}}, "overrides.fast.high"),
        ({"fast": {"min": 3}}, "overrides.fast.min"),
        ({"mode": {"choices": ["sideways"]}}, "mode"),
    ]:
        with pytest.raises(InputError) as info:
            space.narrow(overrides)
        assert info.value.field == field, overrides
