"""The CPO model's training step as it was before issue 11 (the "before" of bench/cpo_job.py's
model_search_s_per_trial): the [B*K, F+D+2] input concatenated for every step, AdamW's default
per-parameter loop, a host sync (``torch.isfinite(loss)`` and ``float(loss)``) per step, every candidate in
every step. Same model class, same loss, same rows: only the step differs.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch

from ludus.cpo.labels import Labels, _device_of
from ludus.cpo.model import CPOModel, ModelConfig
from ludus.cpo.training import (
    GRAD_CLIP,
    InsufficientDataError,
    StopHook,
    TrainingDiverged,
    _loss,
    usable_rows,
    validation_loss,
)


def _old_block(model: CPOModel, cond: torch.Tensor, theta: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Normalized predictions [B, K] for B bars' conditions [B, F] against all θ [K, D] with their
    positions [B, K, 2]."""
    b, k = cond.shape[0], theta.shape[0]
    c = cond.unsqueeze(1).expand(b, k, cond.shape[1]).reshape(b * k, -1)
    t = theta.unsqueeze(0).expand(b, k, theta.shape[1]).reshape(b * k, -1)
    return model.forward_normalized(c, t, positions.reshape(b * k, -1)).reshape(b, k)


def old_fit(
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
    kept and training stops after ``config.patience`` epochs without improvement.
    Raises TrainingDiverged when the loss becomes NaN/inf, InsufficientDataError when no row is usable.
    """
    dev = _device_of(device)
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
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        bars_per_step = max(1, config.batch_size // K)

        best_val, best_state, stale = math.inf, None, 0
        for epoch in range(config.epochs):
            model.train()
            order = train_t[torch.randperm(train_t.numel(), generator=gen).to(dev)]
            total, count = 0.0, 0
            for start in range(0, order.numel(), bars_per_step):
                bars = order[start : start + bars_per_step]
                pred = _old_block(model, cond[bars], theta, pos[bars])
                loss = _loss(pred, y_norm[bars], config)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"training loss became {loss.item()} at epoch {epoch} step "
                        f"{start // bars_per_step} (lr={config.lr:g}, loss={config.loss})"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
                opt.step()
                total += float(loss.detach()) * bars.numel()
                count += bars.numel()
            metrics = {"train_loss": total / max(count, 1)}
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
