"""The policy-gradient tuner: a softmax policy over the K candidates given the conditions, trained with
REINFORCE on the labels (the "RL tuner" users of auto-tuners ask for).

The policy pi(k | conditions_t) samples a candidate per bar; its reward is the candidate's label (next-bar
return net of the candidate's own costs), minus the bar's mean label over the candidates as the baseline (it
does not depend on the action, so the gradient stays unbiased and its variance drops). At decision time the
policy is greedy: argmax_k pi(k | conditions_t).

By default it trains a fixed number of epochs. With ``validation_fraction`` > 0 the most recent share of the
training bars is held out, and after each epoch the policy's expected reward on them (the mean over bars of
sum_k pi(k | conditions_t) x label_k,t: REINFORCE's own objective, out of sample) is measured; the weights of
the best epoch are kept and training stops after ``patience`` epochs without improvement (``epochs`` is then a
ceiling). Early stopping is not the default: on the synthetic markets of bench/gate_calibration.py it did
not raise what the tuner captured of a known edge (-0.09 +- 0.10 Sharpe; the held-out reward is noise-bound
and stops improving within a few epochs).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ludus.cpo.labels import Labels, _device_of
from ludus.cpo.model import _stats
from ludus.cpo.training import GRAD_CLIP, TrainingDiverged, holdout_tail, usable_rows
from ludus.errors import InsufficientDataError


class PolicyGradientConfig(BaseModel):
    """Size and training of the softmax policy."""

    model_config = ConfigDict(extra="forbid")

    hidden: int = Field(16, ge=0, le=1024, description="hidden width; 0: a linear policy")
    epochs: int = Field(30, ge=1, le=1000, description="epochs (the most, with validation_fraction > 0)")
    lr: float = Field(1e-2, gt=0.0, le=1.0)
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    batch_bars: int = Field(256, ge=1, le=1_000_000)
    samples: int = Field(8, ge=1, le=1024, description="actions sampled per bar and step")
    entropy: float = Field(0.01, ge=0.0, le=10.0, description="entropy bonus (keeps exploring)")
    patience: int = Field(5, ge=1, description="epochs without improvement on the validation tail before stopping")
    validation_fraction: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="share of the training bars, the most recent, held out to stop training (0, the default: "
        "all epochs)",
    )


class SoftmaxPolicy(nn.Module):
    """logits [N, K] of conditions [N, F] (normalized with training statistics baked in)."""

    def __init__(self, n_conditions: int, n_candidates: int, hidden: int) -> None:
        super().__init__()
        self.register_buffer("cond_mean", torch.zeros(n_conditions))
        self.register_buffer("cond_std", torch.ones(n_conditions))
        if hidden > 0:
            self.net = nn.Sequential(nn.Linear(n_conditions, hidden), nn.GELU(), nn.Linear(hidden, n_candidates))
        else:
            self.net = nn.Sequential(nn.Linear(n_conditions, n_candidates))

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        mean, std = self.get_buffer("cond_mean"), self.get_buffer("cond_std")
        out: torch.Tensor = self.net((cond - mean) / std)
        return out


def fit_softmax_policy(
    config: PolicyGradientConfig,
    conditions: np.ndarray,
    labels: Labels,
    rows: np.ndarray,
    *,
    seed: int = 0,
    device: str = "cpu",
) -> SoftmaxPolicy:
    """REINFORCE on decision rows ``rows`` (deterministic given the seed)."""
    dev = _device_of(device)
    cond_np = np.asarray(conditions, dtype=np.float32)
    head, tail = holdout_tail(rows, config.validation_fraction)
    train = usable_rows(cond_np, labels, head)
    val = usable_rows(cond_np, labels, tail) if tail is not None else np.zeros(0, dtype=np.int64)
    if train.size == 0:
        raise InsufficientDataError(
            "lookback", int(np.asarray(rows).size), "no training bar has finite conditions and labels"
        )
    rewards = labels.label_returns[:, torch.from_numpy(train)].T.double()  # [N, K]
    scale = float(rewards.std()) or 1.0
    advantage = ((rewards - rewards.mean(dim=1, keepdim=True)) / scale).float().to(dev)
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        policy = SoftmaxPolicy(cond_np.shape[1], labels.n_candidates, config.hidden)
        mean, std = _stats(cond_np[train].astype(np.float64))
        policy.get_buffer("cond_mean").copy_(torch.from_numpy(mean))
        policy.get_buffer("cond_std").copy_(torch.from_numpy(std))
        policy.to(dev)
        cond = torch.from_numpy(cond_np[train]).to(dev)
        val_cond = torch.from_numpy(cond_np[val]).to(dev)
        val_reward = labels.label_returns[:, torch.from_numpy(val)].T.float().to(dev)  # [V, K]
        best_value, best_state, stale = -math.inf, None, 0
        gen = torch.Generator(device=dev).manual_seed(seed)
        order_gen = torch.Generator().manual_seed(seed + 1)
        opt = torch.optim.AdamW(policy.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        n = train.size
        for _ in range(config.epochs):
            order = torch.randperm(n, generator=order_gen).to(dev)
            for start in range(0, n, config.batch_bars):
                bars = order[start : start + config.batch_bars]
                logp = torch.log_softmax(policy(cond[bars]), dim=1)
                actions = torch.multinomial(logp.exp(), config.samples, replacement=True, generator=gen)
                gain = advantage[bars].gather(1, actions)
                entropy = -(logp.exp() * logp).sum(1).mean()
                loss = -(logp.gather(1, actions) * gain).mean() - config.entropy * entropy
                if not torch.isfinite(loss):
                    raise TrainingDiverged(f"policy-gradient loss became {loss.item()}")
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward untyped
                torch.nn.utils.clip_grad_norm_(policy.parameters(), GRAD_CLIP)
                opt.step()
            if val.size:
                value = expected_reward(policy, val_cond, val_reward)
                if value > best_value + 1e-12:
                    best_value, stale = value, 0
                    best_state = copy.deepcopy(policy.state_dict())
                else:
                    stale += 1
                if stale >= config.patience:
                    break
        if best_state is not None:
            policy.load_state_dict(best_state)
    return policy.eval()


@torch.no_grad()
def expected_reward(policy: SoftmaxPolicy, cond: torch.Tensor, rewards: torch.Tensor) -> float:
    """Mean over bars of sum_k pi(k | cond_t) rewards[t, k] (restores the policy's train mode)."""
    was_training = policy.training
    policy.eval()
    value = float((torch.softmax(policy(cond), dim=1) * rewards).sum(1).mean())
    policy.train(was_training)
    return value


@torch.no_grad()
def greedy_choices(policy: SoftmaxPolicy, conditions: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """argmax_k pi(k | conditions_t) for each bar of ``idx`` (ties: lowest k)."""
    dev = next(policy.parameters()).device
    cond = torch.from_numpy(np.asarray(conditions, dtype=np.float32)[np.asarray(idx, dtype=np.int64)]).to(dev)
    return np.asarray(policy(cond).argmax(dim=1).cpu().numpy(), dtype=np.int64)


__all__ = ["PolicyGradientConfig", "SoftmaxPolicy", "expected_reward", "fit_softmax_policy", "greedy_choices"]
