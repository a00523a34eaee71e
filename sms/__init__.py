"""SMS surveys: sending, the reply conversation, keywords and delivery status."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """The SMS webhooks, and SMS's steps of the sweep: asking the provider about messages of
    unknown outcome, then closing surveys nobody answered (sms.sweep)."""
    from gateway.dispatch import RECONCILE_SMS_TASK, add_sweep_step
    from sms import views
    from sms.sweep import claim_possibly_sent, expire_sms_surveys

    app.register_blueprint(views.bp)
    add_sweep_step(app, claim_possibly_sent, hand_to=RECONCILE_SMS_TASK)
    add_sweep_step(app, expire_sms_surveys)
