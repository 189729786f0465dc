"""ONNX export: parity with torch (normalization baked in), dynamic batch, provider choice, recommend."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from cpo_synth import CANDIDATES, COST_BPS, SMALL, WARMUP, SignMomentum, regime_market

from ludus.cpo.labels import build_labels
from ludus.cpo.model import CPOEnsemble, ModelConfig
from ludus.cpo.onnx_export import OPSET, OnnxScorer, to_onnx
from ludus.cpo.policy import choose
from ludus.cpo.recommend import recommend
from ludus.cpo.training import fit
from ludus.errors import InputError, InsufficientDataError


@pytest.fixture(scope="module")
def trained():
    market = regime_market(T=700, seed=9, phi=0.35)
    labels = build_labels(SignMomentum(), market.bars, CANDIDATES, cost_bps=COST_BPS)
    model = fit(
        ModelConfig(**{**SMALL, "epochs": 4, "dropout": 0.2}), market.conditions, labels, np.arange(WARMUP, 500), seed=0
    )
    return market, labels, model, to_onnx(model)


def test_graph_is_valid_with_opset_and_dynamic_batch(trained) -> None:
    *_, blob = trained
    proto = onnx.load_from_string(blob)
    onnx.checker.check_model(proto)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= OPSET
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert dims["conditions"][0] == "n" and dims["theta"][0] == "n" and dims["positions"] == ["n", 2]


def test_onnx_matches_torch_on_random_and_real_inputs(trained) -> None:
    market, labels, model, blob = trained
    scorer = OnnxScorer(blob, "cpu")
    assert scorer.providers == ["CPUExecutionProvider"]
    rng = np.random.default_rng(0)
    for n in (1, 7, 513):
        c = (rng.normal(0, 1, (n, 3)) * [8, 0.1, 0.02] + [22, 0.2, 0]).astype(np.float32)
        t = labels.theta[rng.integers(0, len(CANDIDATES), n)]
        p = rng.integers(-1, 2, (n, 2)).astype(np.float32)
        want = model(torch.from_numpy(c), torch.from_numpy(t), torch.from_numpy(p)).detach().numpy()
        np.testing.assert_allclose(scorer.score_rows(c, t, p), want, atol=1e-5, rtol=0)
    for bar in range(WARMUP, len(market.bars), 37):
        p = labels.position_inputs(np.array([bar]))[0]
        want = (
            model(
                torch.from_numpy(np.repeat(market.conditions[bar : bar + 1], len(CANDIDATES), 0)),
                torch.from_numpy(labels.theta),
                p,
            )
            .detach()
            .numpy()
        )
        np.testing.assert_allclose(
            scorer.score(market.conditions[bar], labels.theta, p.numpy()), want, atol=1e-5, rtol=0
        )


def test_a_seed_ensemble_exports_as_one_graph_of_the_average(trained) -> None:
    market, labels, model, _ = trained
    other = fit(ModelConfig(**{**SMALL, "epochs": 2}), market.conditions, labels, np.arange(WARMUP, 500), seed=1)
    ensemble = CPOEnsemble([model, other])
    scorer = OnnxScorer(to_onnx(ensemble), "cpu")
    bar = 600
    c = np.repeat(market.conditions[bar : bar + 1], len(CANDIDATES), 0)
    p = labels.position_inputs(np.array([bar]))[0]
    args = (torch.from_numpy(c), torch.from_numpy(labels.theta), p)
    want = ((model(*args) + other(*args)) / 2).detach().numpy()
    np.testing.assert_allclose(scorer.score(market.conditions[bar], labels.theta, p.numpy()), want, atol=1e-5)


def test_export_leaves_the_model_alone(trained) -> None:
    _, _, model, _ = trained
    assert not model.training and next(model.parameters()).device.type == "cpu"
    assert to_onnx(model) == to_onnx(model)


def test_cuda_preference_falls_back_to_cpu_without_a_gpu(trained) -> None:
    import onnxruntime as ort

    *_, blob = trained
    scorer = OnnxScorer(blob, "cuda")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert scorer.providers[0] == "CUDAExecutionProvider"
    else:
        assert scorer.providers == ["CPUExecutionProvider"]
    with pytest.raises(InputError):
        OnnxScorer(blob, "tpu")


def test_recommend_picks_the_policys_choice_for_the_latest_bar(trained) -> None:
    market, labels, model, blob = trained
    scorer = OnnxScorer(blob)
    last = len(market.bars) - 1
    p = labels.position_inputs(np.array([last]))[0]
    for held in (-1.0, 0.0, 1.0):
        rec = recommend(scorer, market.conditions[last], labels.theta, labels.candidates, p.numpy(), held, COST_BPS)
        assert rec.parameters == CANDIDATES[rec.k] and rec.held_position == held
        # the same choice the torch policy makes on that bar, net of the move from the held position
        torch_scores = (
            model(
                torch.from_numpy(np.repeat(market.conditions[last : last + 1], len(CANDIDATES), 0)),
                torch.from_numpy(labels.theta),
                p,
            )
            .detach()
            .numpy()
        )
        c = COST_BPS * 1e-4
        now, prev = p[:, 0].numpy(), p[:, 1].numpy()
        net = torch_scores + c * np.abs(now - prev) - c * np.abs(now - held)
        assert rec.k == int(np.argmax(net))
        assert rec.expected_return == pytest.approx(float(net.max()), abs=1e-6)
        assert abs(rec.expected_return) < 0.05  # a per-bar return, de-normalized
    assert int(choose(model, market.conditions, labels, [last - 1], cost_bps=0.0)[0]) == int(
        np.argmax(
            scorer.score(
                market.conditions[last - 1], labels.theta, labels.position_inputs(np.array([last - 1]))[0].numpy()
            )
        )
    )
    assert rec.to_dict()["parameters"] == rec.parameters


def test_recommend_errors(trained) -> None:
    market, labels, _, blob = trained
    scorer = OnnxScorer(blob)
    p = np.zeros((len(CANDIDATES), 2), np.float32)
    with pytest.raises(InsufficientDataError):
        recommend(scorer, market.conditions[0], labels.theta, labels.candidates, p)  # warm-up bar: NaN
    with pytest.raises(InputError) as err:
        recommend(scorer, market.conditions[-1][:2], labels.theta, labels.candidates, p)
    assert err.value.field == "conditions"
    with pytest.raises(InputError) as err:
        recommend(scorer, market.conditions[-1], labels.theta, labels.candidates[:3], p)
    assert err.value.field == "candidates"
    with pytest.raises(InputError) as err:
        recommend(scorer, market.conditions[-1], labels.theta, labels.candidates, p[:, :1])
    assert err.value.field == "positions"
