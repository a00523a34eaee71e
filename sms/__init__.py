"""SMS surveys: sending, the reply conversation, keywords and delivery status."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """The SMS webhooks (the SMS steps of the sweep are the core's: gateway.dispatch)."""
    from sms import views

    app.register_blueprint(views.bp)
