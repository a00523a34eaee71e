"""The reports' rollup: per operator, team, local day, channel and office, the counts and sums
that every report figure adds up. Derived data, kept current by additive increments in the
transaction of each write (gateway.reports.rollup) and rebuildable from the raw rows.

`team_id` is the team at the time of the contact (0: none); it is part of the key, so a team
filter reads the rollup alone and an operator's move leaves old buckets where they are.

The month tables (`score_months` and its parameter and disposition rows) hold the same sums
per local month instead of per day (`day` is the month's first day), kept by the same
increments: a report over whole months reads 31 times fewer rows.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, utcnow
from gateway.reports.metrics import BUCKET_FIGURES

BUCKET_KEY = ("operator_id", "team_id", "day", "channel", "office")


class BucketKeyColumns:
    """The key every rollup row has, day and month tables alike (`day` of a month's row: its
    first day). Sorted first, as the migrations create them: a table's columns start with its
    key."""

    id: Mapped[int] = mapped_column(primary_key=True, sort_order=-1)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), sort_order=-1)
    team_id: Mapped[int] = mapped_column(Integer, sort_order=-1)  # team at the contact; 0: none
    day: Mapped[date] = mapped_column(sort_order=-1)  # the contact's end, in REPORT_TIMEZONE
    channel: Mapped[str] = mapped_column(String(20), sort_order=-1)  # the interaction's channel
    office: Mapped[str] = mapped_column(String(100), sort_order=-1)  # "": none (part of the key)


class ParameterSumColumns:
    """The sum and count of one parameter's frozen scores in one bucket or month.

    Rows rather than a JSON column: the database adds them up (and increments them) itself.
    """

    key: Mapped[str] = mapped_column(String(50))  # the parameter question's key
    total: Mapped[float] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)


class DispositionCountColumns:
    """How many contacts of one bucket or month ended with one PBX disposition (the funnel)."""

    disposition: Mapped[str] = mapped_column(String(50))
    n: Mapped[int] = mapped_column(Integer)


def _figure_columns() -> dict[str, Any]:
    """One column per figure (gateway.reports.metrics.BUCKET_FIGURES): the funnel's counts and
    the sums of frozen scores, declared once there."""
    return {
        figure.name: mapped_column(
            Float if figure.kind is float else Integer, default=figure.kind(), nullable=False
        )
        for figure in BUCKET_FIGURES
    }


class ScoreBucket(BucketKeyColumns, Base):
    """One operator's contacts, surveys and frozen-score sums of one bucket."""

    __tablename__ = "score_buckets"
    __table_args__ = (
        UniqueConstraint(*BUCKET_KEY, name="uq_score_buckets_key"),
        Index("ix_score_buckets_day", "day"),
    )

    locals().update(_figure_columns())


class ScoreBucketParameter(BucketKeyColumns, ParameterSumColumns, Base):
    """One parameter's sum and count in one bucket."""

    __tablename__ = "score_bucket_parameters"
    __table_args__ = (
        UniqueConstraint(*BUCKET_KEY, "key", name="uq_score_bucket_parameters_key"),
        Index("ix_score_bucket_parameters_day", "day"),
    )


class ScoreBucketDisposition(BucketKeyColumns, DispositionCountColumns, Base):
    """One disposition's count in one bucket."""

    __tablename__ = "score_bucket_dispositions"
    __table_args__ = (
        UniqueConstraint(*BUCKET_KEY, "disposition", name="uq_score_bucket_dispositions_key"),
        Index("ix_score_bucket_dispositions_day", "day"),
    )


class ScoreMonth(BucketKeyColumns, Base):
    """The sum of one month's buckets (operator, team, channel, office): the same figures."""

    __tablename__ = "score_months"
    __table_args__ = (
        UniqueConstraint(*BUCKET_KEY, name="uq_score_months_key"),
        Index("ix_score_months_day", "day"),
    )

    locals().update(_figure_columns())


class ScoreMonthParameter(BucketKeyColumns, ParameterSumColumns, Base):
    """One parameter's sum and count in one month's buckets."""

    __tablename__ = "score_month_parameters"
    __table_args__ = (
        UniqueConstraint(*BUCKET_KEY, "key", name="uq_score_month_parameters_key"),
        Index("ix_score_month_parameters_day", "day"),
    )


class ScoreMonthDisposition(BucketKeyColumns, DispositionCountColumns, Base):
    """One disposition's count in one month's buckets."""

    __tablename__ = "score_month_dispositions"
    __table_args__ = (
        UniqueConstraint(*BUCKET_KEY, "disposition", name="uq_score_month_dispositions_key"),
        Index("ix_score_month_dispositions_day", "day"),
    )


class RollupState(Base):
    """One row: the time zone the rollup's days were built in, checked at start-up."""

    __tablename__ = "score_rollup_state"

    id: Mapped[int] = mapped_column(primary_key=True)  # always 1
    timezone: Mapped[str] = mapped_column(String(64))
    built_at: Mapped[datetime] = mapped_column(default=utcnow)
