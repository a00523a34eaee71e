"""The web survey: a link per survey (`/r/<token>`), a phone-friendly page that runs the same
flow as the IVR and SMS through the pure engine, one-tap first answers, email invitations."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """The survey pages, and their step of the sweep: closing links past their expiry."""
    from gateway.dispatch import add_sweep_step
    from gateway.websurvey import views
    from gateway.websurvey.service import expire_web_surveys

    app.register_blueprint(views.bp)
    add_sweep_step(app, expire_web_surveys)
