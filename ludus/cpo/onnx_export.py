"""Export the conditional model (normalization included; a seed ensemble as one graph) to ONNX, and score
with onnxruntime.

The graph takes raw ``conditions [N, F]``, raw ``theta [N, D]`` and ``positions [N, 2]`` (each candidate's
position at the decision bar and the bar before; float32, dynamic N) and returns ``score [N]``, the expected
next-bar net return; one artifact serves x86-64 GPUs, CPUs and Jetsons.
"""

from __future__ import annotations

import copy
import io
import warnings
from typing import Any

import numpy as np
import torch

from ludus.cpo.model import N_POSITIONS, ScoringModel
from ludus.errors import InputError

OPSET = 17
INPUTS = ("conditions", "theta", "positions")
OUTPUT = "score"


def to_onnx(model: ScoringModel, *, opset: int = OPSET) -> bytes:
    """ONNX bytes of ``model`` in eval mode on the CPU (the caller's model is not modified)."""
    m = copy.deepcopy(model).to("cpu").eval()
    cond = torch.zeros(2, m.n_conditions)
    theta = torch.zeros(2, m.n_theta)
    positions = torch.zeros(2, N_POSITIONS)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export (which needs onnxscript); for an
        # MLP both give the same graph, and this one needs no extra dependency.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            m,
            (cond, theta, positions),
            buf,  # type: ignore[arg-type]  # a file object is accepted
            dynamo=False,
            opset_version=opset,
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes={**{name: {0: "n"} for name in INPUTS}, OUTPUT: {0: "n"}},
        )
    return buf.getvalue()


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


class OnnxScorer:
    """Runs an exported model; ``device_pref`` "cuda"/"auto" uses the CUDA provider when present, else CPU."""

    def __init__(self, onnx_bytes: bytes, device_pref: str = "auto") -> None:
        import onnxruntime as ort

        if device_pref not in ("auto", "cpu", "cuda"):
            raise InputError("device", device_pref, "must be auto, cpu or cuda")
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if device_pref in ("auto", "cuda") and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(onnx_bytes, sess_options=opts, providers=providers)
        self.providers = self.session.get_providers()
        shapes = {i.name: i.shape for i in self.session.get_inputs()}
        self.n_conditions = int(shapes[INPUTS[0]][1])
        self.n_theta = int(shapes[INPUTS[1]][1])

    def score_rows(self, conditions: Any, theta: Any, positions: Any) -> np.ndarray:
        """Scores [N] of row-paired conditions [N, F], theta [N, D] and positions [N, 2]."""
        feeds = {
            name: np.ascontiguousarray(np.asarray(x, dtype=np.float32))
            for name, x in zip(INPUTS, (conditions, theta, positions), strict=True)
        }
        return np.asarray(self.session.run([OUTPUT], feeds)[0]).reshape(-1)

    def score(self, cond: Any, theta: Any, positions: Any) -> np.ndarray:
        """Scores [K] of one bar's conditions [F] against every candidate θ [K, D] with its positions [K, 2]."""
        c = np.asarray(cond, dtype=np.float32).reshape(-1)
        t = np.asarray(theta, dtype=np.float32)
        p = np.asarray(positions, dtype=np.float32)
        if c.shape[0] != self.n_conditions:
            raise InputError("conditions", c.shape[0], f"the model expects {self.n_conditions} condition features")
        if t.ndim != 2 or t.shape[1] != self.n_theta:
            raise InputError("theta", t.shape, f"the model expects [K, {self.n_theta}] θ features")
        if p.shape != (t.shape[0], N_POSITIONS):
            raise InputError("positions", p.shape, f"the model expects [K, {N_POSITIONS}] candidate positions")
        return self.score_rows(np.broadcast_to(c, (t.shape[0], c.shape[0])), t, p)
