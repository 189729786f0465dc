"""The decision on the shipped sample data: the six rules x SPX, IXIC, GOOG at 1 bp, one CPO job per key through
``run_job`` (the pipeline the CLI and the worker run), each key on a fresh ledger.

Reports, per key, the champion (the strategy defaults: nothing is published yet), the decision, the chosen arm,
and the best challenger's ΔSharpe ± SE against the champion with its z and the z it needed; then how many keys
changed from the defaults.

Context series: the other index (SPX <-> IXIC; IXIC for GOOG), which cover the whole history - the VIX starts
in 2014 and would cut every arm's history to 4 years. Every bar after the first 2 years of usable history is
out of sample (the default evaluation). Reduced, CPU-sized search settings (the defaults of a job are 64
candidates, 20 model trials, 64 baseline trials): ``--candidates 32 --trials 4 --baseline-trials 32``, the
model space below (an MLP of 32 units, 4-8 epochs); 3 CPO seeds and 6 windows as by default.

    .venv/bin/python bench/sample_decisions.py [--strategies sma_cross,...] [--symbols SPX,IXIC,GOOG]
                                               [--json out.json]

Last lines: ``keys=<n>``, ``keys_changed=<n>``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STRATEGIES = ("sma_cross", "ema_cross", "macd", "donchian_breakout", "rsi_reversion", "bollinger_reversion")
SYMBOLS = ("SPX", "IXIC", "GOOG")
CONTEXT = {"SPX": ["IXIC"], "IXIC": ["SPX"], "GOOG": ["IXIC"]}
MODEL_SPACE = {
    "hidden": {"type": "fixed", "value": 32},
    "layers": {"type": "int", "low": 1, "high": 2},
    "dropout": {"type": "fixed", "value": 0.0},
    "batch_size": {"type": "fixed", "value": 2048},
    "epochs": {"type": "int", "low": 4, "high": 8},
    "lr": {"type": "float", "low": 2e-3, "high": 1e-2, "log": True},
    "loss": {"type": "categorical", "choices": ["mse", "rank"]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--symbols", default=",".join(SYMBOLS))
    parser.add_argument("--candidates", type=int, default=32)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--baseline-trials", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--windows", type=int, default=6)
    parser.add_argument("--cost-bps", type=float, default=1.0)
    parser.add_argument("--json", type=Path, default=None, help="write every SymbolResult here")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from ludus.config import Settings
    from ludus.contracts.job import parse_job
    from ludus.data.prices import PriceStore
    from ludus.data.sample import load_sample
    from ludus.db.engine import make_engine
    from ludus.db.migrate import upgrade
    from ludus.pipeline import run_job
    from ludus.search.trial import InProcessExecutor

    print(f"loadavg {os.getloadavg()}  torch threads {torch.get_num_threads()}")
    work = Path(tempfile.mkdtemp(prefix="ludus-sample-decisions-"))
    url = f"sqlite:///{work / 'ludus.db'}"
    upgrade(url)
    engine = make_engine(url)
    store = PriceStore(engine)
    load_sample(store)
    lengths = {s: len(store.read(s, "1d")) for s in SYMBOLS}
    settings = Settings(database_url=url, device="cpu")
    rows, results = [], []
    started = time.perf_counter()
    for strategy in args.strategies.split(","):
        for symbol in args.symbols.split(","):
            body = {
                "job_id": str(uuid.uuid4()),
                "strategy": strategy,
                "symbols": [symbol],
                "lookback": {"bars": lengths[symbol]},
                "candidates": args.candidates,
                "search": {
                    "trials": args.trials,
                    "seed": 1,
                    "baseline_trials": args.baseline_trials,
                    "seeds": args.seeds,
                },
                "cost_bps": args.cost_bps,
                "validation": {"windows": args.windows},
                "conditions_from": CONTEXT[symbol],
                "exchanges": {"GOOG": "XNAS", "IXIC": "XNAS"},
            }
            t0 = time.perf_counter()
            result = run_job(
                parse_job(body),
                engine=engine,
                settings=settings,
                progress=lambda e: None,
                executor=InProcessExecutor(),
                model_space=MODEL_SPACE,
            )
            s = result.symbols[0]
            results.append(s.to_dict())
            champ = next(a for a in s.arms if a.role == "champion")
            best = max((a for a in s.arms if a.role != "champion"), key=lambda a: a.z or -1e9)
            rows.append((strategy, symbol, s, champ, best, time.perf_counter() - t0))
            print(
                f"{strategy:<20} {symbol:<5} {s.decision:<8} {s.arm:<16} champion {champ.sharpe:+.2f}  best "
                f"{best.name:<16} {best.delta_sharpe:+.2f} ± {best.delta_se:.2f}  z {best.z:+.2f} / "
                f"{s.z_threshold:.2f}  {s.oos_bars} bars {s.windows[0].start}..{s.windows[-1].end}  "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    engine.dispose()

    changed = [r for r in rows if r[2].decision == "changed"]
    print(
        f"\n{len(rows)} keys at {args.cost_bps:g} bp, {time.perf_counter() - started:.0f} s; changed from the "
        f"defaults: {len(changed)}"
    )
    for strategy, symbol, s, _champ, _best, _ in changed:
        chosen = next(a for a in s.arms if a.name == s.arm)
        print(
            f"  {strategy} {symbol}: {s.arm} {chosen.delta_sharpe:+.2f} ± {chosen.delta_se:.2f} "
            f"(z {chosen.z:.2f} >= {s.z_threshold:.2f})"
        )
    deltas = {}
    for _, _, s, _, _, _ in rows:
        for a in s.arms:
            if a.role != "champion":
                deltas.setdefault(a.name, []).append(a.delta_sharpe)
    print(
        "\nmean ΔSharpe vs the defaults per arm over the keys: "
        + ", ".join(f"{k} {sum(v) / len(v):+.2f}" for k, v in deltas.items())
    )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(f"loadavg {os.getloadavg()}")
    print(f"keys={len(rows)}")
    print(f"keys_changed={len(changed)}")


if __name__ == "__main__":
    main()
