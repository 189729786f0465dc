"""Fit the conditional model on (conditions_t, θ_k, positions_k) -> label[k, t] rows, deterministically given a
seed; :func:`fit_ensemble` fits one model per seed.

Rows are never materialized: each step takes a few bars and pairs each bar's conditions with every
candidate's θ and positions (a [bars, K] block), which is also what the listwise ranking loss needs (all θ
at the same t).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ludus.cpo.labels import Labels, _device_of
from ludus.cpo.model import CANDIDATES_PER_STEP, CPOEnsemble, CPOModel, ModelConfig
from ludus.errors import InsufficientDataError, LudusError

# Gradient-norm clip: one extreme bar (a crash day) must not throw the network out of its basin.
GRAD_CLIP = 5.0
# (bar, candidate) rows per forward pass when evaluating: bounds memory whatever K is.
EVAL_ROWS = 65536
StopHook = Callable[[int, dict[str, float]], bool]
# Fewest bars a validation tail may have (and the fewest left to train on) for early stopping to apply.
MIN_VALIDATION_BARS = 20


class TrainingDiverged(LudusError):
    """The loss or the weights became NaN/inf; the trial should be recorded as failed with this reason."""


def usable_rows(conditions: np.ndarray | torch.Tensor, labels: Labels, rows: np.ndarray) -> np.ndarray:
    """The bars of ``rows`` whose conditions and every candidate's label are finite."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return rows
    cond = conditions.detach().cpu().numpy() if isinstance(conditions, torch.Tensor) else np.asarray(conditions)
    ok: np.ndarray = np.isfinite(cond[rows]).all(axis=1)
    ok &= np.isfinite(labels.label_returns[:, torch.from_numpy(rows)].numpy()).all(axis=0)
    kept: np.ndarray = rows[ok]
    return kept


def holdout_tail(rows: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray | None]:
    """(head, tail): the last ``fraction`` of ``rows`` (the most recent bars) held out for early stopping;
    (rows, None) when ``fraction`` is 0 or either part would have fewer than MIN_VALIDATION_BARS bars."""
    rows = np.asarray(rows, dtype=np.int64)
    n_tail = round(rows.size * float(fraction))
    if fraction <= 0 or n_tail < MIN_VALIDATION_BARS or rows.size - n_tail < MIN_VALIDATION_BARS:
        return rows, None
    return rows[:-n_tail], rows[-n_tail:]


def _block(model: CPOModel, cond: torch.Tensor, theta: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Normalized predictions [B, K] for B bars' conditions [B, F] against all θ [K, D] with their
    positions [B, K, 2] (the first layer split: no [B*K, F+D+2] concatenation)."""
    return model.forward_block(cond, theta, positions)


def _optimizer(model: CPOModel, config: ModelConfig) -> torch.optim.Optimizer:
    """AdamW updating every parameter in one fused kernel (CPU and CUDA), else the multi-tensor path."""
    try:
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # a device or build without the fused kernel
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def _loss(pred: torch.Tensor, target: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    loss = F.mse_loss(pred, target)
    if config.loss == "rank" and pred.shape[1] > 1:
        # listwise: KL(softmax(target) || softmax(pred)) across candidates at the same bar
        p = torch.softmax(target, dim=1)
        loss = loss + config.rank_weight * (p * (torch.log(p + 1e-12) - torch.log_softmax(pred, dim=1))).sum(1).mean()
    return loss


def fit(
    config: ModelConfig,
    conditions: np.ndarray | torch.Tensor,
    labels: Labels,
    rows: np.ndarray,
    *,
    device: Any = "cpu",
    seed: int = 0,
    should_stop: StopHook | None = None,
    val_rows: np.ndarray | None = None,
) -> CPOModel:
    """Train a :class:`CPOModel` on bars ``rows`` (all K candidates each).

    ``should_stop(epoch, {"train_loss", "val_loss"?})`` is called after every epoch; returning True stops
    (an Optuna pruning hook may also raise). With ``val_rows`` the weights of the best validation epoch are
    kept and training stops after ``config.patience`` epochs without improvement. Without ``val_rows``, the
    most recent ``config.validation_fraction`` of ``rows`` is that validation set (:func:`holdout_tail`) when
    it is > 0 (``config.epochs`` is then a ceiling); at 0, the default, every row trains for ``config.epochs``.
    Raises TrainingDiverged when the loss becomes NaN/inf, InsufficientDataError when no row is usable.
    """
    dev = _device_of(device)
    if val_rows is None:
        rows, val_rows = holdout_tail(rows, config.validation_fraction)
    cond_np = conditions.detach().cpu().numpy() if isinstance(conditions, torch.Tensor) else np.asarray(conditions)
    cond_np = cond_np.astype(np.float32, copy=False)
    train = usable_rows(cond_np, labels, rows)
    if train.size == 0:
        raise InsufficientDataError(
            "lookback", int(np.asarray(rows).size), "no training bar has finite conditions and labels"
        )
    val = usable_rows(cond_np, labels, val_rows) if val_rows is not None else None
    K = labels.n_candidates

    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = CPOModel(cond_np.shape[1], labels.theta.shape[1], config)
        model.set_normalization(cond_np[train], labels.theta, labels.label_returns[:, torch.from_numpy(train)].numpy())
        model.to(dev)
        gen = torch.Generator().manual_seed(seed)

        # only the bars this fit touches go to the device: [bars, F] conditions and [bars, K] targets
        used = np.unique(np.concatenate([train, val])) if val is not None and val.size else train
        cond = torch.from_numpy(cond_np[used]).to(dev)
        theta = torch.from_numpy(labels.theta).to(dev)
        y_norm = labels.label_returns[:, torch.from_numpy(used)].T.contiguous().to(dev)
        y_norm = (y_norm - model.label_mean) / model.label_std
        pos = labels.position_inputs(used).to(dev)
        train_t = torch.from_numpy(np.searchsorted(used, train)).to(dev)
        val_local = np.searchsorted(used, val) if val is not None else None
        opt = _optimizer(model, config)
        per_step = config.candidates_per_step or CANDIDATES_PER_STEP
        sub = per_step if per_step < K else None  # candidates sampled per step when K is large
        bars_per_step = max(1, config.batch_size // (sub or K))
        params = [p for p in model.parameters() if p.requires_grad]

        best_val, best_state, stale = math.inf, None, 0
        for epoch in range(config.epochs):
            model.train()
            order = train_t[torch.randperm(train_t.numel(), generator=gen).to(dev)]
            # the epoch's loss stays on the device: no host sync per step; checked once per epoch
            total = torch.zeros((), device=dev)
            for start in range(0, order.numel(), bars_per_step):
                bars = order[start : start + bars_per_step]
                if sub is None:
                    pred = _block(model, cond[bars], theta, pos[bars])
                    target = y_norm[bars]
                else:
                    cols = torch.randperm(K, generator=gen)[:sub].to(dev)
                    pred = _block(model, cond[bars], theta[cols], pos[bars][:, cols])
                    target = y_norm[bars][:, cols]
                loss = _loss(pred, target, config)
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward untyped
                torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP, foreach=True)
                opt.step()
                total += loss.detach() * bars.numel()
            train_loss = float(total) / max(int(order.numel()), 1)
            if not math.isfinite(train_loss):
                raise TrainingDiverged(
                    f"training loss became {train_loss} in epoch {epoch} (lr={config.lr:g}, loss={config.loss})"
                )
            metrics = {"train_loss": train_loss}
            if val_local is not None and val_local.size:
                metrics["val_loss"] = validation_loss(model, cond, theta, pos, y_norm, val_local, config)
                if not math.isfinite(metrics["val_loss"]):
                    raise TrainingDiverged(f"validation loss became {metrics['val_loss']} at epoch {epoch}")
                if metrics["val_loss"] < best_val - 1e-9:
                    best_val, stale = metrics["val_loss"], 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    stale += 1
            if should_stop is not None and should_stop(epoch, metrics):
                break
            if val is not None and stale >= config.patience:
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        for p in model.parameters():
            if not torch.isfinite(p).all():
                raise TrainingDiverged("model weights became NaN/inf")
    return model.eval()


def fit_ensemble(
    config: ModelConfig,
    conditions: np.ndarray | torch.Tensor,
    labels: Labels,
    rows: np.ndarray,
    *,
    seeds: list[int],
    device: Any = "cpu",
    val_rows: np.ndarray | None = None,
) -> CPOEnsemble:
    """One :func:`fit` per seed, averaged."""
    return CPOEnsemble(
        [fit(config, conditions, labels, rows, device=device, seed=s, val_rows=val_rows) for s in seeds]
    ).eval()


@torch.no_grad()
def validation_loss(
    model: CPOModel,
    cond: torch.Tensor,
    theta: torch.Tensor,
    pos: torch.Tensor,
    y_norm: torch.Tensor,
    rows: np.ndarray,
    config: ModelConfig,
) -> float:
    """Mean loss over ``rows`` (indices into ``cond``/``pos``/``y_norm``) in eval mode (restores train mode)."""
    was_training = model.training
    model.eval()
    bars_per_step = max(1, EVAL_ROWS // theta.shape[0])
    idx = torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(cond.device)
    total = 0.0
    for start in range(0, idx.numel(), bars_per_step):
        bars = idx[start : start + bars_per_step]
        total += float(_loss(_block(model, cond[bars], theta, pos[bars]), y_norm[bars], config)) * bars.numel()
    model.train(was_training)
    return total / max(idx.numel(), 1)
