"""Who may see what: the one rule of the API (keys) and the dashboard (accounts).

* admin: everything.
* supervisor: the contacts, figures, surveys and incidents of their teams. A contact belongs
  to the team its operator was in at the time of the contact (`interactions.team_id`), so an
  operator who moved leaves their old contacts with the old team.
* operator: their own contacts, figures and answers only, never a customer's number or name.
* integration: a system, not a person: reports contacts and reads what concerns them, every
  team (it wrote them); it reads no person's report.

Views turn a key or an account into a `Scope` once, then ask this module: the conditions of a
query, whether one record is visible, which team a report may cover. A record outside the
scope is "not found", never "forbidden": its existence is not told either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, false, select
from sqlalchemy.orm import Session

from gateway.models import (
    Account,
    ApiKey,
    ApiRole,
    Incident,
    Interaction,
    Operator,
    SurveySession,
    Team,
)


class OutOfScope(PermissionError):
    """A request for something the scope does not cover; the message says what it covers."""


@dataclass(frozen=True)
class Scope:
    """What one key or account may see."""

    role: ApiRole
    actor: str  # who, for audit events: "supervisor:anna"
    teams: tuple[tuple[int, str], ...] = ()  # a supervisor's teams (id, name)
    operator_id: int | None = None  # an operator's own operator record
    operator_external_id: str | None = None

    @property
    def team_ids(self) -> frozenset[int] | None:
        """The teams this scope is limited to; None: every team."""
        if self.role is ApiRole.SUPERVISOR:
            return frozenset(team_id for team_id, _ in self.teams)
        return None

    @property
    def team_names(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.teams)

    @property
    def is_person(self) -> bool:
        return self.role is not ApiRole.INTEGRATION

    @property
    def sees_customer_contacts(self) -> bool:
        """A customer's number and name: never shown to an operator."""
        return self.role is not ApiRole.OPERATOR


def scope_of_key(key: ApiKey) -> Scope:
    """The scope of an API key: its role, its team (supervisor), its operator (operator)."""
    teams = ((key.team.id, key.team.name),) if key.team is not None else ()
    return Scope(
        role=key.role,
        actor=f"{key.role.value}:{key.name}",
        teams=teams if key.role is ApiRole.SUPERVISOR else (),
        operator_id=key.operator_id if key.role is ApiRole.OPERATOR else None,
        operator_external_id=(
            key.operator.external_id if key.role is ApiRole.OPERATOR and key.operator else None
        ),
    )


def scope_of_account(account: Account) -> Scope:
    """The scope of a dashboard account."""
    return Scope(
        role=account.role,
        actor=f"{account.role.value}:{account.username}",
        teams=tuple((t.id, t.name) for t in account.teams)
        if account.role is ApiRole.SUPERVISOR
        else (),
        operator_id=account.operator_id if account.role is ApiRole.OPERATOR else None,
        operator_external_id=(
            account.operator.external_id
            if account.role is ApiRole.OPERATOR and account.operator
            else None
        ),
    )


# --- reports ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportLimits:
    """What a report is limited to: `team` (a name asked for, or a supervisor's only team),
    `team_ids` (a supervisor's teams), `operator_id` (an operator's own figures)."""

    team: str | None
    team_ids: frozenset[int] | None
    operator_id: int | None


def report_limits(scope: Scope, asked_team: str | None) -> ReportLimits:
    """The limits of a report asked for `asked_team` (None: every team the scope covers).

    Raises OutOfScope for a team a supervisor does not supervise, or a person with nothing
    to see (a supervisor without teams, an operator account not bound to an operator).
    """
    if scope.role is ApiRole.SUPERVISOR:
        names = scope.team_names
        if not names:
            raise OutOfScope("this supervisor has no team")
        if asked_team is not None and asked_team not in names:
            raise OutOfScope(f"a supervisor reads the reports of their teams only: {_list(names)}")
        team = asked_team if asked_team is not None else (names[0] if len(names) == 1 else None)
        return ReportLimits(team, scope.team_ids, None)
    if scope.role is ApiRole.OPERATOR:
        if scope.operator_id is None:
            raise OutOfScope("this operator key or account names no operator")
        return ReportLimits(asked_team, None, scope.operator_id)
    return ReportLimits(asked_team, None, None)


def _list(names: tuple[str, ...]) -> str:
    return ", ".join(names)


# --- records ------------------------------------------------------------------------------


def interaction_conditions(scope: Scope) -> list[ColumnElement[bool]]:
    """The conditions on `Interaction` of what the scope sees."""
    if scope.role is ApiRole.SUPERVISOR:
        return [Interaction.team_id.in_(sorted(scope.team_ids or ()))]
    if scope.role is ApiRole.OPERATOR:
        if scope.operator_id is None:
            return [false()]
        return [Interaction.operator_id == scope.operator_id]
    return []


def restrict_interactions(query: Any, scope: Scope) -> Any:
    """A select over Interaction limited to the scope."""
    return query.where(*interaction_conditions(scope))


def interaction_visible(scope: Scope, interaction: Interaction) -> bool:
    if scope.role is ApiRole.SUPERVISOR:
        return interaction.team_id in (scope.team_ids or ())
    if scope.role is ApiRole.OPERATOR:
        return scope.operator_id is not None and interaction.operator_id == scope.operator_id
    return True


def survey_visible(scope: Scope, survey: SurveySession) -> bool:
    return interaction_visible(scope, survey.interaction)


def incident_conditions(scope: Scope) -> list[ColumnElement[bool]]:
    """The conditions on `Incident` of what the scope sees (by its contact's team)."""
    if scope.role is ApiRole.ADMIN or scope.role is ApiRole.INTEGRATION:
        return []
    return [
        Incident.session_id.in_(
            select(SurveySession.id)
            .join(SurveySession.interaction)
            .where(*interaction_conditions(scope))
        )
    ]


def incident_visible(scope: Scope, incident: Incident) -> bool:
    return interaction_visible(scope, incident.session.interaction)


def operator_visible(session: Session, scope: Scope, operator: Operator) -> bool:
    """An operator is visible to their own scope, to supervisors of their team now or of a
    team they had contacts in, and to admins."""
    if scope.role is ApiRole.OPERATOR:
        return scope.operator_id == operator.id
    if scope.role is ApiRole.SUPERVISOR:
        team_ids = scope.team_ids or frozenset()
        if operator.team_id in team_ids:
            return True
        had_contacts = session.scalar(
            select(Interaction.id)
            .where(Interaction.operator_id == operator.id, Interaction.team_id.in_(team_ids))
            .limit(1)
        )
        return had_contacts is not None
    return True


# --- creating keys and accounts -----------------------------------------------------------


class UnknownName(ValueError):
    """A team or operator that does not exist; the message lists what does."""


def existing_teams(session: Session, names: list[str]) -> list[Team]:
    """The teams of these names, in order; UnknownName for any that does not exist, so a
    typo never creates a phantom team nobody's contacts belong to."""
    found = {t.name: t for t in session.scalars(select(Team).where(Team.name.in_(names)))}
    missing = [name for name in names if name not in found]
    if missing:
        known = list(session.scalars(select(Team.name).order_by(Team.name).limit(50)))
        raise UnknownName(
            f"no team named {', '.join(repr(m) for m in missing)}; known teams: "
            f"{', '.join(known) or 'none yet'} (teams come with the contacts that name them, "
            "or from `survey-gateway team create NAME`)"
        )
    return [found[name] for name in names]


def existing_operator(session: Session, external_id: str) -> Operator:
    """The operator of this external id; UnknownName if there is none."""
    operator = session.scalar(select(Operator).where(Operator.external_id == external_id))
    if operator is None:
        raise UnknownName(
            f"no operator with external id {external_id!r} (operators come with the contacts "
            "that name them)"
        )
    return operator
