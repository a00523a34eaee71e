"""Satisfaction figures from raw answers: pure functions, no database, no Flask.

Each survey session is scored from its answers (`score_session`); scores add up into a
`Tally` of sufficient statistics (counts and sums), and every published figure is
computed from a tally (`figures`). docs/metrics.md defines each figure with its source.

A skipped answer is absent (or None), never zero: it does not count in any figure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from ivr_flows import Flow, QuestionType

OVERALL = "overall"
# z for a two-sided 95% interval: the 0.975 quantile of the standard normal.
Z95 = 1.959963984540054
SATISFIED = frozenset({4, 5})  # CSAT counts these overall scores
PROMOTERS = range(9, 11)
DETRACTORS = range(0, 7)
# The tails left out of every 95% interval.
TAILS95 = (0.025, 0.975)


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter question: its CSI weight and whether the operator controls it."""

    key: str
    weight: float = 1.0
    operator_controlled: bool = True
    importance_key: str | None = None  # the question asking how much it matters


@dataclass(frozen=True)
class ScoringSpec:
    """What a flow's answers mean for the figures."""

    parameters: tuple[ParameterSpec, ...] = ()
    overall_key: str = OVERALL
    nps_key: str | None = None

    @property
    def importance_keys(self) -> tuple[str, ...]:
        return tuple(p.importance_key for p in self.parameters if p.importance_key)


def spec_for(flow: Flow) -> ScoringSpec:
    """The scoring spec of a flow: its parameters, importance questions and NPS question."""
    importance = {
        q.importance_of: q.key for q in flow.questions if q.type is QuestionType.IMPORTANCE
    }
    parameters = tuple(
        ParameterSpec(q.key, q.weight, q.operator_controlled, importance.get(q.key))
        for q in flow.questions
        if q.parameter
    )
    nps = next((q.key for q in flow.questions if q.type is QuestionType.NPS), None)
    return ScoringSpec(parameters=parameters, nps_key=nps)


@dataclass(frozen=True)
class SessionScore:
    """The figures of one survey session; None where the answers do not give one."""

    overall: int | None
    parameters: Mapping[str, int]
    csi: float | None  # every parameter: the company's view
    csi_operator: float | None  # operator-controlled parameters only
    nps: int | None

    @property
    def responded(self) -> bool:
        """A response is a session with an overall answer."""
        return self.overall is not None


def to_percent(score: int) -> float:
    """A 1-5 satisfaction score on the 0-100 CSI scale: (s - 1) / 4 x 100."""
    return (score - 1) / 4 * 100


def csi_of(
    answers: Mapping[str, int | None], spec: ScoringSpec, *, operator_only: bool = False
) -> float | None:
    """Importance-weighted mean of parameter satisfaction on 0-100, or None if none answered.

    Only the parameters counted (`operator_only`: those the operator controls) take part,
    their importance included. Weights are the customer's own importance answers for those
    parameters when there are any; a parameter whose importance was skipped takes the mean of
    them (the stand-in). Without such answers the flow's configured weights apply. So the
    importance a customer gives the tariff never weighs on the operator's CSI, not even
    through the stand-in.
    """
    counted = [p for p in spec.parameters if p.operator_controlled or not operator_only]
    given = [
        v for p in counted if p.importance_key and (v := answers.get(p.importance_key)) is not None
    ]
    stand_in = sum(given) / len(given) if given else None
    total = weights = 0.0
    for parameter in counted:
        value = answers.get(parameter.key)
        if value is None:
            continue
        if stand_in is None:
            weight = parameter.weight
        else:
            own = answers.get(parameter.importance_key) if parameter.importance_key else None
            weight = float(own) if own is not None else stand_in
        if weight <= 0:
            continue
        total += weight * to_percent(value)
        weights += weight
    return total / weights if weights else None


def score_session(answers: Mapping[str, int | None], spec: ScoringSpec) -> SessionScore:
    """Score one session from its raw answers (question key -> value, None = skipped)."""
    parameters = {
        p.key: value for p in spec.parameters if (value := answers.get(p.key)) is not None
    }
    return SessionScore(
        overall=answers.get(spec.overall_key),
        parameters=parameters,
        csi=csi_of(answers, spec),
        csi_operator=csi_of(answers, spec, operator_only=True),
        nps=answers.get(spec.nps_key) if spec.nps_key else None,
    )


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson (1927) score interval for a proportion; None for an empty sample."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At p = 0 or 1 the bound is exactly 0 or 1; floating point would leave 1e-16 off.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def nps_of(promoters: int, detractors: int, n: int) -> tuple[float, float] | None:
    """NPS (% promoters - % detractors) and its standard error, in points; None if n is 0."""
    if n <= 0:
        return None
    p, d = promoters / n, detractors / n
    variance = max(0.0, p + d - (p - d) ** 2)
    return (p - d) * 100, math.sqrt(variance / n) * 100


def nps_interval(promoters: int, detractors: int, n: int) -> tuple[float, float] | None:
    """A 95% interval of the NPS in points, inside [-100, 100] at any n; None if n is 0.

    The shares of promoters, passives and detractors get the uniform Dirichlet(1, 1, 1)
    prior; the posterior is Dirichlet(1 + promoters, 1 + passives, 1 + detractors). The
    interval is the central 95% of the posterior of (1 + NPS/100) / 2, approximated by the
    beta distribution of the same mean and variance, and widened to hold the observed NPS
    where that lies outside (only at or next to +-100 with few answers).
    """
    if n <= 0:
        return None
    from scipy.special import betaincinv  # see fit_beta_prior

    a, c = 1.0 + promoters, 1.0 + detractors
    total = 3.0 + n
    mean = (1 + (a - c) / total) / 2
    variance = (a * (total - a) + c * (total - c) + 2 * a * c) / (total**2 * (total + 1)) / 4
    concentration = mean * (1 - mean) / variance - 1
    low, high = (
        float(q) * 200 - 100
        for q in betaincinv(mean * concentration, (1 - mean) * concentration, TAILS95)
    )
    observed = (promoters - detractors) / n * 100
    return min(low, observed), max(high, observed)


def nps_class(value: int | None) -> str | None:
    """promoter (9-10), passive (7-8) or detractor (0-6)."""
    if value is None:
        return None
    if value in PROMOTERS:
        return "promoter"
    if value in DETRACTORS:
        return "detractor"
    return "passive"


# --- fair ranking: each operator's CSAT shrunk towards the population's ------------------

# The weakest prior a fit may give: Beta(1, 1) is flat; shapes below 1 would pile the prior up
# at 0 % and 100 % and pull a handful of perfect scores towards "certainly perfect".
MIN_PRIOR_SHAPE = 1.0
# The strongest: e^20 responses' worth, in effect one CSAT for everybody; reached when the
# operators differ no more than chance alone would make them.
MAX_LOG_PRIOR_SHAPE = 20.0


@dataclass(frozen=True)
class Shrunk:
    """An operator's CSAT after shrinkage: the posterior mean and its central 95% interval."""

    estimate: float
    low: float
    high: float
    own_weight: float  # the share of the operator's own answers in the estimate, n / (n + m)


@dataclass(frozen=True)
class BetaPrior:
    """Beta(alpha, beta): how the operators' true CSAT spreads in a population.

    `mean` is the population's CSAT; `strength` (alpha + beta) counts as that many responses
    at the mean, added to each operator's own answers.
    """

    alpha: float
    beta: float

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def strength(self) -> float:
        return self.alpha + self.beta

    def shrink(self, satisfied: int, n: int) -> Shrunk:
        """The posterior Beta(alpha + satisfied, beta + n - satisfied): mean, 95% interval."""
        return self.shrink_all([(satisfied, n)])[0]

    def shrink_all(self, counts: Iterable[tuple[int, int]]) -> list[Shrunk]:
        """`shrink` of many (satisfied, responses) at once: one vectorised quantile call."""
        from scipy.special import betaincinv  # see fit_beta_prior

        satisfied, n = np.array(list(counts), dtype=float).reshape(-1, 2).T
        a, b = self.alpha + satisfied, self.beta + n - satisfied
        quantiles = betaincinv(a[:, None], b[:, None], TAILS95)
        return [
            Shrunk(float(mean), float(low), float(high), float(weight))
            for mean, (low, high), weight in zip(
                a / (a + b), quantiles, n / (n + self.strength), strict=True
            )
        ]


def fit_beta_prior(samples: Iterable[tuple[int, int]]) -> BetaPrior | None:
    """The beta prior of the operators' CSAT that best explains their (satisfied, responses).

    Empirical Bayes: maximises the beta-binomial marginal likelihood of every operator's
    counts over alpha, beta >= 1, started from the method of moments. None when no operator
    has a response.
    """
    # Sorted: the fit sums over the operators, and floating point sums in another order end
    # a flat likelihood's search elsewhere; the order the database returns rows in must not
    # move a figure.
    counts = np.array(sorted((s, n) for s, n in samples if n > 0), dtype=float).reshape(-1, 2)
    if not len(counts):
        return None
    # SciPy is imported where a report needs it, not with the module: it takes half a second
    # of CPU, which every web and Celery worker and every command would pay at start-up.
    from scipy.optimize import minimize
    from scipy.special import betaln, digamma

    satisfied, n = counts[:, 0], counts[:, 1]
    failed, k = n - satisfied, len(n)

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        alpha, beta = shapes = np.exp(x)
        # log of the marginal likelihood, without the binomial coefficients (constant)
        log_likelihood = np.sum(betaln(alpha + satisfied, beta + failed)) - k * betaln(alpha, beta)
        common = k * digamma(alpha + beta) - np.sum(digamma(alpha + beta + n))
        d_alpha = np.sum(digamma(alpha + satisfied)) - k * digamma(alpha) + common
        d_beta = np.sum(digamma(beta + failed)) - k * digamma(beta) + common
        return -float(log_likelihood), -np.array([d_alpha, d_beta]) * shapes

    # Searched over log(alpha) and log(beta).
    bounds = [(math.log(MIN_PRIOR_SHAPE), MAX_LOG_PRIOR_SHAPE)] * 2
    start = _moments_start(satisfied, n)
    # Two parameters: BLAS threads only cost here, and a lot on a busy machine.
    with _blas().limit(limits=1, user_api="blas"):
        found = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds)
    alpha, beta = np.exp(found.x)
    return BetaPrior(float(alpha), float(beta))


@cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _moments_start(satisfied: np.ndarray, n: np.ndarray) -> np.ndarray:
    """log(alpha), log(beta) of the method-of-moments fit, kept in the searched range."""
    mean = float(satisfied.sum() / n.sum())
    spread = float(np.var(satisfied / n)) - mean * (1 - mean) * float(np.mean(1 / n))
    strength = mean * (1 - mean) / spread - 1 if spread > 0 else 1000.0
    strength = min(max(strength, 4.0), 1e5)
    shapes = np.array([mean * strength, (1 - mean) * strength])
    return np.log(np.maximum(shapes, MIN_PRIOR_SHAPE))


def compare_share(satisfied: int, n: int, reference: float) -> str | None:
    """'above' or 'below' when `reference` lies outside the Wilson 95% interval of
    satisfied / n, else 'no_difference'; None without responses.

    The Wilson interval is the set of shares the score test does not reject at 5 %, so this
    is that test of "the operator's true CSAT equals the reference".
    """
    interval = wilson_interval(satisfied, n)
    if interval is None:
        return None
    if reference < interval[0]:
        return "above"
    if reference > interval[1]:
        return "below"
    return "no_difference"


@dataclass(frozen=True)
class Figure:
    """One additive figure of the reports: a column of the rollup (gateway.reports.models),
    summed over any days, operators and teams. docs/metrics.md says what each one counts."""

    name: str
    kind: type[int] | type[float]


# The survey funnel: contacts and what became of their surveys. What one contact adds is
# gateway.reports.rollup.Delta.contribute.
FUNNEL = tuple(
    Figure(name, int)
    for name in (
        "contacts",
        "offered",
        "not_sent",
        "sent",
        "started",
        "completed",
        "excluded",
        "calls_without_survey",
    )
)
# Sums of the frozen scores of non-excluded surveys. What one score adds is `Tally.add`.
SCORES = (
    Figure("responses", int),
    *(Figure(f"overall_{v}", int) for v in range(1, 6)),
    Figure("csi_sum", float),
    Figure("csi_n", int),
    Figure("csi_operator_sum", float),
    Figure("csi_operator_n", int),
    Figure("nps_n", int),
    Figure("promoters", int),
    Figure("detractors", int),
)
# Every figure of a rollup bucket, in its columns' order.
BUCKET_FIGURES = FUNNEL + SCORES
_SCORE_KINDS = tuple((f.name, f.kind) for f in SCORES)
_OVERALL_COLUMNS = tuple((v, f"overall_{v}") for v in range(1, 6))
_SATISFIED_COLUMNS = tuple(f"overall_{v}" for v in sorted(SATISFIED))


@dataclass
class Tally:
    """Counts and sums that add up across sessions, days and operators: the SCORES figures
    by name, and each parameter's sum and count."""

    sums: dict[str, float] = field(default_factory=lambda: {f.name: f.kind() for f in SCORES})
    parameter_sums: dict[str, list[float]] = field(default_factory=dict)  # key -> [sum, n]

    @classmethod
    def of_columns(cls, columns: Mapping[str, float]) -> Tally:
        """The tally a rollup row (or a sum of rows) holds; parameters apart."""
        return cls({name: kind(columns.get(name) or 0) for name, kind in _SCORE_KINDS})

    @property
    def responses(self) -> int:
        """Sessions with an overall answer."""
        return int(self.sums["responses"])

    @property
    def distribution(self) -> dict[int, int]:
        """How many responses gave each overall score, 1 to 5."""
        sums = self.sums
        return {v: int(sums[name]) for v, name in _OVERALL_COLUMNS}

    @property
    def satisfied(self) -> int:
        """Responses whose overall score counts in CSAT."""
        sums = self.sums
        return sum([int(sums[name]) for name in _SATISFIED_COLUMNS])

    def add(self, score: SessionScore) -> None:
        """Count one non-excluded session's score."""
        sums = self.sums
        if score.overall is not None:
            sums["responses"] += 1
            if f"overall_{score.overall}" in sums:
                sums[f"overall_{score.overall}"] += 1
        if score.csi is not None:
            sums["csi_sum"] += score.csi
            sums["csi_n"] += 1
        if score.csi_operator is not None:
            sums["csi_operator_sum"] += score.csi_operator
            sums["csi_operator_n"] += 1
        if score.nps is not None:
            sums["nps_n"] += 1
            sums["promoters"] += score.nps in PROMOTERS
            sums["detractors"] += score.nps in DETRACTORS
        for key, value in score.parameters.items():
            pair = self.parameter_sums.setdefault(key, [0.0, 0])
            pair[0] += value
            pair[1] += 1

    def merge(self, other: Tally) -> None:
        for name, value in other.sums.items():
            self.sums[name] += value
        for key, (total, n) in other.parameter_sums.items():
            pair = self.parameter_sums.setdefault(key, [0.0, 0])
            pair[0] += total
            pair[1] += n

    @classmethod
    def of(cls, scores: Iterable[SessionScore]) -> Tally:
        tally = cls()
        for score in scores:
            tally.add(score)
        return tally


def _mean(total: float, n: int) -> float | None:
    return total / n if n else None


def figures(tally: Tally, *, operator_view: bool = True) -> dict[str, Any]:
    """The published figures of a tally (unrounded).

    `operator_view` makes `csi` the operator's CSI (operator-controlled parameters only);
    `csi_all_parameters` always includes every parameter (the company's view).
    """
    sums = tally.sums
    n = tally.responses
    satisfied = tally.satisfied
    distribution = tally.distribution
    overall_sum = sum(v * c for v, c in distribution.items())
    interval = wilson_interval(satisfied, n)
    csi_all = _mean(sums["csi_sum"], int(sums["csi_n"]))
    csi_operator = _mean(sums["csi_operator_sum"], int(sums["csi_operator_n"]))
    nps_n, promoters, detractors = (int(sums[k]) for k in ("nps_n", "promoters", "detractors"))
    nps = nps_of(promoters, detractors, nps_n)
    nps_ci95 = nps_interval(promoters, detractors, nps_n)
    return {
        "responses": n,
        "overall_mean": _mean(overall_sum, n),
        "csat": satisfied / n if n else None,
        "csat_ci95": list(interval) if interval else None,
        "csi": csi_operator if operator_view else csi_all,
        "csi_all_parameters": csi_all,
        "parameters": {
            key: total / count
            for key, (total, count) in sorted(tally.parameter_sums.items())
            if count
        },
        "distribution": {str(v): distribution.get(v, 0) for v in range(1, 6)},
        "nps": None
        if nps is None
        else {
            "score": nps[0],
            "se": nps[1],
            "ci95": list(nps_ci95) if nps_ci95 else None,
            "responses": nps_n,
            "promoters": promoters,
            "passives": nps_n - promoters - detractors,
            "detractors": detractors,
        },
    }
