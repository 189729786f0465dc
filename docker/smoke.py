#!/usr/bin/env python3
"""Smoke check of a Ludus image: it can join its Ray cluster and compute (run at build time and on nodes).

    ludus-smoke --python 3.10.12 --ray 2.60.0      # what the Dockerfile runs (no GPU needed)
    ludus-smoke --require-gpu                      # on a GPU node: torch sees CUDA, ONNX runs on CUDA

Checks, each a reason to fail:
- CPython is exactly ``--python`` (Ray refuses a node whose Python differs from the head's, patch level
  included) and Ray exactly ``--ray``;
- torch imports and multiplies two matrices correctly; with ``LUDUS_TORCH_CUDA=1`` (the GPU variants) it is a
  CUDA build;
- onnxruntime offers ``LUDUS_ORT_PROVIDER`` (the provider the variant ships) and, for a GPU provider, that
  provider's shared library loads with every library it needs (a broken CUDA/cuDNN stack fails here, without
  a GPU); one ONNX session is created on the providers that load and its output matches numpy;
- ``--require-gpu``: torch sees a CUDA device and the session really runs on the GPU provider.

Prints one JSON line describing what it found; exit status 1 with the reasons when a check fails.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import sys

# onnxruntime provider -> its shared library in onnxruntime/capi
PROVIDER_LIBRARIES = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "tensorrt",
                      "ROCMExecutionProvider": "rocm"}


def check_python(expected: str | None, report: dict, failures: list[str]) -> None:
    report["python"] = platform.python_version()
    if expected and report["python"] != expected:
        failures.append(f"Python {report['python']} != {expected} (Ray refuses nodes with another Python)")


def check_ray(expected: str | None, report: dict, failures: list[str]) -> None:
    import ray

    report["ray"] = ray.__version__
    if expected and ray.__version__ != expected:
        failures.append(f"Ray {ray.__version__} != {expected}")


def check_torch(require_gpu: bool, report: dict, failures: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    got = (x @ x.T).tolist()
    want = [[sum(a * b for a, b in zip(r, s)) for s in x.tolist()] for r in x.tolist()]
    report["torch"] = torch.__version__
    report["torch_cuda"] = torch.version.cuda
    if got != want:
        failures.append(f"torch computes {got}, expected {want}")
    if os.environ.get("LUDUS_TORCH_CUDA") == "1" and not torch.version.cuda:
        failures.append(f"torch {torch.__version__} is not a CUDA build (the GPU variant installed the wrong wheel)")
    if require_gpu:
        if not torch.cuda.is_available():
            failures.append("torch sees no CUDA device")
        else:
            report["torch_device"] = torch.cuda.get_device_name(0)
            y = (x.cuda() @ x.cuda().T).cpu().tolist()
            if y != want:
                failures.append(f"torch on CUDA computes {y}, expected {want}")


def tiny_model() -> bytes:
    """Y = X @ W + B (float32), built with onnx.helper."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(3, 2), "W")
    b = numpy_helper.from_array(np.array([0.5, -1.0], dtype=np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["XW"]), helper.make_node("Add", ["XW", "B"], ["Y"])],
        "ludus_smoke", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 2])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by every onnxruntime >= 1.11
    onnx.checker.check_model(model)
    return model.SerializeToString()


def check_onnx(expected_provider: str | None, require_gpu: bool, report: dict, failures: list[str]) -> None:
    import numpy as np
    import onnxruntime as ort

    available = ort.get_available_providers()
    report["onnxruntime"] = ort.__version__
    report["providers_available"] = available
    if expected_provider and expected_provider not in available:
        failures.append(f"onnxruntime {ort.__version__} has no {expected_provider} (has {available})")
    loadable = []
    capi = os.path.join(os.path.dirname(ort.__file__), "capi")
    for provider in available:
        lib = PROVIDER_LIBRARIES.get(provider)
        if lib is None:
            loadable.append(provider)
            continue
        try:
            ctypes.CDLL(os.path.join(capi, "libonnxruntime_providers_shared.so"), mode=ctypes.RTLD_GLOBAL)
            ctypes.CDLL(os.path.join(capi, f"libonnxruntime_providers_{lib}.so"))
            loadable.append(provider)
        except OSError as exc:
            report.setdefault("providers_unloadable", {})[provider] = str(exc)
            if provider == expected_provider:
                failures.append(f"{provider}'s library does not load: {exc}")
    report["providers_loadable"] = loadable
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # a GPU provider without a GPU falls back to CPU; that is not news here
    session = ort.InferenceSession(tiny_model(), options, providers=loadable or ["CPUExecutionProvider"])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    (y,) = session.run(None, {"X": x})
    want = x @ np.arange(6, dtype=np.float32).reshape(3, 2) + np.array([0.5, -1.0], dtype=np.float32)
    report["session_providers"] = session.get_providers()
    if not np.allclose(y, want):
        failures.append(f"ONNX session computes {y.tolist()}, expected {want.tolist()}")
    if require_gpu and expected_provider and expected_provider not in session.get_providers():
        failures.append(f"the ONNX session did not run on {expected_provider} ({session.get_providers()})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", help="exact CPython version (X.Y.Z)")
    parser.add_argument("--ray", help="exact Ray version")
    parser.add_argument("--only-python", action="store_true", help="check the interpreter only")
    parser.add_argument("--require-gpu", action="store_true", help="on a GPU node: CUDA must really be used")
    args = parser.parse_args(argv)
    report: dict = {}
    failures: list[str] = []
    check_python(args.python, report, failures)
    if not args.only_python:
        provider = os.environ.get("LUDUS_ORT_PROVIDER") or None
        for check in (lambda: check_ray(args.ray, report, failures),
                      lambda: check_torch(args.require_gpu, report, failures),
                      lambda: check_onnx(provider, args.require_gpu, report, failures)):
            try:
                check()
            except Exception as exc:  # noqa: BLE001 - an import or runtime error is a failed check
                failures.append(f"{type(exc).__name__}: {exc}")
    report["ok"] = not failures
    print(json.dumps(report, sort_keys=True))
    for failure in failures:
        print(f"ludus-smoke: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
