"""The IVR survey over Twilio Voice: webhooks, call-back surveys, status callbacks."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Voice's webhooks, and its step of the sweep: closing calls whose status never came."""
    from gateway.dispatch import add_sweep_step
    from gateway.voice import views
    from gateway.voice.status_callbacks import close_silent_calls

    app.register_blueprint(views.bp)
    add_sweep_step(app, close_silent_calls)
