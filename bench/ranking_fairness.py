"""The issue's simulation: who lands at the bottom of the operator ranking, old rule and new.

Not a test (tests/reports/test_fair_ranking.py runs a short version). 200 operators with
30-400 responses each (uniform), true CSAT drawn from Beta(43, 7.6) (mean 85 %, sd 5 points),
satisfied answers binomial. Each replication ranks them twice: the old way, by the lower
bound of the Wilson interval, and the gateway's way, by the shrunk CSAT (`rank_operators`,
with the prior fitted to the replication). Prints, averaged over replications: the share of
operators with fewer than 100 responses among all and among each bottom 20, and how many of
the truly worst 20 each bottom 20 holds.

    .venv/bin/python bench/ranking_fairness.py [--replications 500] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.reports.metrics import fit_beta_prior, wilson_interval
from gateway.reports.service import rank_operators

OPERATORS = 200
BOTTOM = 20
SMALL = 100  # "few responses"


def simulate(replications: int, seed: int) -> dict[str, float]:
    """Averages over replications: `small` (share of small operators), `wilson` and `shrunk`
    (their share in each bottom 20), `wilson_hits` and `shrunk_hits` (share of the truly
    worst 20 in each bottom 20)."""
    rng = np.random.default_rng(seed)
    totals = dict.fromkeys(("small", "wilson", "shrunk", "wilson_hits", "shrunk_hits"), 0.0)
    for _ in range(replications):
        n = rng.integers(30, 401, OPERATORS)
        truth = rng.beta(43, 7.6, OPERATORS)
        satisfied = rng.binomial(n, truth)
        rows = [
            {
                "operator": {"external_id": f"op-{i:03}", "team": None},
                "responses": int(n[i]),
                "_satisfied": int(satisfied[i]),
                "_teams": {},
            }
            for i in range(OPERATORS)
        ]
        prior = fit_beta_prior((r["_satisfied"], r["responses"]) for r in rows)
        ranked = rank_operators(rows, prior, minimum=30)
        new_bottom = {int(r["operator"]["external_id"][3:]) for r in ranked[-BOTTOM:]}
        lower_bounds = [
            wilson_interval(int(s), int(k))[0]  # type: ignore[index]
            for s, k in zip(satisfied, n, strict=True)
        ]
        old_bottom = set(np.argsort(lower_bounds, kind="stable")[:BOTTOM].tolist())
        worst = set(np.argsort(truth)[:BOTTOM].tolist())
        small = {i for i in range(OPERATORS) if n[i] < SMALL}
        totals["small"] += len(small) / OPERATORS
        totals["wilson"] += len(old_bottom & small) / BOTTOM
        totals["shrunk"] += len(new_bottom & small) / BOTTOM
        totals["wilson_hits"] += len(old_bottom & worst) / BOTTOM
        totals["shrunk_hits"] += len(new_bottom & worst) / BOTTOM
    return {k: v / replications for k, v in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    shares = simulate(args.replications, args.seed)
    elapsed = time.perf_counter() - started
    print(f"{args.replications} replications of {OPERATORS} operators, 30-400 responses each")
    print(f"operators with fewer than {SMALL} responses:        {shares['small']:6.1%}")
    print(f"  of the bottom {BOTTOM}, lower Wilson bound (old):  {shares['wilson']:6.1%}")
    print(f"  of the bottom {BOTTOM}, shrunk CSAT (new):         {shares['shrunk']:6.1%}")
    print(f"truly worst {BOTTOM} found in the bottom {BOTTOM}, old:  {shares['wilson_hits']:6.1%}")
    print(f"truly worst {BOTTOM} found in the bottom {BOTTOM}, new:  {shares['shrunk_hits']:6.1%}")
    print(f"({elapsed / args.replications * 1000:.1f} ms per replication: fit, shrink, rank)")


if __name__ == "__main__":
    main()
