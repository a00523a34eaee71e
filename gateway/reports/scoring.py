"""A survey's score, frozen on the survey when it ends.

The reports count frozen scores only, never re-score raw answers with whatever flow is loaded
today: a change of a flow's weights counts for surveys that end afterwards, and a flow file
removed changes no past figure. The weights used are frozen with the score (`score_spec`),
so a late answer is scored with them too; only `rescore` (a deliberate command naming the
period and the flow) applies a flow's current weights to surveys that already ended.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from gateway.flows import Flows, flows_of_row
from gateway.models import Answer, SurveySession
from gateway.reports.metrics import ParameterSpec, ScoringSpec, nps_class, score_session, spec_for


def loaded_spec(flows: Flows, flow_key: str) -> ScoringSpec | None:
    """The spec of a loaded flow with its current weights; None if the flow is not loaded."""
    flow = flows.get(flow_key)
    return spec_for(flow) if flow is not None else None


def current_spec(flows: Flows, flow_key: str) -> ScoringSpec:
    """The spec of a loaded flow; a flow no longer shipped still gives its overall score."""
    return loaded_spec(flows, flow_key) or ScoringSpec()


def spec_to_json(spec: ScoringSpec) -> dict[str, Any]:
    return {
        "overall_key": spec.overall_key,
        "nps_key": spec.nps_key,
        "parameters": [dataclasses.asdict(p) for p in spec.parameters],
    }


def spec_from_json(data: Mapping[str, Any]) -> ScoringSpec:
    return ScoringSpec(
        parameters=tuple(ParameterSpec(**p) for p in data.get("parameters", ())),
        overall_key=data.get("overall_key", "overall"),
        nps_key=data.get("nps_key"),
    )


def answers_of(session: Session, survey_id: int) -> dict[str, int | None]:
    """The survey's raw answers (question key -> value, None where skipped)."""
    return {
        key: value
        for key, value in session.execute(
            select(Answer.question_key, Answer.value).where(Answer.session_id == survey_id)
        )
    }


def freeze_score(
    survey: SurveySession,
    now: datetime,
    *,
    answers: Mapping[str, int | None] | None = None,
    spec: ScoringSpec | None = None,
) -> None:
    """Score the survey from its answers and store the score and the weights used on it.

    The weights are the survey's own frozen ones if it has them, else its flow's current
    ones (or `spec`, for a deliberate re-score). `answers` defaults to the stored ones.
    """
    if spec is None:
        if survey.score_spec:
            spec = spec_from_json(survey.score_spec)
        else:
            spec = current_spec(flows_of_row(survey), survey.flow)
    if answers is None:
        session = object_session(survey)
        if session is None or survey.id is None:
            raise ValueError("a survey's stored answers are read through its session")
        answers = answers_of(session, survey.id)
    for name, value in frozen_score(answers, spec, now).items():
        setattr(survey, name, value)


def frozen_score(
    answers: Mapping[str, int | None], spec: ScoringSpec, now: datetime
) -> dict[str, Any]:
    """The survey's score columns (`scored_at`, `score_*`) for these answers and weights:
    what `freeze_score` stores, for a caller that writes the row itself."""
    score = score_session(answers, spec)
    return {
        "scored_at": now,
        "score_spec": spec_to_json(spec),
        "score_answered": any(v is not None for v in answers.values()),
        "score_overall": score.overall,
        "score_parameters": dict(score.parameters) or None,
        "score_csi": score.csi,
        "score_csi_operator": score.csi_operator,
        "score_nps": score.nps,
        "score_nps_class": nps_class(score.nps),
    }


def frozen_differs(survey: SurveySession, answers: Mapping[str, int | None]) -> bool:
    """Whether the frozen score is not what the answers give under the frozen weights."""
    if survey.scored_at is None or survey.score_spec is None:
        return True
    score = score_session(answers, spec_from_json(survey.score_spec))
    return not (
        survey.score_answered == any(v is not None for v in answers.values())
        and survey.score_overall == score.overall
        and (survey.score_parameters or {}) == dict(score.parameters)
        and _close(survey.score_csi, score.csi)
        and _close(survey.score_csi_operator, score.csi_operator)
        and survey.score_nps == score.nps
    )


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) < 1e-9
