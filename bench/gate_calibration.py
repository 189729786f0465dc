"""Calibration of the decision rule: how often a challenger replaces the champion when no challenger is better
(false activation), how often when one truly is (power), the smallest edge detected with 80% power - and why,
taken apart: what the regime oracle itself could show under the same rule, how much of its edge the learned
arms capture, and what the deflation costs.

Every market is 10 years of daily bars (2,520) of a synthetic process whose truth is known, and goes through
the REAL decision path with the DEFAULT evaluation settings: ``ludus.cpo.origins.rolling_origins`` (6 windows,
embargo 5, the first origin after 2 years, every later bar out of sample), every arm refitted at each origin
(``ludus.cpo.evaluation.evaluate``), and the rule (``ludus.cpo.decision.decide``: paired stationary block
bootstrap SE with 1,000 resamples, Šidák z deflated for the configurations tried, alpha 0.05). The rule is not
tuned here: z, alpha, the deflation and the bootstrap are the production defaults.

Candidates (``tests/cpo/cpo_synth``): sign-momentum rules, windows 1, 2, 3, 5, 10, long or contrarian (10 θ);
the risk-off design adds the flat θ (11). The champion is the published momentum-1 θ everywhere.

Null markets (no conditional edge; the 10 candidates, 17 configurations):

* ``iid``: i.i.d. returns - no θ and no policy has any edge.
* ``constant``: one autocorrelation (+0.08) everywhere - momentum-1, the champion, is the best θ and the
  conditions carry no information.

Edge designs (a calm and a stress regime, stress 1/4 of the bars, spells of 20 bars on average in stress and
60 calm; a VIX-like condition reveals the regime; the edge is the regime oracle's true annualized Sharpe over
the champion net of costs, calibrated on a 200,000-bar market of the same process and re-measured on
another):

* ``risk_off`` - THE HEADLINE. Calm: autocorrelation +0.20 (momentum-1, the champion, is the best θ and the
  oracle holds it: champion and challenger agree on 3/4 of the bars). Stress: no autocorrelation and a
  volatility ``vol_stress`` times the calm one, so every trading θ only pays its costs and takes the noise;
  the flat θ stands aside. The oracle is momentum-1 in calm, flat in stress; ``vol_stress`` is calibrated
  to the edge (2.7x at +1.0: a 12% calm volatility becomes ~33% in stress). 11 candidates, 18
  configurations. Edges 0.5, 0.75, 1.0, 1.5 (the oracle's edge cannot exceed its own Sharpe, ~1.9, however
  loud the stress).
* ``reversal`` - the design of the first calibration, kept and printed: calm autocorrelation +0.08, stress
  NEGATIVE autocorrelation calibrated to the edge, the oracle is momentum-1 in calm and contrarian-1 in
  stress. Edges 1, 2, 3, 4, 6.

Why risk-off is the headline (decided and written here before any risk-off market was run): it is the
common CPO case - candidates that mostly agree and differ in one regime (a filter that turns a trend rule off
in turbulent markets) - while in the reversal design the winning challenger holds the OPPOSITE of the
champion's position on every stress bar, the hardest case for any paired comparison (correlation ~0.5, so
SE(ΔSharpe) ~0.45 over 8 years and the oracle itself reaches z ~2.2 at +1.0, below z* = 2.75 on average: no
rule with that deflation can have 80% power there). Both are printed, with the oracle's own power beside
each.

Decomposition columns (per design and edge): ``oracle`` - the regime oracle judged by the same rule (its
Sharpe minus the champion's over the same out-of-sample bars, divided by the bootstrap SE of that
difference, computed as the rule computes it; its power is the share of markets where that z clears z*): an
upper bound for any learned arm; ``capture`` - the learned arms' mean Δ over the oracle's mean Δ; ``SE(Δ)``;
``JK`` - the analytic Jobson-Korkie/Memmel SE of the oracle's difference (i.i.d. normal assumption) beside the
bootstrap's; ``chall. only`` - the same runs judged at the z* of the 6 challengers alone (the deflation's
share).

Training (``--training``): ``early`` (the bench's default - the headline figures were measured with it;
ludus.cpo's production default is fixed epochs, because this bench measured early stopping lowering the
capture): the CPO model
(an MLP of 2 x 32 units, 3 seeds) and the policy-gradient tuner stop when their loss (the tuner: its expected
reward) on the most recent 20% of each origin's training bars has not improved for 5 epochs, at most 100 (CPO)
or 200 (tuner) epochs, keeping the best epoch's weights. ``fixed``: the first calibration's 8 and 20 epochs on
every training bar (to measure the capture before and after on the same markets).

    .venv/bin/python bench/gate_calibration.py [--null 100] [--power 100] [--power-reversal 30] [--sweep 20]
        [--sweep-reversal N] [--workers 1] [--training early|fixed] [--designs risk_off,reversal] [--capture N]
        [--csv PATH] [--summarize PATH]

Last lines: ``false_activation=<rate>``, ``power=<rate at +1.0, headline design>``,
``min_detectable_sharpe=<edge, headline design>``.
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
P_STRESS = 0.25
STAY = 0.95  # probability a regime lasts one more bar in stress (calm: set by the stress share)
PHI_NULL = 0.08  # the constant null's autocorrelation
HEADLINE = "risk_off"
HEADLINE_EDGE = 1.0
DESIGNS = {
    # name: calm autocorrelation, edges, what the oracle holds in stress
    "risk_off": {"phi_calm": 0.20, "edges": (0.5, 0.75, 1.0, 1.5), "stress": "flat", "seed": 50_000},
    "reversal": {"phi_calm": 0.08, "edges": (1.0, 2.0, 3.0, 4.0, 6.0), "stress": "contrarian", "seed": 30_000},
}
TRAINING = {
    "early": {
        "model": {
            "hidden": 32,
            "layers": 2,
            "dropout": 0.0,
            "epochs": 100,
            "batch_size": 512,
            "lr": 3e-3,
            "patience": 5,
            "validation_fraction": 0.2,
        },
        "pg": {"epochs": 200, "patience": 5, "validation_fraction": 0.2},
    },
    "fixed": {
        "model": {
            "hidden": 32,
            "layers": 2,
            "dropout": 0.0,
            "epochs": 8,
            "batch_size": 512,
            "lr": 3e-3,
            "validation_fraction": 0.0,
        },
        "pg": {"epochs": 20, "validation_fraction": 0.0},
    },
}
CALIBRATION_BARS = 200_000
TARGET_POWER = 0.8
N_CHALLENGERS = 6


@dataclass(frozen=True)
class Task:
    design: str  # "null", or an edge design
    kind: str  # "iid", "constant" (nulls) or "regime"
    edge: float  # the true edge of the oracle over the champion (0 for the nulls)
    param: float  # the stress autocorrelation (reversal) or volatility multiple (risk-off)
    seed: int
    training: str


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
    oracle_se: float  # the bootstrap SE of that difference (the rule's settings)
    oracle_jk_se: float  # the analytic Jobson-Korkie/Memmel SE of it
    cpo_delta: float
    cpo_se: float
    pg_delta: float
    pg_se: float
    cpo_switches: float  # θ switches per year
    cpo_turnover: float
    seconds: float

    @property
    def oracle_z(self) -> float:
        return self.oracle_delta / self.oracle_se if self.oracle_se > 1e-6 else 0.0  # nulls: the oracle IS the champion


def run_market(task: Task) -> Outcome:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from cpo_synth import (
        CANDIDATES,
        CANDIDATES_WITH_FLAT,
        COST_BPS,
        MOMENTUM_1,
        momentum_regime_market,
        oracle_positions,
        run_decision,
    )

    from ludus.constants import ARM_CPO, ARM_POLICY_GRADIENT, DECISION_CHANGED, ROLE_CHALLENGER
    from ludus.cpo.bootstrap import sharpe_difference
    from ludus.cpo.origins import default_min_train_bars
    from ludus.cpo.sharpe import annualized_sharpe, sharpe_difference_se

    start = time.perf_counter()
    candidates = CANDIDATES
    stress = "contrarian"
    if task.kind == "iid":
        market = momentum_regime_market(T_BARS, task.seed, p_stress=0.0, phi_calm=0.0, phi_stress=0.0)
    elif task.kind == "constant":
        market = momentum_regime_market(T_BARS, task.seed, p_stress=0.0, phi_calm=PHI_NULL, phi_stress=PHI_NULL)
    elif task.design == "reversal":
        market = momentum_regime_market(
            T_BARS,
            task.seed,
            p_stress=P_STRESS,
            phi_calm=DESIGNS["reversal"]["phi_calm"],
            phi_stress=task.param,
            stay=STAY,
        )
    else:
        market = momentum_regime_market(
            T_BARS,
            task.seed,
            p_stress=P_STRESS,
            phi_calm=DESIGNS["risk_off"]["phi_calm"],
            phi_stress=0.0,
            stay=STAY,
            vol_stress=task.param,
        )
        candidates, stress = CANDIDATES_WITH_FLAT, "flat"
    samples = 1000
    if task.kind == "oracle":
        return _oracle_only(task, market, candidates, stress, samples, start)
    training = TRAINING[task.training]
    run = run_decision(
        market,
        champion_k=MOMENTUM_1,
        windows=6,
        min_train=default_min_train_bars(252.0),
        samples=samples,
        seed=task.seed,
        model=training["model"],
        pg_epochs=training["pg"],
        candidates=candidates,
    )
    rep = run.report
    best = rep.verdict(rep.best_challenger) if rep.best_challenger else None
    idx = run.evaluation.origins.oos_idx
    r = run.labels.close_returns.double().numpy()
    momentum = run.labels.positions[MOMENTUM_1].double().numpy()
    oracle = oracle_positions(momentum, market.regime, stress)[idx]
    prev = np.concatenate([[0.0], oracle[:-1]])
    oracle_net = oracle * r[idx + 1] - COST_BPS * 1e-4 * np.abs(oracle - prev)
    champion = run.evaluation.paths[rep.champion].returns.astype(np.float64)
    # the oracle judged as the rule judges a challenger: same bars, same bootstrap settings
    oracle_diff = sharpe_difference(oracle_net[None, :], champion, bars_per_year=252.0, samples=samples, seed=task.seed)
    passing = {v.name: v.z for v in rep.verdicts if v.role == ROLE_CHALLENGER and v.publishable and v.delta_sharpe > 0}
    cpo, pg = rep.verdict(ARM_CPO), rep.verdict(ARM_POLICY_GRADIENT)
    return Outcome(
        task=task,
        changed=rep.outcome == DECISION_CHANGED,
        chosen=rep.chosen,
        best=best.name if best else "",
        best_z=best.z if best else 0.0,
        best_delta=best.delta_sharpe if best else 0.0,
        best_se=best.delta_se if best else 0.0,
        z_threshold=rep.z_threshold,
        n_configurations=rep.n_configurations,
        passing_z=passing,
        oracle_delta=float(annualized_sharpe(oracle_net, 252.0)) - rep.verdict(rep.champion).sharpe,
        oracle_se=float(oracle_diff.se[0]),
        oracle_jk_se=sharpe_difference_se(oracle_net, champion, 252.0),
        cpo_delta=cpo.delta_sharpe,
        cpo_se=cpo.delta_se,
        pg_delta=pg.delta_sharpe,
        pg_se=pg.delta_se,
        cpo_switches=cpo.switches_per_year or 0.0,
        cpo_turnover=cpo.turnover,
        seconds=time.perf_counter() - start,
    )


def calibrate(job: tuple[str, float]) -> tuple[float, float]:
    """(the stress parameter giving ``edge`` to the design's oracle, the edge re-measured on another market)."""
    from cpo_synth import oracle_edge, phi_for_edge, vol_for_edge

    design, edge = job
    phi_calm = DESIGNS[design]["phi_calm"]
    if design == "reversal":
        p = phi_for_edge(edge, p_stress=P_STRESS, phi_calm=phi_calm, T=CALIBRATION_BARS, stay=STAY)
        return p, oracle_edge(p_stress=P_STRESS, phi_calm=phi_calm, phi_stress=p, T=CALIBRATION_BARS, seed=2, stay=STAY)
    p = vol_for_edge(edge, p_stress=P_STRESS, phi_calm=phi_calm, T=CALIBRATION_BARS, stay=STAY)
    return p, oracle_edge(
        p_stress=P_STRESS,
        phi_calm=phi_calm,
        phi_stress=0.0,
        T=CALIBRATION_BARS,
        seed=2,
        stay=STAY,
        vol_stress=p,
        stress="flat",
    )


def _oracle_only(task: Task, market, candidates, stress: str, samples: int, start: float) -> Outcome:
    """The regime oracle against the champion under the rule's bootstrap, without fitting any learner: the
    upper bound of a design's power, cheap enough for many markets."""
    import numpy as np
    from cpo_synth import COST_BPS, MOMENTUM_1, WARMUP, SignMomentum, oracle_positions

    from ludus.cpo.bootstrap import sharpe_difference
    from ludus.cpo.deflation import z_threshold
    from ludus.cpo.labels import build_labels
    from ludus.cpo.origins import default_min_train_bars, rolling_origins
    from ludus.cpo.sharpe import annualized_sharpe, sharpe_difference_se

    labels = build_labels(SignMomentum(), market.bars, list(candidates), cost_bps=COST_BPS, chunk_size=5)
    origins = rolling_origins(
        len(market.bars), WARMUP, windows=6, embargo=5, holdout_bars=None, min_train_bars=default_min_train_bars(252.0)
    )
    idx = origins.oos_idx
    r = labels.close_returns.double().numpy()
    momentum = labels.positions[MOMENTUM_1].double().numpy()

    def net(pos: np.ndarray) -> np.ndarray:
        prev = np.concatenate([[0.0], pos[:-1]])
        return pos * r[idx + 1] - COST_BPS * 1e-4 * np.abs(pos - prev)

    champion, oracle = net(momentum[idx]), net(oracle_positions(momentum, market.regime, stress)[idx])
    diff = sharpe_difference(oracle[None, :], champion, bars_per_year=252.0, samples=samples, seed=task.seed)
    n_conf = len(candidates) + 1 + N_CHALLENGERS
    delta = float(annualized_sharpe(oracle, 252.0) - annualized_sharpe(champion, 252.0))
    return Outcome(
        task=task,
        changed=False,
        chosen="",
        best="",
        best_z=0.0,
        best_delta=0.0,
        best_se=0.0,
        z_threshold=z_threshold(n_conf, 0.05),
        n_configurations=n_conf,
        passing_z={},
        oracle_delta=delta,
        oracle_se=float(diff.se[0]),
        oracle_jk_se=sharpe_difference_se(oracle, champion, 252.0),
        cpo_delta=0.0,
        cpo_se=0.0,
        pg_delta=0.0,
        pg_se=0.0,
        cpo_switches=0.0,
        cpo_turnover=0.0,
        seconds=time.perf_counter() - start,
    )


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


def _ratio(num: float, den: float) -> float:
    return num / den if abs(den) > 1e-12 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--null", type=int, default=100, help="markets of each null kind (two kinds)")
    parser.add_argument(
        "--power", type=int, default=100, help=f"{HEADLINE} markets at +{HEADLINE_EDGE} Sharpe (the headline)"
    )
    parser.add_argument("--power-reversal", type=int, default=30, help=f"reversal markets at +{HEADLINE_EDGE}")
    parser.add_argument("--sweep", type=int, default=20, help=f"{HEADLINE} markets at each other edge")
    parser.add_argument(
        "--sweep-reversal", type=int, default=None, help="reversal markets at each other edge (default: --sweep)"
    )
    parser.add_argument("--workers", type=int, default=1, help="processes (each with one torch thread)")
    parser.add_argument("--training", choices=sorted(TRAINING), default="early")
    parser.add_argument("--designs", default=",".join(DESIGNS), help="edge designs to run (comma-separated)")
    parser.add_argument(
        "--capture",
        type=int,
        default=0,
        help=f"markets of each design at +{HEADLINE_EDGE} ALSO run with the other training (the same "
        f"seeds: the capture ratio before and after on the same markets)",
    )
    parser.add_argument(
        "--oracle",
        type=int,
        default=0,
        help=f"markets of each design at +{HEADLINE_EDGE} where only the oracle is judged (no learner)",
    )
    parser.add_argument("--csv", type=Path, help="write every market's outcome here as it finishes")
    parser.add_argument("--summarize", type=Path, help="only print the tables of a --csv file (complete or not)")
    args = parser.parse_args()
    if args.summarize is not None:
        summarize(read_csv(args.summarize), [d for d in args.designs.split(",") if d], started=time.perf_counter())
        return
    designs = [d for d in args.designs.split(",") if d]
    for d in designs:
        if d not in DESIGNS:
            print(f"designs={d}: one of {', '.join(DESIGNS)}", file=sys.stderr)
            raise SystemExit(2)

    started = time.perf_counter()
    print(
        f"loadavg {os.getloadavg()}  workers {args.workers}  torch threads per worker 1  cpus {os.cpu_count()}  "
        f"training {args.training}"
    )
    pool = mp.get_context("spawn").Pool(args.workers) if args.workers > 1 else None
    pmap = pool.imap if pool is not None else map
    jobs = [(design, edge) for design in designs for edge in DESIGNS[design]["edges"]]
    params: dict[tuple[str, float], float] = {}
    calibrated = dict(zip(jobs, pmap(calibrate, jobs), strict=True))
    for design in designs:
        spec = DESIGNS[design]
        name = "phi_stress" if design == "reversal" else "vol_stress"
        print(
            f"\ncalibration of the {design} markets (p_stress={P_STRESS}, phi_calm={spec['phi_calm']}, stay={STAY}, "
            f"{CALIBRATION_BARS:,} bars; 'again': the oracle's edge re-measured on another market of the same "
            f"process):"
        )
        print(f"{'edge':>6} {name:>10} {'again':>9}")
        for edge in spec["edges"]:
            p, again = calibrated[(design, edge)]
            params[(design, edge)] = p
            print(f"{edge:6.2f} {p:10.4f} {again:9.3f}", flush=True)

    tasks = [Task("null", "iid", 0.0, 0.0, 10_000 + i, args.training) for i in range(args.null)]
    tasks += [Task("null", "constant", 0.0, PHI_NULL, 20_000 + i, args.training) for i in range(args.null)]
    for design in designs:
        spec = DESIGNS[design]
        for edge in spec["edges"]:
            if edge == HEADLINE_EDGE:
                n = args.power if design == HEADLINE else args.power_reversal
            else:
                n = args.sweep if design == HEADLINE or args.sweep_reversal is None else args.sweep_reversal
            tasks += [
                Task(
                    design,
                    "regime",
                    edge,
                    params[(design, edge)],
                    spec["seed"] + int(edge * 1000) * 10 + i,
                    args.training,
                )
                for i in range(n)
            ]
    other = next(t for t in TRAINING if t != args.training)
    for design in designs:
        seed = DESIGNS[design]["seed"] + int(HEADLINE_EDGE * 1000) * 10
        tasks += [
            Task(design, "regime", HEADLINE_EDGE, params[(design, HEADLINE_EDGE)], seed + i, other)
            for i in range(args.capture)
        ]
    for design in designs:
        seed = DESIGNS[design]["seed"] + 5_000 + int(HEADLINE_EDGE * 1000) * 10
        tasks += [
            Task(design, "oracle", HEADLINE_EDGE, params[(design, HEADLINE_EDGE)], seed + i, args.training)
            for i in range(args.oracle)
        ]
    tasks = _interleaved(tasks)
    print(f"\n{len(tasks)} markets of {T_BARS} bars ...", flush=True)
    out = args.csv.open("w") if args.csv is not None else None
    if out is not None:
        out.write(",".join(CSV_FIELDS) + "\n")
    outcomes = []
    try:
        for i, o in enumerate(pmap(run_market, tasks), 1):
            outcomes.append(o)
            if out is not None:
                out.write(to_csv(o) + "\n")
                out.flush()
            if i % 25 == 0:
                print(
                    f"  {i}/{len(tasks)} markets, {time.perf_counter() - started:.0f} s, "
                    f"loadavg {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        if out is not None:
            out.close()
    summarize(outcomes, designs, started)


def _interleaved(tasks: list[Task]) -> list[Task]:
    """Round-robin over the groups (design, kind, edge, training): a run cut short still has some of each."""
    groups: dict[tuple, list[Task]] = {}
    for t in tasks:
        groups.setdefault((t.design, t.kind, t.edge, t.training), []).append(t)
    out: list[Task] = []
    queues = [list(g) for g in groups.values()]
    # the larger groups (the nulls, the headline) advance proportionally faster
    total = len(tasks)
    taken = [0] * len(queues)
    while len(out) < total:
        j = min(
            (k for k in range(len(queues)) if taken[k] < len(queues[k])), key=lambda k: (taken[k] + 1) / len(queues[k])
        )
        out.append(queues[j][taken[j]])
        taken[j] += 1
    return out


CSV_FIELDS = (
    "design",
    "kind",
    "edge",
    "param",
    "seed",
    "training",
    "changed",
    "chosen",
    "best",
    "best_z",
    "best_delta",
    "best_se",
    "z_threshold",
    "n_configurations",
    "passing_z",
    "oracle_delta",
    "oracle_se",
    "oracle_jk_se",
    "cpo_delta",
    "cpo_se",
    "pg_delta",
    "pg_se",
    "cpo_switches",
    "cpo_turnover",
    "seconds",
)


def to_csv(o: Outcome) -> str:
    t = o.task
    values = [
        t.design,
        t.kind,
        t.edge,
        t.param,
        t.seed,
        t.training,
        int(o.changed),
        o.chosen,
        o.best,
        o.best_z,
        o.best_delta,
        o.best_se,
        o.z_threshold,
        o.n_configurations,
        ";".join(f"{k}:{v:.6g}" for k, v in o.passing_z.items()),
        o.oracle_delta,
        o.oracle_se,
        o.oracle_jk_se,
        o.cpo_delta,
        o.cpo_se,
        o.pg_delta,
        o.pg_se,
        o.cpo_switches,
        o.cpo_turnover,
        o.seconds,
    ]
    return ",".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in values)


def read_csv(path: Path) -> list[Outcome]:
    lines = path.read_text().splitlines()
    out = []
    for line in lines[1:]:
        v = dict(zip(CSV_FIELDS, line.split(","), strict=True))
        task = Task(v["design"], v["kind"], float(v["edge"]), float(v["param"]), int(v["seed"]), v["training"])
        passing = {k: float(z) for k, z in (p.split(":") for p in v["passing_z"].split(";") if p)}
        floats = {k: float(v[k]) for k in CSV_FIELDS[9:] if k not in ("n_configurations", "passing_z")}
        out.append(
            Outcome(
                task=task,
                changed=v["changed"] == "1",
                chosen=v["chosen"],
                best=v["best"],
                n_configurations=int(v["n_configurations"]),
                passing_z=passing,
                **floats,
            )
        )
    return out


def summarize(all_outcomes: list[Outcome], designs: list[str], started: float) -> None:
    """The tables and the key=value lines of the outcomes of the main training (the capture pairs apart)."""
    trainings = Counter(o.task.training for o in all_outcomes if o.task.design == "null")
    main_training = trainings.most_common(1)[0][0] if trainings else "early"
    oracles = [o for o in all_outcomes if o.task.kind == "oracle"]
    outcomes = [o for o in all_outcomes if o.task.training == main_training and o.task.kind != "oracle"]
    paired = [o for o in all_outcomes if o.task.training != main_training and o.task.kind != "oracle"]
    if not outcomes:
        print("no outcomes")
        return
    print(f"training {main_training}")

    from ludus.cpo.deflation import z_threshold

    z_loose = z_threshold(N_CHALLENGERS, 0.05)
    print(
        f"\nper market {sum(o.seconds for o in outcomes) / len(outcomes):.1f} s; z* of the {N_CHALLENGERS} "
        f"challengers alone {z_loose:.3f}"
    )
    print(
        "\nreplaced: share of markets where a challenger replaced the champion (± its binomial SE); z*: the "
        "rule's threshold; SE(Δ): the best challenger's; oracle Δ, SE, JK: the regime oracle's mean Sharpe minus "
        "the champion's on the out-of-sample bars, the bootstrap SE of it and the analytic Jobson-Korkie/Memmel "
        "SE; oracle pw: share where the oracle itself clears z*; cpo/pg Δ: the learned arms' mean Δ; capture: "
        "their Δ over the oracle's; chall. only: replaced at the z* of the challengers alone"
    )
    head = (
        f"{'markets':<24} {'n':>4} {'z*':>5} {'replaced':>8} {'± SE':>6} {'SE(Δ)':>6} {'oracle Δ':>8} "
        f"{'SE':>5} {'JK':>5} {'oracle z':>8} {'oracle pw':>9} {'cpo Δ':>6} {'pg Δ':>6} {'capture':>11} "
        f"{'chall. only':>11}  chosen arms"
    )
    print(head)

    def row(label: str, group: list[Outcome]) -> tuple[float, float]:
        p, se = rate([o.changed for o in group])
        z_star = group[0].z_threshold
        oracle_pw = rate([o.oracle_z >= z_star for o in group])[0]
        loose = rate([any(z >= z_loose for z in o.passing_z.values()) for o in group])[0]
        od = _mean(group, "oracle_delta")
        capture = (
            f"{_ratio(_mean(group, 'cpo_delta'), od):.2f}/{_ratio(_mean(group, 'pg_delta'), od):.2f}"
            if abs(od) > 0.05
            else "-"
        )
        arms = Counter(o.chosen for o in group if o.changed)
        print(
            f"{label:<24} {len(group):4d} {z_star:5.2f} {p:8.3f} {se:6.3f} {_mean(group, 'best_se'):6.3f} "
            f"{od:+8.2f} {_mean(group, 'oracle_se'):5.2f} {_mean(group, 'oracle_jk_se'):5.2f} "
            f"{_mean(group, 'oracle_z'):8.2f} {oracle_pw:9.2f} {_mean(group, 'cpo_delta'):+6.2f} "
            f"{_mean(group, 'pg_delta'):+6.2f} {capture:>11} {loose:11.2f}  {dict(arms) or '-'}"
        )
        return p, loose

    nulls = [o for o in outcomes if o.task.design == "null"]
    for label, group in (
        ("null: iid", [o for o in nulls if o.task.kind == "iid"]),
        ("null: constant", [o for o in nulls if o.task.kind == "constant"]),
        ("null: both", nulls),
    ):
        if group:
            row(label, group)
    curves: dict[str, tuple[list[tuple[float, float]], list[tuple[float, float]], list[tuple[float, float]]]] = {}
    for design in designs:
        points, loose_points, oracle_points = [], [], []
        for edge in DESIGNS[design]["edges"]:
            group = [o for o in outcomes if o.task.design == design and o.task.edge == edge]
            if not group:
                continue
            p, loose = row(f"{design}: +{edge:.2f}", group)
            points.append((edge, p))
            loose_points.append((edge, loose))
            oracle_points.append((edge, rate([o.oracle_z >= o.z_threshold for o in group])[0]))
        curves[design] = (points, loose_points, oracle_points)

    print("\ncost of switching (CPO): mean θ switches per year and turnover per design")
    for design in ["null", *designs]:
        group = [o for o in outcomes if o.task.design == design]
        if group:
            print(
                f"  {design:<10} switches/yr {_mean(group, 'cpo_switches'):6.1f}  turnover "
                f"{_mean(group, 'cpo_turnover'):6.1f}"
            )

    print("\n80% power from (linear between the measured edges; inf: not within them):")
    for design, (points, loose_points, oracle_points) in curves.items():
        print(
            f"  {design:<10} the rule {crossing(points, TARGET_POWER):.2f}, the rule at the challengers' z* "
            f"{crossing(loose_points, TARGET_POWER):.2f}, the oracle under the rule "
            f"{crossing(oracle_points, TARGET_POWER):.2f}"
        )

    false_activation, fa_se = rate([o.changed for o in nulls]) if nulls else (float("nan"), float("nan"))
    headline = [o for o in outcomes if o.task.design == HEADLINE and o.task.edge == HEADLINE_EDGE]
    power, power_se = rate([o.changed for o in headline]) if headline else (float("nan"), float("nan"))
    mde = crossing(curves[HEADLINE][0], TARGET_POWER) if HEADLINE in curves else float("nan")
    reversal = [o for o in outcomes if o.task.design == "reversal" and o.task.edge == HEADLINE_EDGE]
    if oracles:
        print(
            f"\nthe oracle alone at +{HEADLINE_EDGE} under the rule (other markets of the same designs, no learner "
            f"fitted): mean Δ, bootstrap SE, Jobson-Korkie/Memmel SE, mean z, share clearing z*, share clearing "
            f"the challengers' z*"
        )
        for design in designs:
            group = [o for o in oracles if o.task.design == design]
            if group:
                pw, pw_se = rate([o.oracle_z >= o.z_threshold for o in group])
                print(
                    f"  {design:<10} n={len(group):3d} Δ {_mean(group, 'oracle_delta'):+.2f}  SE "
                    f"{_mean(group, 'oracle_se'):.3f}  JK {_mean(group, 'oracle_jk_se'):.3f}  z "
                    f"{_mean(group, 'oracle_z'):.2f}  power {pw:.2f} ± {pw_se:.2f} at z* {group[0].z_threshold:.2f}, "
                    f"{rate([o.oracle_z >= z_loose for o in group])[0]:.2f} at {z_loose:.2f}"
                )
    if paired:
        print(
            f"\ncapture before and after, on the same markets at +{HEADLINE_EDGE} (mean Δ over the champion; "
            f"capture: over the oracle's mean Δ):"
        )
        for design in designs:
            other = {o.task.seed: o for o in paired if o.task.design == design}
            mine = {o.task.seed: o for o in outcomes if o.task.design == design and o.task.seed in other}
            seeds = sorted(set(other) & set(mine))
            if not seeds:
                continue
            for label, group in (
                (other[seeds[0]].task.training, [other[s] for s in seeds]),
                (main_training, [mine[s] for s in seeds]),
            ):
                od = _mean(group, "oracle_delta")
                print(
                    f"  {design:<10} {label:<6} n={len(group):3d} oracle {od:+.2f}  "
                    f"cpo {_mean(group, 'cpo_delta'):+.2f} "
                    f"(capture {_ratio(_mean(group, 'cpo_delta'), od):.2f}, SE {_mean(group, 'cpo_se'):.2f}, "
                    f"switches/yr {_mean(group, 'cpo_switches'):.0f})  pg {_mean(group, 'pg_delta'):+.2f} "
                    f"(capture {_ratio(_mean(group, 'pg_delta'), od):.2f})  replaced "
                    f"{rate([o.changed for o in group])[0]:.2f}"
                )
    print(
        f"\nfalse activation {false_activation:.3f} ± {fa_se:.3f} (n={len(nulls)}), power at +{HEADLINE_EDGE:.1f} "
        f"({HEADLINE}) {power:.3f} ± {power_se:.3f} (n={len(headline)}), 80% power from +{mde:.2f} annualized "
        f"Sharpe"
    )
    print(f"wall {time.perf_counter() - started:.0f} s, loadavg {os.getloadavg()}")
    if reversal:
        print(f"power_reversal={rate([o.changed for o in reversal])[0]:.4f}")
    print(f"false_activation={false_activation:.4f}")
    print(f"power={power:.4f}")
    print(f"min_detectable_sharpe={mde:.3f}")


if __name__ == "__main__":
    main()
