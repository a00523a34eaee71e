"""The fair-ranking math: the empirical-Bayes prior, shrunk CSAT, the team test, the NPS
interval; checked against the worked examples of docs/metrics.md, Monte Carlo and properties,
and the issue's simulation (small operators crowded the bottom of the old ranking)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.ranking_fairness import simulate
from gateway.reports.metrics import (
    MIN_PRIOR_SHAPE,
    BetaPrior,
    compare_share,
    fit_beta_prior,
    nps_interval,
    nps_of,
    wilson_interval,
)

# docs/metrics.md, "Ranking": six operators' (satisfied, responses).
EXAMPLE = {
    "A": (3, 3),
    "B": (85, 100),
    "C": (160, 200),
    "D": (28, 40),
    "E": (270, 300),
    "F": (52, 60),
}

counts = st.integers(1, 400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


def log_marginal_likelihood(alpha: float, beta: float, data: list[tuple[int, int]]) -> float:
    """Beta-binomial log marginal likelihood, written out with lgamma (no scipy)."""

    def log_beta(a: float, b: float) -> float:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)

    return sum(log_beta(alpha + s, beta + n - s) - log_beta(alpha, beta) for s, n in data)


def test_the_worked_example_of_the_prior_and_the_shrunk_figures() -> None:
    prior = fit_beta_prior(EXAMPLE.values())
    assert prior is not None
    assert (round(prior.alpha, 2), round(prior.beta, 2)) == (52.97, 10.30)
    assert (round(prior.mean, 4), round(prior.strength, 1)) == (0.8372, 63.3)
    a = prior.shrink(3, 3)
    assert (round(a.estimate, 4), round(a.low, 4), round(a.high, 4)) == (0.8445, 0.7488, 0.9206)
    assert round(a.own_weight, 3) == 0.045
    f = prior.shrink(52, 60)
    assert (round(f.estimate, 4), round(f.low, 4), round(f.high, 4)) == (0.8515, 0.7839, 0.9084)
    # (52.97 + 52) / (63.27 + 60): the prior counts as 63 answers at its mean
    assert f.estimate == pytest.approx((prior.alpha + 52) / (prior.strength + 60))


def test_the_fit_maximises_the_marginal_likelihood() -> None:
    data = list(EXAMPLE.values())
    prior = fit_beta_prior(data)
    assert prior is not None
    best = log_marginal_likelihood(prior.alpha, prior.beta, data)
    for da in (0.9, 0.97, 1.03, 1.1):
        for db in (0.9, 0.97, 1, 1.03, 1.1):
            assert log_marginal_likelihood(prior.alpha * da, prior.beta * db, data) <= best + 1e-9


def test_the_fit_recovers_the_spread_it_was_drawn_from() -> None:
    rng = np.random.default_rng(9)
    n = rng.integers(30, 401, 400)
    s = rng.binomial(n, rng.beta(40, 8, 400))
    prior = fit_beta_prior(zip(s.tolist(), n.tolist(), strict=True))
    assert prior is not None
    assert prior.mean == pytest.approx(40 / 48, abs=0.01)
    assert 30 < prior.strength < 75  # 48 drawn; the standard error at 400 operators is ~8


def test_no_spread_beyond_chance_pools_everyone_and_a_flat_sample_shrinks_least() -> None:
    same = fit_beta_prior([(85, 100)] * 50)
    assert same is not None and same.strength > 1e6  # one CSAT for everybody
    assert same.mean == pytest.approx(0.85, abs=1e-4)
    extreme = fit_beta_prior([(0, 10), (10, 10)])
    assert extreme == BetaPrior(1.0, 1.0)  # never the U-shaped prior below Beta(1, 1)
    assert fit_beta_prior([]) is None and fit_beta_prior([(0, 0)]) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(counts, min_size=1, max_size=25), st.randoms(use_true_random=False))
def test_the_fit_is_a_proper_prior_whatever_the_order(data, random) -> None:
    prior = fit_beta_prior(data)
    shuffled = list(data)
    random.shuffle(shuffled)
    again = fit_beta_prior(shuffled)
    assert prior is not None and again is not None
    assert prior.alpha >= MIN_PRIOR_SHAPE and prior.beta >= MIN_PRIOR_SHAPE
    assert math.isfinite(prior.strength)
    assert again == prior  # exactly: the rows' order in a query must not move a figure


@settings(max_examples=200, deadline=None)
@given(
    st.floats(1, 500),
    st.floats(1, 500),
    st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
)
def test_a_shrunk_csat_lies_between_the_own_and_the_population_share(alpha, beta, count) -> None:
    satisfied, n = count
    prior = BetaPrior(alpha, beta)
    shrunk = prior.shrink(satisfied, n)
    own = satisfied / n
    assert min(own, prior.mean) - 1e-12 <= shrunk.estimate <= max(own, prior.mean) + 1e-12
    assert 0 <= shrunk.low < shrunk.estimate < shrunk.high <= 1
    assert shrunk.own_weight == pytest.approx(n / (n + alpha + beta))
    if satisfied < n:  # one more satisfied answer in place of an unsatisfied one ranks higher
        better = prior.shrink(satisfied + 1, n)
        assert better.estimate > shrunk.estimate and better.low > shrunk.low


@settings(max_examples=200, deadline=None)
@given(counts, st.floats(0, 1))
def test_differs_from_the_team_exactly_when_the_team_lies_outside_the_wilson_interval(
    count, reference
) -> None:
    satisfied, n = count
    low, high = wilson_interval(satisfied, n)
    side = compare_share(satisfied, n, reference)
    assert side == (
        "above" if reference < low else "below" if reference > high else "no_difference"
    )


def test_the_team_test_on_numbers() -> None:
    # 270 of 300 = 90 %, interval [0.8608, 0.9291]: a team at 80 % is below it
    assert compare_share(270, 300, 0.80) == "above"
    assert compare_share(28, 40, 0.85) == "below"  # 70 %, interval [0.5457, 0.8193]
    assert compare_share(3, 3, 0.85) == "no_difference"  # three answers prove nothing
    assert compare_share(0, 0, 0.85) is None


def test_the_nps_interval_behaves_at_small_n() -> None:
    low, high = nps_interval(3, 0, 3)  # 3 promoters of 3
    assert (round(low, 1), high) == (-15.7, 100.0)  # not [100, 100]
    low, high = nps_interval(9, 0, 10)  # 9 promoters and a passive: Wald gave [71, 109]
    assert (round(low, 1), round(high, 1)) == (31.5, 93.3)
    score, se = nps_of(9, 0, 10)
    assert score + 1.96 * se > 100  # what the old interval did
    low, high = nps_interval(5, 3, 10)
    assert (round(low, 1), round(high, 1)) == (-30.9, 58.3)
    assert nps_interval(0, 0, 0) is None


@pytest.mark.parametrize(
    ("promoters", "passives", "detractors"),
    [(3, 0, 0), (9, 1, 0), (5, 2, 3), (20, 5, 5), (2, 20, 8), (40, 30, 30)],
)
def test_the_nps_interval_matches_the_dirichlet_posterior_drawn(
    promoters: int, passives: int, detractors: int
) -> None:
    n = promoters + passives + detractors
    draws = np.random.default_rng(11).dirichlet(
        [1 + promoters, 1 + passives, 1 + detractors], 400_000
    )
    exact = np.quantile(draws[:, 0] - draws[:, 2], [0.025, 0.975]) * 100
    observed = (promoters - detractors) / n * 100
    low, high = nps_interval(promoters, detractors, n)
    assert low == pytest.approx(min(exact[0], observed), abs=1.5)
    assert high == pytest.approx(max(exact[1], observed), abs=1.5)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 300), st.integers(0, 300), st.integers(0, 300))
def test_the_nps_interval_stays_in_bounds_and_holds_the_score(
    promoters: int, passives: int, detractors: int
) -> None:
    n = promoters + passives + detractors
    if n == 0:
        return
    low, high = nps_interval(promoters, detractors, n)
    score = (promoters - detractors) / n * 100
    assert -100 <= low <= score <= high <= 100
    assert low < high
    # Twice the answers in the same shares: a narrower interval.
    low2, high2 = nps_interval(2 * promoters, 2 * detractors, 2 * n)
    assert high2 - low2 < high - low


# --- the simulation (bench/ranking_fairness.py prints it at full length) ---------


def test_small_operators_are_no_longer_crowded_at_the_bottom() -> None:
    shares = simulate(replications=30, seed=20261129)
    # The finding, reproduced: under the lower Wilson bound about half the bottom 20
    # had fewer than 100 responses, though under a fifth of the operators do.
    assert 0.15 < shares["small"] < 0.23
    assert shares["wilson"] > 2 * shares["small"]
    # Shrunk: no more small operators at the bottom than their share of all operators...
    assert shares["shrunk"] <= shares["small"]
    # ...and the bottom 20 holds more of the truly worst 20 than before.
    assert shares["shrunk_hits"] > shares["wilson_hits"]
