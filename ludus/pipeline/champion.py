"""The champion of a decision: what Constellations trades now for the key.

The live row (the latest published for the key up to the decision's day, from another job) decides it:

* nothing published: the strategy defaults;
* a row a policy arm produced (cpo, rolling, policy_gradient): that policy, refitted like a challenger;
* any other row: its θ held fixed (``defaults`` when it equals them, else ``published``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ludus.constants import ARM_DEFAULTS, ARM_PUBLISHED, POLICY_ARMS
from ludus.errors import InputError
from ludus.stores.parameters import ParameterRow


@dataclass(frozen=True)
class ChampionSpec:
    """The champion arm's name, the θ live now and where it came from."""

    arm: str
    parameters: dict[str, Any]  # the live θ (the position held now follows from it)
    source: str  # "published" or "defaults"
    row: ParameterRow | None = None
    note: str = ""

    @property
    def is_policy(self) -> bool:
        return self.arm in POLICY_ARMS


def resolve_champion(row: ParameterRow | None, space: Any, defaults: dict[str, Any]) -> ChampionSpec:
    """The champion given the live row (None: nothing published) and the strategy's full space."""
    if row is None:
        return ChampionSpec(ARM_DEFAULTS, dict(defaults), "defaults")
    try:
        params = space.validate(row.parameters)
    except InputError as exc:
        # the strategy's space changed since the row was written: the defaults are the honest fallback
        return ChampionSpec(
            ARM_DEFAULTS,
            dict(defaults),
            "defaults",
            row,
            note=f"the live θ {row.parameters} is no longer valid ({exc.rule}); champion: defaults",
        )
    if row.arm in POLICY_ARMS:
        return ChampionSpec(row.arm, params, "published", row)
    arm = ARM_DEFAULTS if params == space.validate(defaults) else ARM_PUBLISHED
    return ChampionSpec(arm, params, "published", row)


__all__ = ["ChampionSpec", "resolve_champion"]
