"""The conditional model f(conditions_t, θ_k, positions_k,t) -> expected next-bar net return of θ_k.

An MLP over the concatenation of normalized conditions, normalized θ features and θ_k's position at the
decision bar and at the bar before it (-1/0/+1, known at the close of t): the position decides the sign of
the next bar's label, and a flat one decides all of it; the pair decides the label's own cost. The
normalization statistics (computed on training rows only) are registered buffers, so they are saved with the
state dict and baked into the ONNX graph: the artifact takes raw inputs and returns a raw return.
:class:`CPOEnsemble` averages models fitted with different seeds (what the policy and the export use).
"""

from __future__ import annotations

from typing import Any, Literal, cast

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class ModelConfig(BaseModel):
    """Hyperparameters of the conditional model and its training (searched by Optuna in ludus.search)."""

    model_config = ConfigDict(extra="forbid")

    hidden: int = Field(64, ge=4, le=1024, description="width of each hidden layer")
    layers: int = Field(2, ge=1, le=8, description="number of hidden layers")
    dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="off by default: on CPU its random masks cost ~30% "
        "of a step for no measured gain (GPU spaces search it)",
    )
    lr: float = Field(1e-3, gt=0.0, le=1.0)
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    epochs: int = Field(
        20,
        ge=1,
        le=1000,
        description="epochs; with a validation tail (validation_fraction > 0) "
        "the most epochs, training stops after `patience` epochs without improvement on it",
    )
    batch_size: int = Field(1024, ge=8, le=1_000_000, description="training rows (bar, candidate) per step")
    loss: Literal["mse", "rank"] = Field("mse", description="mse, or mse + listwise ranking loss across θ")
    rank_weight: float = Field(1.0, ge=0.0, description="weight of the listwise term when loss='rank'")
    patience: int = Field(5, ge=1, description="epochs without validation improvement before stopping")
    candidates_per_step: int | None = Field(
        None,
        ge=2,
        description="candidates sampled per training step when K is larger (None: "
        "CANDIDATES_PER_STEP); every candidate is still seen every epoch on average",
    )
    validation_fraction: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="share of the training bars, the most recent, held out to stop training when the loss on "
        "them stops improving (0, the default: train all `epochs` on every bar; bench/gate_calibration.py "
        "measured early stopping lowering what CPO captured of a known edge, -0.32 +- 0.08 Sharpe)",
    )

    @classmethod
    def search_space(cls) -> dict[str, dict[str, Any]]:
        """Declarative Optuna ranges: {name: {"type": "int"|"float"|"categorical", low, high, log, choices}}."""
        return {
            "hidden": {"type": "categorical", "choices": [16, 32, 64, 128]},
            "layers": {"type": "int", "low": 1, "high": 3},
            "dropout": {"type": "float", "low": 0.0, "high": 0.3},  # trials/models/cpo.yaml fixes 0 on CPU
            "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
            "epochs": {"type": "int", "low": 5, "high": 40},
            "batch_size": {"type": "categorical", "choices": [256, 512, 1024, 2048]},
            "loss": {"type": "categorical", "choices": ["mse", "rank"]},
        }

    @classmethod
    def suggest(cls, trial: Any, base: ModelConfig | None = None) -> ModelConfig:
        """A config with every searched field suggested by an Optuna trial (other fields from ``base``)."""
        values = (base or cls()).model_dump()
        for name, spec in cls.search_space().items():
            if spec["type"] == "int":
                values[name] = trial.suggest_int(name, spec["low"], spec["high"], log=spec.get("log", False))
            elif spec["type"] == "float":
                values[name] = trial.suggest_float(name, spec["low"], spec["high"], log=spec.get("log", False))
            else:
                values[name] = trial.suggest_categorical(name, spec["choices"])
        return cls(**values)


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = np.nanmean(x, axis=0).astype(np.float64)
    std = np.nanstd(x, axis=0).astype(np.float64)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    # a constant feature (std 0) is passed through centred instead of blowing up
    std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


N_POSITIONS = 2  # the candidate's position at the decision bar and at the bar before
#: candidates per training step when a fit's K is larger and the config does not say (rows per epoch stay
#: proportional to the bars, not to bars x K)
CANDIDATES_PER_STEP = 256


class CPOModel(nn.Module):
    """f(cond [N, F], theta [N, D], positions [N, 2]) -> expected next-bar net return [N] (raw units)."""

    # registered buffers (normalization statistics, saved with the weights and exported to ONNX)
    cond_mean: torch.Tensor
    cond_std: torch.Tensor
    theta_mean: torch.Tensor
    theta_std: torch.Tensor
    label_mean: torch.Tensor
    label_std: torch.Tensor

    def __init__(self, n_conditions: int, n_theta: int, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.n_conditions = int(n_conditions)
        self.n_theta = int(n_theta)
        self.n_positions = N_POSITIONS
        self.register_buffer("cond_mean", torch.zeros(n_conditions))
        self.register_buffer("cond_std", torch.ones(n_conditions))
        self.register_buffer("theta_mean", torch.zeros(n_theta))
        self.register_buffer("theta_std", torch.ones(n_theta))
        self.register_buffer("label_mean", torch.zeros(()))
        self.register_buffer("label_std", torch.ones(()))
        width = self.config.hidden
        blocks: list[nn.Module] = []
        fan_in = n_conditions + n_theta + N_POSITIONS
        for _ in range(self.config.layers):
            blocks += [nn.Linear(fan_in, width), nn.GELU()]
            if self.config.dropout > 0:
                blocks.append(nn.Dropout(self.config.dropout))
            fan_in = width
        blocks.append(nn.Linear(fan_in, 1))
        self.net = nn.Sequential(*blocks)

    def set_normalization(self, conditions: np.ndarray, theta: np.ndarray, labels: np.ndarray) -> None:
        """Statistics of the training rows: conditions [N, F], theta [K, D], labels (any shape, NaN ignored)."""
        c_mean, c_std = _stats(np.asarray(conditions, dtype=np.float64))
        t_mean, t_std = _stats(np.asarray(theta, dtype=np.float64))
        lab = np.asarray(labels, dtype=np.float64).ravel()
        lab = lab[np.isfinite(lab)]
        l_mean = float(lab.mean()) if lab.size else 0.0
        l_std = float(lab.std()) if lab.size else 1.0
        if not np.isfinite(l_std) or l_std <= 1e-12:
            l_std = 1.0
        dev = self.cond_mean.device
        self.cond_mean.copy_(torch.from_numpy(c_mean).to(dev))
        self.cond_std.copy_(torch.from_numpy(c_std).to(dev))
        self.theta_mean.copy_(torch.from_numpy(t_mean).to(dev))
        self.theta_std.copy_(torch.from_numpy(t_std).to(dev))
        self.label_mean.fill_(l_mean)
        self.label_std.fill_(l_std)

    def forward_normalized(self, cond: torch.Tensor, theta: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Prediction in label-standardized units (what the training loss sees)."""
        x = torch.cat(
            [(cond - self.cond_mean) / self.cond_std, (theta - self.theta_mean) / self.theta_std, positions], dim=-1
        )
        out: torch.Tensor = self.net(x)
        return out.squeeze(-1)

    def forward_block(self, cond: torch.Tensor, theta: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Normalized predictions [B, K] of B bars' conditions [B, F] against K θ [K, D] with their positions
        [B, K, 2], equal to :meth:`forward_normalized` on the concatenated rows without ever building the
        [B*K, F+D+2] input: the first layer is applied in parts (the condition part once per bar, the θ part
        once per candidate, the position part per row) and broadcast-added."""
        first = cast(nn.Linear, self.net[0])
        w, f, d = first.weight, self.n_conditions, self.n_theta
        c = torch.addmm(first.bias, (cond - self.cond_mean) / self.cond_std, w[:, :f].T)  # [B, H]
        t = ((theta - self.theta_mean) / self.theta_std) @ w[:, f : f + d].T  # [K, H]
        h = torch.matmul(positions, w[:, f + d :].T)  # [B, K, H]
        h = h + c.unsqueeze(1) + t.unsqueeze(0)
        out: torch.Tensor = self.net[1:](h)
        return out.squeeze(-1)

    def forward(self, cond: torch.Tensor, theta: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.forward_normalized(cond, theta, positions) * self.label_std + self.label_mean

    def hparams(self) -> dict[str, Any]:
        """What :meth:`from_state` needs besides the state dict."""
        return {"n_conditions": self.n_conditions, "n_theta": self.n_theta, "config": self.config.model_dump()}

    @classmethod
    def from_state(cls, hparams: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> CPOModel:
        model = cls(hparams["n_conditions"], hparams["n_theta"], ModelConfig(**hparams["config"]))
        model.load_state_dict(state_dict)
        return model.eval()


class CPOEnsemble(nn.Module):
    """The average prediction of models fitted with different seeds (same inputs as :class:`CPOModel`)."""

    def __init__(self, members: list[CPOModel]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.n_conditions = members[0].n_conditions
        self.n_theta = members[0].n_theta
        self.n_positions = members[0].n_positions
        self.config = members[0].config

    def forward(self, cond: torch.Tensor, theta: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(cond, theta, positions) for m in self.members]).mean(0)


ScoringModel = CPOModel | CPOEnsemble
