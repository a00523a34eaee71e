"""The reports' rollup table: per operator, day, channel and office, the counts and sums that
every report figure is computed from. Derived data, kept current from the raw answers on each
write (gateway.reports.rollup) and rebuildable from them at any time.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, utcnow


class OperatorDayScore(Base):
    """One operator's contacts, surveys and score tallies of one UTC day, channel and office."""

    __tablename__ = "operator_day_scores"
    __table_args__ = (
        UniqueConstraint("operator_id", "day", "channel", "office"),
        Index("ix_operator_day_scores_day", "day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    day: Mapped[date]  # UTC date of the interaction's ended_at
    channel: Mapped[str] = mapped_column(String(20))  # the interaction's channel
    office: Mapped[str] = mapped_column(String(100))  # "" for none: part of the unique key

    # The funnel: additive counts of interactions and their surveys.
    contacts: Mapped[int] = mapped_column(Integer, default=0)
    offered: Mapped[int] = mapped_column(Integer, default=0)
    not_sent: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    started: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    excluded: Mapped[int] = mapped_column(Integer, default=0)
    calls_without_survey: Mapped[int] = mapped_column(Integer, default=0)
    dispositions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    # Score tallies of non-excluded sessions (gateway.reports.metrics.Tally).
    responses: Mapped[int] = mapped_column(Integer, default=0)
    overall_1: Mapped[int] = mapped_column(Integer, default=0)
    overall_2: Mapped[int] = mapped_column(Integer, default=0)
    overall_3: Mapped[int] = mapped_column(Integer, default=0)
    overall_4: Mapped[int] = mapped_column(Integer, default=0)
    overall_5: Mapped[int] = mapped_column(Integer, default=0)
    csi_sum: Mapped[float] = mapped_column(Float, default=0.0)
    csi_n: Mapped[int] = mapped_column(Integer, default=0)
    csi_operator_sum: Mapped[float] = mapped_column(Float, default=0.0)
    csi_operator_n: Mapped[int] = mapped_column(Integer, default=0)
    nps_n: Mapped[int] = mapped_column(Integer, default=0)
    promoters: Mapped[int] = mapped_column(Integer, default=0)
    detractors: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class OperatorDayParameter(Base):
    """The sum and count of one parameter's scores in one rollup bucket (see OperatorDayScore).

    Rows rather than a JSON column: the database adds them up for a month of 500 operators
    in a few milliseconds, where decoding JSON would cost more than the rest of the report.
    """

    __tablename__ = "operator_day_parameters"
    __table_args__ = (
        UniqueConstraint("operator_id", "day", "channel", "office", "key"),
        Index("ix_operator_day_parameters_day", "day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    day: Mapped[date]
    channel: Mapped[str] = mapped_column(String(20))
    office: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(50))  # the parameter question's key
    total: Mapped[float] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)
