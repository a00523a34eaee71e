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
from typing import Any

from ivr_flows import Flow, QuestionType

OVERALL = "overall"
# z for a two-sided 95% interval: the 0.975 quantile of the standard normal.
Z95 = 1.959963984540054
SATISFIED = frozenset({4, 5})  # CSAT counts these overall scores
PROMOTERS = range(9, 11)
DETRACTORS = range(0, 7)


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

    Weights are the customer's own importance answers when the session has any; a parameter
    whose importance was skipped takes the mean of the customer's other importance answers.
    Without importance answers the flow's configured weights apply.
    """
    given_importance = [v for k in spec.importance_keys if (v := answers.get(k)) is not None]
    mean_importance = sum(given_importance) / len(given_importance) if given_importance else None
    total = weights = 0.0
    for parameter in spec.parameters:
        if operator_only and not parameter.operator_controlled:
            continue
        value = answers.get(parameter.key)
        if value is None:
            continue
        if mean_importance is None:
            weight = parameter.weight
        else:
            own = answers.get(parameter.importance_key) if parameter.importance_key else None
            weight = float(own) if own is not None else mean_importance
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


def nps_class(value: int | None) -> str | None:
    """promoter (9-10), passive (7-8) or detractor (0-6)."""
    if value is None:
        return None
    if value in PROMOTERS:
        return "promoter"
    if value in DETRACTORS:
        return "detractor"
    return "passive"


@dataclass
class Tally:
    """Counts and sums that add up across sessions, days and operators."""

    responses: int = 0
    distribution: dict[int, int] = field(default_factory=lambda: dict.fromkeys(range(1, 6), 0))
    csi_sum: float = 0.0
    csi_n: int = 0
    csi_operator_sum: float = 0.0
    csi_operator_n: int = 0
    nps_n: int = 0
    promoters: int = 0
    detractors: int = 0
    parameter_sums: dict[str, list[float]] = field(default_factory=dict)  # key -> [sum, n]

    def add(self, score: SessionScore) -> None:
        """Count one non-excluded session's score."""
        if score.overall is not None:
            self.responses += 1
            self.distribution[score.overall] = self.distribution.get(score.overall, 0) + 1
        if score.csi is not None:
            self.csi_sum += score.csi
            self.csi_n += 1
        if score.csi_operator is not None:
            self.csi_operator_sum += score.csi_operator
            self.csi_operator_n += 1
        if score.nps is not None:
            self.nps_n += 1
            self.promoters += score.nps in PROMOTERS
            self.detractors += score.nps in DETRACTORS
        for key, value in score.parameters.items():
            pair = self.parameter_sums.setdefault(key, [0.0, 0])
            pair[0] += value
            pair[1] += 1

    def merge(self, other: Tally) -> None:
        self.responses += other.responses
        for value, count in other.distribution.items():
            self.distribution[value] = self.distribution.get(value, 0) + count
        self.csi_sum += other.csi_sum
        self.csi_n += other.csi_n
        self.csi_operator_sum += other.csi_operator_sum
        self.csi_operator_n += other.csi_operator_n
        self.nps_n += other.nps_n
        self.promoters += other.promoters
        self.detractors += other.detractors
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
    n = tally.responses
    satisfied = sum(tally.distribution.get(v, 0) for v in SATISFIED)
    overall_sum = sum(v * c for v, c in tally.distribution.items())
    interval = wilson_interval(satisfied, n)
    csi_all = _mean(tally.csi_sum, tally.csi_n)
    csi_operator = _mean(tally.csi_operator_sum, tally.csi_operator_n)
    nps = nps_of(tally.promoters, tally.detractors, tally.nps_n)
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
        "distribution": {str(v): tally.distribution.get(v, 0) for v in range(1, 6)},
        "nps": None
        if nps is None
        else {
            "score": nps[0],
            "se": nps[1],
            "responses": tally.nps_n,
            "promoters": tally.promoters,
            "passives": tally.nps_n - tally.promoters - tally.detractors,
            "detractors": tally.detractors,
        },
    }
