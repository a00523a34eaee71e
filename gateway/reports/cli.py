"""Command-line commands of the reports, added to `survey-gateway surveys` by gateway.cli."""

from __future__ import annotations

from datetime import date, datetime

import click

_DAY = click.DateTime(["%Y-%m-%d"])


def _period(start: datetime | None, end: datetime | None) -> tuple[date, date]:
    if start is None or end is None:
        raise click.UsageError("give --from and --to (local days in REPORT_TIMEZONE)")
    if end < start:
        raise click.BadParameter("--to is before --from")
    return start.date(), end.date()


def register(main: click.Group) -> None:
    """Add the reports' commands to the groups of `main`."""
    surveys = main.commands["surveys"]
    if not isinstance(surveys, click.Group):
        raise TypeError("'surveys' must be a command group")

    @surveys.command("rebuild-scores")
    @click.option("--from", "start", type=_DAY, help="first day, in REPORT_TIMEZONE")
    @click.option("--to", "end", type=_DAY, help="last day, inclusive")
    @click.option("--all", "everything", is_flag=True, help="every day, in REPORT_TIMEZONE")
    def rebuild_scores(start: datetime | None, end: datetime | None, everything: bool) -> None:
        """Recompute the reports' rollup from the raw rows, freezing the score of any ended
        survey that has none (surveys that ended before scores were frozen).

        Needed after changing REPORT_TIMEZONE (then with --all), or to repair what
        `verify-scores` found. A flow's new weights are applied by `rescore`, not here.
        """
        from gateway.cli_context import app_session
        from gateway.reports.rollup import built_in, rebuild, rebuild_all

        with app_session() as (app, session):
            zone = app.config["SETTINGS"].report_zone
            if everything:
                written = rebuild_all(session, zone)
                click.echo(f"rebuilt the whole rollup in {zone.key} days: {written} buckets")
                return
            first, last = _period(start, end)
            built = built_in(session)
            if built != zone.key:
                raise click.ClickException(
                    f"the rollup was built in {built or 'no'} time zone days, REPORT_TIMEZONE "
                    f"is {zone.key}: rebuild it all with --all"
                )
            written = rebuild(session, first, last, zone)
        click.echo(f"rebuilt {written} buckets from {first} to {last} ({zone.key} days)")

    @surveys.command("verify-scores")
    @click.option("--from", "start", type=_DAY, required=True, help="first day")
    @click.option("--to", "end", type=_DAY, required=True, help="last day, inclusive")
    def verify_scores(start: datetime, end: datetime) -> None:
        """Compare the rollup and the frozen scores of these days with a recomputation from the
        raw rows; print every difference and exit 1 if there is any."""
        from gateway.cli_context import app_session
        from gateway.reports.rollup import built_in, verify

        first, last = _period(start, end)
        with app_session() as (app, session):
            zone = app.config["SETTINGS"].report_zone
            built = built_in(session)
            differences = [str(d) for d in verify(session, first, last, zone)]
            session.rollback()  # read only
        if built != zone.key:
            differences.insert(
                0,
                f"the rollup was built in {built or 'no'} time zone days, REPORT_TIMEZONE is "
                f"{zone.key}",
            )
        for line in differences:
            click.echo(line)
        if differences:
            click.echo(
                f"{len(differences)} differences; repair with `survey-gateway surveys "
                f"rebuild-scores --from {first} --to {last}`",
                err=True,
            )
            raise SystemExit(1)
        click.echo(f"the rollup from {first} to {last} matches the raw rows")

    @surveys.command("rescore")
    @click.option("--from", "start", type=_DAY, required=True, help="first day")
    @click.option("--to", "end", type=_DAY, required=True, help="last day, inclusive")
    @click.option("--flow", required=True, help="the flow whose current weights to apply")
    def rescore(start: datetime, end: datetime, flow: str) -> None:
        """Score again, with the flow's current weights, the ended surveys of this flow and
        these days: a deliberate change of past figures (otherwise new weights count for
        surveys that end after the change only). Audited."""
        from gateway.cli_context import app_session
        from gateway.db import utcnow
        from gateway.reports.service import ReportError, rescore_surveys

        first, last = _period(start, end)
        with app_session() as (app, session):
            try:
                count = rescore_surveys(
                    session, flow, first, last, app.config["SETTINGS"].report_zone, utcnow()
                )
            except ReportError as exc:
                raise click.ClickException(str(exc)) from exc
        click.echo(f"rescored {count} surveys of flow {flow} from {first} to {last}")
