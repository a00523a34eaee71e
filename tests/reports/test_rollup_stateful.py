"""Rollup = raw, proven: random sequences of contacts, answers, late answers, survey ends,
exclusions, reinstatements, interaction edits and deletions, operator team moves, weight
changes, re-scores and follow-up surveys after a fix (answered, never counted as contacts
of the operator); after every step each report figure must equal a recomputation from
the raw rows, with the weights in force when each survey ended and the team each contact had.

The random run takes minutes: it is in `make test-slow` (CI runs it after `make test`), and
`make test` keeps the proof that the check itself catches a figure that moved.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from gateway import survey_state
from gateway.interactions import assign_operator, move_operator
from gateway.models import (
    Answer,
    Interaction,
    InteractionChannel,
    Operator,
    SurveyChannel,
    SurveyKind,
    SurveySession,
    SurveyStatus,
    Team,
)
from gateway.privacy import delete_interaction
from gateway.reports import scoring, service
from gateway.reports.metrics import Tally, figures, score_session, spec_for
from gateway.reports.rollup import verify
from gateway.surveys import record_answer
from ivr_flows import Flow, parse_flow
from ivr_flows.engine import RecordedAnswer
from tests.reports.factories import session_with_flows

pytestmark = pytest.mark.both_databases

MOSCOW = ZoneInfo("Europe/Moscow")
FIRST, LAST = date(2026, 9, 29), date(2026, 10, 3)  # Moscow days, across a month's end
WITH_A_MONTH = (date(2026, 9, 20), date(2026, 10, 31))  # days, then a whole month
QUESTIONS = ("overall", "cost", "speed", "politeness", "nps")
WEIGHTS = ((1.0, 1.0, 1.0), (3.0, 1.0, 0.5), (0.0, 2.0, 1.0))
SENT = {"active", "completed", "partial", "expired"}
NOT_SENT = {"not_sent", "not_reached", "failed"}


def weighted_flow(weights: tuple[float, float, float]) -> Flow:
    """A flow with an overall question, three weighted parameters (cost not the operator's)
    and an NPS question."""
    cost, speed, politeness = weights
    rating = {"en": "1 to 5"}
    return parse_flow(
        {
            "key": "weighted",
            "languages": ["en"],
            "prompts": {
                "greeting": {"en": "Hello"},
                "thanks": {"en": "Thanks"},
                "reprompt_rating": rating,
                "reprompt_nps": {"en": "0 to 10"},
            },
            "questions": [
                {"key": "overall", "type": "rating", "text": {"en": "Overall?"}},
                {
                    "key": "cost",
                    "parameter": True,
                    "operator_controlled": False,
                    "weight": cost,
                    "text": {"en": "Cost?"},
                },
                {"key": "speed", "parameter": True, "weight": speed, "text": {"en": "Speed?"}},
                {
                    "key": "politeness",
                    "parameter": True,
                    "weight": politeness,
                    "text": {"en": "Polite?"},
                },
                {"key": "nps", "type": "nps", "text": {"en": "Recommend us?"}},
            ],
        }
    )


FLOWS = {w: weighted_flow(w) for w in WEIGHTS}


def value_for(question: str) -> st.SearchStrategy[int | None]:
    values = st.integers(0, 10) if question == "nps" else st.integers(1, 5)
    return st.none() | values


class Rollup(RuleBasedStateMachine):
    """One example: fresh rows in a savepoint of the test's transaction, rolled back after."""

    app: Any = None  # set with the flows by `_machine`
    flows: ClassVar[dict[str, Flow]]

    contacts = Bundle("contacts")
    follow_ups = Bundle("follow_ups")

    def __init__(self) -> None:
        super().__init__()
        database = self.app.extensions["database"]
        self.connection = database.session_factory.kw["bind"]
        self.savepoint = self.connection.begin_nested()
        # A session of the app as built with `flows` (a restart with other flow files
        # changes them: see change_weights).
        self.session = session_with_flows(self.app, self.flows)
        self.settings = self.app.config["SETTINGS"]
        self.weights = WEIGHTS[0]
        self.flows["weighted"] = FLOWS[self.weights]
        self.frozen_weights: dict[int, tuple[float, float, float]] = {}  # survey id -> weights
        self.team_of: dict[int, int | None] = {}  # interaction id -> team at the contact
        self.clock = datetime(2026, 10, 5, tzinfo=UTC)
        self.serial = 0
        self.teams = [self._team(name) for name in ("North", "South", "West")]
        self.operators = [self._operator(n, self.teams[n % 2]) for n in range(3)]
        self.session.commit()

    def teardown(self) -> None:
        try:
            # `surveys verify-scores` finds no bucket that differs from the raw rows after the
            # run (the reports' figures are compared after every step, see the invariant).
            self.session.expire_all()
            assert verify(self.session, FIRST, LAST, MOSCOW) == []
        finally:
            self.close()

    def close(self) -> None:
        self.session.close()
        self.savepoint.rollback()

    def _team(self, name: str) -> Team:
        team = Team(name=name)
        self.session.add(team)
        return team

    def _operator(self, n: int, team: Team) -> Operator:
        operator = Operator(external_id=f"op-{n}", name=f"Operator {n}", team=team)
        self.session.add(operator)
        return operator

    def _now(self) -> datetime:
        self.clock += timedelta(minutes=1)
        return self.clock

    def _survey(self, interaction_id: int) -> SurveySession | None:
        return self.session.scalar(
            select(SurveySession).where(
                SurveySession.interaction_id == interaction_id,
                SurveySession.follow_up_of_id.is_(None),
            )
        )

    # --- rules -------------------------------------------------------------------------

    @rule(
        target=contacts,
        operator=st.integers(0, 2),
        day=st.integers(0, (LAST - FIRST).days),
        hour=st.sampled_from([0, 1, 12, 20, 21, 22, 23]),  # UTC: 21-23 is tomorrow in Moscow
        channel=st.sampled_from(["call", "office_visit"]),
        office=st.sampled_from([None, "central"]),
        disposition=st.sampled_from([None, None, "transferred"]),
        survey=st.sampled_from(["active", "active", "active", "none", "not_sent", "scheduled"]),
    )
    def contact(
        self,
        operator: int,
        day: int,
        hour: int,
        channel: str,
        office: str | None,
        disposition: str | None,
        survey: str,
    ) -> int:
        self.serial += 1
        interaction = Interaction(
            channel=InteractionChannel(channel),
            external_id=f"contact-{self.serial}",
            ended_at=datetime.combine(FIRST + timedelta(days=day), datetime.min.time(), UTC)
            + timedelta(hours=hour, minutes=30),
            office=office,
            disposition=disposition,
        )
        assign_operator(interaction, self.operators[operator])
        self.session.add(interaction)
        if survey != "none":
            self.session.add(
                SurveySession(
                    interaction=interaction,
                    channel=SurveyChannel.IVR,
                    kind=SurveyKind.POST_CALL,
                    flow="weighted",
                    language="en",
                    status=SurveyStatus(survey),
                )
            )
        self.session.commit()
        self.team_of[interaction.id] = self.operators[operator].team_id
        return interaction.id

    @rule(contact=contacts, question=st.sampled_from(QUESTIONS), data=st.data())
    def answer(self, contact: int, question: str, data: st.DataObject) -> None:
        """A keypress (or, on a survey that already ended, a late answer)."""
        survey = self._survey(contact)
        if survey is None or survey.status.value not in SENT:
            return
        value = data.draw(value_for(question))
        record_answer(
            self.session, survey, RecordedAnswer(question, value), self.settings, self._now()
        )
        self.session.commit()

    @rule(contact=contacts, completed=st.booleans())
    def end(self, contact: int, completed: bool) -> None:
        survey = self._survey(contact)
        if survey is None or survey.status is not SurveyStatus.ACTIVE:
            return
        self.session.expire(survey, ["answers"])
        survey_state.finish(survey, self._now(), completed=completed)
        self.session.commit()
        self.frozen_weights[survey.id] = self.weights

    @rule(target=follow_ups, contact=contacts)
    def follow_up(self, contact: int) -> int:
        """A supervisor surveys the customer again after a fix."""
        original = self._survey(contact)
        if original is None:
            return 0  # nothing to follow up; the answering rule skips it
        row = SurveySession(
            interaction_id=contact,
            follow_up_of_id=original.id,
            requested_by="supervisor:test",
            channel=SurveyChannel.SMS,
            kind=SurveyKind.SMS,
            flow="weighted",
            language="en",
            status=SurveyStatus.ACTIVE,
        )
        self.session.add(row)
        self.session.commit()
        return row.id

    @rule(
        follow_up=follow_ups,
        question=st.sampled_from(QUESTIONS),
        data=st.data(),
        end=st.booleans(),
    )
    def answer_follow_up(
        self, follow_up: int, question: str, data: st.DataObject, end: bool
    ) -> None:
        survey = self.session.get(SurveySession, follow_up) if follow_up else None
        if survey is None or survey.status is not SurveyStatus.ACTIVE:
            return
        value = data.draw(value_for(question))
        record_answer(
            self.session, survey, RecordedAnswer(question, value), self.settings, self._now()
        )
        if end:
            self.session.flush()
            self.session.expire(survey, ["answers"])
            survey_state.finish(survey, self._now(), completed=True)
        self.session.commit()

    @rule(contact=contacts)
    def exclude(self, contact: int) -> None:
        survey = self._survey(contact)
        if survey is not None:
            service.exclude_rating(self.session, survey, "appeal", "admin:test", self._now())
            self.session.commit()

    @rule(contact=contacts)
    def reinstate(self, contact: int) -> None:
        survey = self._survey(contact)
        if survey is not None:
            service.reinstate_rating(self.session, survey, "admin:test", self._now(), None)
            self.session.commit()

    @rule(contact=contacts, operator=st.integers(0, 2))
    def reassign(self, contact: int, operator: int) -> None:
        """The PBX corrects the operator of a contact."""
        interaction = self.session.get_one(Interaction, contact)
        assign_operator(interaction, self.operators[operator])
        self.session.commit()
        self.team_of[contact] = self.operators[operator].team_id

    @rule(contact=contacts, hours=st.sampled_from([-3, -1, 1, 2, 24]))
    def move_in_time(self, contact: int, hours: int) -> None:
        interaction = self.session.get_one(Interaction, contact)
        moved = interaction.ended_at + timedelta(hours=hours)
        if FIRST <= moved.astimezone(MOSCOW).date() <= LAST:
            interaction.ended_at = moved
            self.session.commit()

    @rule(contact=contacts)
    def change_office(self, contact: int) -> None:
        interaction = self.session.get_one(Interaction, contact)
        interaction.office = None if interaction.office else "port"
        self.session.commit()

    @rule(contact=consumes(contacts))
    def delete(self, contact: int) -> None:
        """A contact recorded by mistake is deleted, with its surveys and incidents."""
        survey = self._survey(contact)
        if survey is not None:
            self.frozen_weights.pop(survey.id, None)
        interaction = self.session.get_one(Interaction, contact)
        delete_interaction(self.session, interaction, "admin:test", "a test call", self._now())
        self.session.commit()
        del self.team_of[contact]

    @rule(operator=st.integers(0, 2), team=st.integers(0, 2))
    def move_operator(self, operator: int, team: int) -> None:
        move_operator(
            self.session, self.operators[operator], self.teams[team], "admin:test", self._now()
        )
        self.session.commit()

    @rule(weights=st.sampled_from(WEIGHTS))
    def change_weights(self, weights: tuple[float, float, float]) -> None:
        """A new flow file and a restart: counts for surveys that end from now on."""
        self.weights = weights
        self.flows["weighted"] = FLOWS[weights]

    @rule(first=st.integers(0, 4), days=st.integers(0, 4))
    def rescore(self, first: int, days: int) -> None:
        start = FIRST + timedelta(days=first)
        end = min(start + timedelta(days=days), LAST)
        service.rescore_surveys(self.session, "weighted", start, end, MOSCOW, self._now())
        self.session.commit()
        for survey in self.session.scalars(
            select(SurveySession).where(SurveySession.scored_at.is_not(None))
        ):
            day = survey.interaction.ended_at.astimezone(MOSCOW).date()
            if start <= day <= end:
                self.frozen_weights[survey.id] = self.weights

    # --- the check ---------------------------------------------------------------------

    def _raw(self, first: date = FIRST, last: date = LAST) -> dict[str, Any]:
        """Every figure of the local days first..last recomputed from the raw rows, per
        operator, team and local day."""
        answers: dict[int, dict[str, int | None]] = defaultdict(dict)
        for survey_id, key, value in self.session.execute(
            select(Answer.session_id, Answer.question_key, Answer.value)
        ):
            answers[survey_id][key] = value
        surveys = {
            s.interaction_id: s
            for s in self.session.scalars(
                select(SurveySession).where(SurveySession.follow_up_of_id.is_(None))
            )
        }
        groups: dict[Any, dict[str, Any]] = defaultdict(
            lambda: {"tally": Tally(), "counts": defaultdict(int), "dispositions": defaultdict(int)}
        )
        for interaction in self.session.scalars(select(Interaction)):
            team = self.team_of[interaction.id]
            day = interaction.ended_at.astimezone(MOSCOW).date()
            if not first <= day <= last:
                continue  # the report's period is these Moscow days
            keys = [
                ("operator", interaction.operator_id),
                ("team", team),
                ("day", interaction.operator_id, day),
                ("month", interaction.operator_id, day.replace(day=1)),
            ]
            survey = surveys.get(interaction.id)
            for key in keys:
                group = groups[key]
                group["counts"]["contacts"] += 1
                if interaction.disposition:
                    group["dispositions"][interaction.disposition] += 1
                if survey is None:
                    group["counts"]["calls_without_survey"] += interaction.channel == "call"
                    continue
                group["counts"]["offered"] += 1
                if survey.excluded_at is not None:
                    group["counts"]["excluded"] += 1
                    continue
                status = survey.status.value
                group["counts"]["sent"] += status in SENT
                group["counts"]["not_sent"] += status in NOT_SENT
                group["counts"]["completed"] += status == "completed"
                if survey.id not in self.frozen_weights:
                    continue  # still running: no score yet
                given = answers.get(survey.id, {})
                group["counts"]["started"] += any(v is not None for v in given.values())
                spec = spec_for(FLOWS[self.frozen_weights[survey.id]])
                group["tally"].add(score_session(given, spec))
        return groups

    @invariant()
    def reports_equal_the_raw_rows(self) -> None:
        self.session.expire_all()
        # The first period is days only; the second adds up September's last days and the
        # whole of October, which the reports read from the month rollup.
        for first, last in ((FIRST, LAST), (WITH_A_MONTH[0], WITH_A_MONTH[1])):
            self._period_equals_the_raw_rows(first, last, trend=first == FIRST)

    def _period_equals_the_raw_rows(self, first: date, last: date, *, trend: bool) -> None:
        raw = self._raw(first, last)
        flt = service.ReportFilter(first, last, zone=MOSCOW)
        names = {o.id: o.external_id for o in self.operators}
        rows = {
            r["operator"]["external_id"]: r
            for r in service.operators_report(self.session, flt, self.settings)
        }
        funnel = {r["operator"]["external_id"]: r for r in service.funnel_report(self.session, flt)}
        expected_operators = {k[1] for k in raw if k[0] == "operator"}
        assert set(rows) == {names[i] for i in expected_operators}
        for operator_id in expected_operators:
            want = raw["operator", operator_id]
            name = names[operator_id]
            same_figures(rows[name], want, operator_view=True)
            counts = funnel[name]
            for field, column in (
                ("contacts", "contacts"),
                ("surveys_offered", "offered"),
                ("surveys_sent", "sent"),
                ("surveys_not_sent", "not_sent"),
                ("surveys_started", "started"),
                ("surveys_completed", "completed"),
                ("excluded", "excluded"),
                ("calls_without_survey", "calls_without_survey"),
            ):
                assert counts[field] == want["counts"][column], (name, field)
            assert counts["dispositions"] == dict(want["dispositions"]), name
            if not trend:
                continue
            operator = self.session.get_one(Operator, operator_id)
            for granularity in ("day", "month"):
                points = {
                    p["period_start"]: p
                    for p in service.operator_trend(
                        self.session, operator, flt, granularity, self.settings
                    )
                }
                expected = {
                    k[2].isoformat(): g
                    for k, g in raw.items()
                    if k[0] == granularity and k[1] == operator_id
                }
                assert set(points) == set(expected), (name, granularity)
                for start, group in expected.items():
                    same_figures(points[start], group, operator_view=True)

        teams = service.teams_report(self.session, flt, self.settings)["teams"]
        team_names = {t.id: t.name for t in self.teams}
        expected_teams = {team_names.get(k[1]): g for k, g in raw.items() if k[0] == "team"}
        assert {t["team"]: t for t in teams}.keys() == expected_teams.keys()
        for team in teams:
            same_figures(team, expected_teams[team["team"]], operator_view=False)


def same_figures(got: dict[str, Any], group: dict[str, Any], *, operator_view: bool) -> None:
    want = figures(group["tally"], operator_view=operator_view)
    assert got["responses"] == want["responses"]
    assert got["surveys_sent"] == group["counts"]["sent"]
    assert got["distribution"] == want["distribution"]
    assert got["excluded"] == group["counts"]["excluded"]
    for name in ("overall_mean", "csat", "csi", "csi_all_parameters"):
        if want[name] is None:
            assert got[name] is None, name
        else:
            assert got[name] == pytest.approx(want[name], abs=0.01), name
    assert got["parameters"] == pytest.approx(want["parameters"], abs=0.001)
    if want["nps"] is None:
        assert got["nps"] is None
    else:
        assert got["nps"]["responses"] == want["nps"]["responses"]
        assert got["nps"]["promoters"] == want["nps"]["promoters"]
        assert got["nps"]["detractors"] == want["nps"]["detractors"]


def _run(app: Any, examples: int, steps: int) -> None:
    flows: dict[str, Flow] = {}
    machine = type("RollupMachine", (Rollup,), {"app": app, "flows": flows})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
        ),
    )


@pytest.mark.slow
def test_every_report_figure_equals_the_raw_rows_after_every_step(app):
    with app.app_context():
        _run(app, examples=60, steps=30)


def test_the_machine_notices_a_past_figure_that_moved(app):
    """The check itself can fail: a survey re-scored behind the model's back is caught."""
    flows: dict[str, Flow] = {"weighted": FLOWS[WEIGHTS[0]]}
    with app.app_context():
        machine = type("RollupMachine", (Rollup,), {"app": app, "flows": flows})()
        try:
            contact = machine.contact(0, 1, 12, "call", None, None, "active")
            survey = machine._survey(contact)
            for question, value in (("overall", 4), ("cost", 1), ("speed", 5)):
                record_answer(
                    machine.session,
                    survey,
                    RecordedAnswer(question, value),
                    machine.settings,
                    machine._now(),
                )
            machine.end(contact, True)
            machine.reports_equal_the_raw_rows()
            flows["weighted"] = FLOWS[WEIGHTS[1]]
            scoring.freeze_score(survey, machine._now(), spec=spec_for(FLOWS[WEIGHTS[1]]))
            machine.session.commit()
            with pytest.raises(AssertionError):
                machine.reports_equal_the_raw_rows()
        finally:
            machine.close()  # its rollup was damaged on purpose
