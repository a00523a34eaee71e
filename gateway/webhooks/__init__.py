"""Outgoing webhooks: events written to an outbox in the transaction that caused them,
delivered signed to the subscribed URLs, retried, logged, re-deliverable.

See docs/webhooks.md for what receivers get and how they verify it.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Events written to the outbox on the app's sessions, and the subscriptions' API (after
    `gateway.api`)."""
    from gateway.webhooks import events, views

    events.init_app(app)  # events go to the outbox in the transaction that made them
    app.extensions["api"].register_blueprint(views.bp)
