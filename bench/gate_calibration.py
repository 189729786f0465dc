"""Calibration of the decision rule: how often a challenger replaces the champion when no challenger is better
(false activation), how often when one truly is (power), and the smallest edge detected with 80% power.

Every market is 10 years of daily bars (2,520) of a synthetic process whose truth is known, and goes through
the REAL decision path with the DEFAULT evaluation settings: ``ludus.cpo.origins.rolling_origins`` (6 windows,
embargo 5, the first origin after 2 years, every later bar out of sample), every arm refitted at each origin
(``ludus.cpo.evaluation.evaluate``), and the rule (``ludus.cpo.decision.decide``: paired stationary block
bootstrap SE with 1,000 resamples, Šidák z deflated for the configurations tried, alpha 0.05).

Markets (``tests/cpo/cpo_synth.momentum_regime_market``): the candidates are sign-momentum rules (windows
1, 2, 3, 5, 10, long or contrarian: 10 θ); the champion is the published momentum-1 θ.

* null ``iid``: i.i.d. returns - no θ and no policy has any edge.
* null ``constant``: one autocorrelation (+0.08) everywhere - momentum-1, the champion, is the best θ and the
  conditions carry no information.
* edge ``regime``: a calm regime (3/4 of the bars, autocorrelation +0.08) and a stress regime (1/4, negative
  autocorrelation) that a VIX-like condition reveals; a regime lasts 20 bars on average in stress, 60 calm
  (so that 10 years hold some 30 stress spells: with much longer spells the edge a 10-year sample actually
  contains varies from market to market far more than the statistic does). The stress autocorrelation is
  calibrated so that the regime oracle (momentum in calm, contrarian in stress) beats the champion by
  ``edge`` annualized Sharpe, net of costs, on a 200,000-bar market of the same process (itself a sample,
  re-measured on another one below).

The arms are the pipeline's, sized to run on a CPU in seconds: CPO (an MLP of 2 x 32 units, 8 epochs, 3
seeds: its hyperparameters fixed, 1 configuration), the unconditional best θ (the 10 candidates are the whole
space: no θ search), the defaults, the equal-weight ensemble, the rolling re-optimization (252-bar window,
refit every 63) and the policy-gradient tuner (20 epochs). Configurations tried: 10 candidates + 1 model + 6
challengers = 17, so z* = 2.75.

    .venv/bin/python bench/gate_calibration.py [--null 100] [--power 100] [--sweep 40] [--workers 1]

Last lines: ``false_activation=<rate>``, ``power=<rate at +1.0>``, ``min_detectable_sharpe=<edge>``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "cpo"))  # the synthetic markets and the tiny strategy of the CPO tests

T_BARS = 2520
PHI_CALM = 0.08
P_STRESS = 0.25
EDGES = (1.0, 2.0, 3.0, 4.0, 6.0)
STAY = 0.95  # probability a regime lasts one more bar in stress (calm: set by the stress share)
MODEL = {"hidden": 32, "layers": 2, "dropout": 0.0, "epochs": 8, "batch_size": 512, "lr": 3e-3}
PG_EPOCHS = 20
HEADLINE_EDGE = 1.0
CALIBRATION_BARS = 200_000
TARGET_POWER = 0.8


@dataclass(frozen=True)
class Task:
    kind: str  # "iid", "constant" or "regime"
    edge: float  # the true edge of the best policy over the champion (0 for the nulls)
    phi_stress: float
    seed: int


@dataclass(frozen=True)
class Outcome:
    task: Task
    changed: bool
    chosen: str
    best: str
    best_z: float
    best_delta: float
    best_se: float
    z_threshold: float
    n_configurations: int
    passing_z: dict[str, float]  # publishable challengers with delta > 0: their z (re-judged at other thresholds)
    oracle_delta: float  # the regime oracle's Sharpe minus the champion's on the same out-of-sample bars
    cpo_delta: float
    pg_delta: float
    seconds: float


def run_market(task: Task) -> Outcome:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from cpo_synth import COST_BPS, MOMENTUM_1, momentum_regime_market, run_decision

    from ludus.constants import ARM_CPO, ARM_POLICY_GRADIENT, DECISION_CHANGED, ROLE_CHALLENGER
    from ludus.cpo.origins import default_min_train_bars
    from ludus.cpo.sharpe import annualized_sharpe

    start = time.perf_counter()
    if task.kind == "iid":
        market = momentum_regime_market(T_BARS, task.seed, p_stress=0.0, phi_calm=0.0, phi_stress=0.0)
    elif task.kind == "constant":
        market = momentum_regime_market(T_BARS, task.seed, p_stress=0.0, phi_calm=PHI_CALM, phi_stress=PHI_CALM)
    else:
        market = momentum_regime_market(T_BARS, task.seed, p_stress=P_STRESS, phi_calm=PHI_CALM,
                                        phi_stress=task.phi_stress, stay=STAY)
    run = run_decision(market, champion_k=MOMENTUM_1, windows=6, min_train=default_min_train_bars(252.0),
                       samples=1000, seed=task.seed, model=MODEL, pg_epochs=PG_EPOCHS)
    rep = run.report
    best = rep.verdict(rep.best_challenger) if rep.best_challenger else None
    idx = run.evaluation.origins.oos_idx
    r = run.labels.close_returns.double().numpy()
    momentum = run.labels.positions[MOMENTUM_1].double().numpy()
    oracle = np.where(market.regime == 1, -momentum, momentum)[idx]
    prev = np.concatenate([[0.0], oracle[:-1]])
    oracle_net = oracle * r[idx + 1] - COST_BPS * 1e-4 * np.abs(oracle - prev)
    oracle_delta = float(annualized_sharpe(oracle_net, 252.0)) - rep.verdict(rep.champion).sharpe
    passing = {v.name: v.z for v in rep.verdicts
               if v.role == ROLE_CHALLENGER and v.publishable and v.delta_sharpe > 0}
    return Outcome(task=task, changed=rep.outcome == DECISION_CHANGED, chosen=rep.chosen,
                   best=best.name if best else "", best_z=best.z if best else 0.0,
                   best_delta=best.delta_sharpe if best else 0.0, best_se=best.delta_se if best else 0.0,
                   z_threshold=rep.z_threshold, n_configurations=rep.n_configurations, passing_z=passing,
                   oracle_delta=oracle_delta, cpo_delta=rep.verdict(ARM_CPO).delta_sharpe,
                   pg_delta=rep.verdict(ARM_POLICY_GRADIENT).delta_sharpe, seconds=time.perf_counter() - start)


def _mean(group: list[Outcome], name: str) -> float:
    return sum(getattr(o, name) for o in group) / len(group) if group else float("nan")


def rate(flags: list[bool]) -> tuple[float, float]:
    """The proportion and its binomial standard error."""
    n = len(flags)
    p = sum(flags) / n if n else float("nan")
    return p, math.sqrt(p * (1 - p) / n) if n else float("nan")


def crossing(points: list[tuple[float, float]], target: float) -> float:
    """The smallest edge where power reaches ``target``, linear between the measured edges (inf: never)."""
    points = sorted(points)
    for (e0, p0), (e1, p1) in pairwise(points):
        if p0 < target <= p1:
            return e0 + (target - p0) * (e1 - e0) / (p1 - p0)
    if points and points[0][1] >= target:
        return points[0][0]
    return math.inf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--null", type=int, default=100, help="markets of each null kind (two kinds)")
    parser.add_argument("--power", type=int, default=100, help=f"regime markets at +{HEADLINE_EDGE} Sharpe")
    parser.add_argument("--sweep", type=int, default=20, help="regime markets at each other edge")
    parser.add_argument("--workers", type=int, default=1, help="processes (each with one torch thread)")
    args = parser.parse_args()

    from cpo_synth import oracle_edge, phi_for_edge

    from ludus.cpo.deflation import z_threshold

    started = time.perf_counter()
    print(f"loadavg {os.getloadavg()}  workers {args.workers}  torch threads per worker 1  cpus {os.cpu_count()}")
    print(f"\ncalibration of the regime markets (p_stress={P_STRESS}, phi_calm={PHI_CALM}, stay={STAY}, "
          f"{CALIBRATION_BARS:,} "
          f"bars; 'again': the oracle's edge re-measured on another market of the same process):")
    print(f"{'edge':>6} {'phi_stress':>10} {'again':>9}")
    phis: dict[float, float] = {}
    for edge in EDGES:
        phis[edge] = phi_for_edge(edge, p_stress=P_STRESS, phi_calm=PHI_CALM, T=CALIBRATION_BARS, stay=STAY)
        again = oracle_edge(p_stress=P_STRESS, phi_calm=PHI_CALM, phi_stress=phis[edge], T=CALIBRATION_BARS, seed=2,
                            stay=STAY)
        print(f"{edge:6.2f} {phis[edge]:10.4f} {again:9.3f}")

    tasks = [Task("iid", 0.0, 0.0, 10_000 + i) for i in range(args.null)]
    tasks += [Task("constant", 0.0, PHI_CALM, 20_000 + i) for i in range(args.null)]
    for edge in EDGES:
        n = args.power if edge == HEADLINE_EDGE else args.sweep
        tasks += [Task("regime", edge, phis[edge], 30_000 + int(edge * 1000) * 10 + i) for i in range(n)]
    print(f"\n{len(tasks)} markets of {T_BARS} bars ...", flush=True)
    if args.workers > 1:
        with mp.get_context("spawn").Pool(args.workers) as pool:
            outcomes = pool.map(run_market, tasks, chunksize=1)
    else:
        outcomes = []
        for i, t in enumerate(tasks, 1):
            outcomes.append(run_market(t))
            if i % 25 == 0:
                print(f"  {i}/{len(tasks)} markets, {time.perf_counter() - started:.0f} s", flush=True)

    z_star = outcomes[0].z_threshold
    n_conf = outcomes[0].n_configurations
    n_challengers = 6
    z_challengers_only = z_threshold(n_challengers, 0.05)
    print(f"\nrule: z* = {z_star:.3f} for {n_conf} configurations (alpha 0.05); per market "
          f"{sum(o.seconds for o in outcomes) / len(outcomes):.1f} s")
    print("\nreplaced: share of markets where a challenger replaced the champion; SE(Δ): the best challenger's; "
          "oracle/cpo/pg Δ: mean Sharpe minus the champion's on the out-of-sample bars (the regime oracle, CPO, "
          "the policy-gradient tuner)")
    print(f"{'markets':<22} {'n':>4} {'replaced':>9} {'± SE':>6} {'SE(Δ)':>6} {'oracle Δ':>8} {'cpo Δ':>6} "
          f"{'pg Δ':>6}  chosen arms")
    nulls = [o for o in outcomes if o.task.kind != "regime"]
    for label, group in (("null: iid", [o for o in nulls if o.task.kind == "iid"]),
                         ("null: constant", [o for o in nulls if o.task.kind == "constant"]),
                         ("null: both", nulls)):
        p, se = rate([o.changed for o in group])
        arms = Counter(o.chosen for o in group if o.changed)
        print(f"{label:<22} {len(group):4d} {p:9.3f} {se:6.3f} {_mean(group, 'best_se'):6.3f} "
              f"{_mean(group, 'oracle_delta'):+8.2f} {_mean(group, 'cpo_delta'):+6.2f} {_mean(group, 'pg_delta'):+6.2f}  "
              f"{dict(arms) or '-'}")
    points, points_loose = [], []
    for edge in EDGES:
        group = [o for o in outcomes if o.task.kind == "regime" and o.task.edge == edge]
        p, se = rate([o.changed for o in group])
        loose = rate([any(z >= z_challengers_only for z in o.passing_z.values()) for o in group])[0]
        points.append((edge, p))
        points_loose.append((edge, loose))
        arms = Counter(o.chosen for o in group if o.changed)
        print(f"{f'regime: +{edge:.1f} Sharpe':<22} {len(group):4d} {p:9.3f} {se:6.3f} {_mean(group, 'best_se'):6.3f} "
              f"{_mean(group, 'oracle_delta'):+8.2f} {_mean(group, 'cpo_delta'):+6.2f} {_mean(group, 'pg_delta'):+6.2f}  "
              f"{dict(arms) or '-'}")
    false_activation, fa_se = rate([o.changed for o in nulls])
    power, power_se = next(rate([o.changed for o in outcomes if o.task.kind == "regime" and o.task.edge == e])
                           for e in EDGES if e == HEADLINE_EDGE)
    mde = crossing(points, TARGET_POWER)
    print(f"\nfor scale, the same runs judged with z* = {z_challengers_only:.3f} (only the {n_challengers} challengers "
          f"counted, not the candidates and the model): power "
          + ", ".join(f"+{e:.1f}: {p:.2f}" for e, p in points_loose)
          + f"; 80% at +{crossing(points_loose, TARGET_POWER):.2f}")
    print(f"\nfalse activation {false_activation:.3f} ± {fa_se:.3f} (n={len(nulls)}), power at +{HEADLINE_EDGE:.1f} "
          f"{power:.3f} ± {power_se:.3f}, 80% power from +{mde:.2f} annualized Sharpe")
    print(f"wall {time.perf_counter() - started:.0f} s, loadavg {os.getloadavg()}")
    print(f"false_activation={false_activation:.4f}")
    print(f"power={power:.4f}")
    print(f"min_detectable_sharpe={mde:.3f}")


if __name__ == "__main__":
    main()
