"""Scores and operator ratings: figures from raw answers, the daily rollup, reports, exports."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """The rollup kept on the app's sessions, and the reports' API (after `gateway.api`)."""
    from gateway.reports import rollup, views

    rollup.init_app(app)  # the reports' rollup follows every write, in local days
    api = app.extensions["api"]
    for blueprint in (views.bp, views.surveys_bp, views.customers_bp):
        api.register_blueprint(blueprint)
