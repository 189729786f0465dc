"""Turning conditions into positions, vectorized over parameter sets P and bars T.

Positions are int8 in {-1, 0, 1}: the position held from the close of bar t to the close of bar t+1.
"""

from __future__ import annotations

import torch


def crossover(above: torch.Tensor, valid: torch.Tensor, short_ok: torch.Tensor) -> torch.Tensor:
    """+1 where ``above``, else -1 for sets allowed to short (``short_ok`` [P]) or 0; 0 where not ``valid``."""
    pos = above.to(torch.int8)
    if bool(short_ok.any()):
        pos = pos - ((~above) & short_ok[:, None]).to(torch.int8)
    return pos * valid.to(torch.int8)


def hold(
    entry_long: torch.Tensor, entry_short: torch.Tensor, exit_long: torch.Tensor, exit_short: torch.Tensor
) -> torch.Tensor:
    """Stateful enter/exit rule without a loop over bars.

    Per bar, in order of precedence: an entry condition sets the position to its side; otherwise a long
    position becomes flat when ``exit_long`` holds and a short one when ``exit_short`` holds; otherwise the
    position carries over. Entries must be mutually exclusive. Vectorized by forward-filling the index of
    the last entry (cummax over ``where(event, arange, -1)``) and comparing with the index of the last exit
    condition of that side: flat when an exit came after the entry.
    """
    t = entry_long.shape[-1]
    idx = torch.arange(t, device=entry_long.device, dtype=torch.int32 if t < 2**31 else torch.int64)
    none = torch.full((), -1, dtype=idx.dtype, device=idx.device)
    last_entry = torch.cummax(torch.where(entry_long | entry_short, idx, none), dim=-1).values
    side = entry_long.to(torch.int8) - entry_short.to(torch.int8)
    side = torch.gather(side, -1, last_entry.clamp(min=0).long()) * (last_entry >= 0).to(torch.int8)
    last_xl = torch.cummax(torch.where(exit_long, idx, none), dim=-1).values
    last_xs = torch.cummax(torch.where(exit_short, idx, none), dim=-1).values
    exited = torch.where(side > 0, last_xl > last_entry, last_xs > last_entry)
    return side.masked_fill(exited, 0)


def bar_index(t: int, device: torch.device) -> torch.Tensor:
    """[1, T] bar numbers, for warm-up masks."""
    return torch.arange(t, device=device)[None, :]
