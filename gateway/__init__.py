"""survey-gateway: post-contact satisfaction surveys over IVR and SMS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from gateway.config import load_settings
from gateway.db import Database
from gateway.flows import Flows
from gateway.flows import init_app as hold_flows


def create_app(
    test_config: Mapping[str, Any] | None = None, *, flows: Flows | None = None
) -> Flask:
    """The Flask app: configuration, then each subsystem's init_app, then blueprints.

    `flows` replaces the flows of FLOWS_DIR (a test's own, say); the app holds them.
    """
    import sms
    from audio import views as audio_views
    from gateway import (
        api,
        dashboard,
        health,
        logs,
        monitoring,
        reports,
        security,
        tasking,
        voice,
        webhooks,
        websurvey,
    )

    settings = load_settings(overrides=test_config)
    app = Flask(__name__)
    app.config["SETTINGS"] = settings
    https = settings.public_base_url.startswith("https://")
    app.config.update(
        SECRET_KEY=settings.session_secret(),
        # Behind https the sign-in cookie is `__Host-`: the browser keeps it only if it is
        # Secure, for the whole site and no other domain, so no sibling subdomain can set it.
        SESSION_COOKIE_NAME="__Host-session" if https else "session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
    )
    logs.configure_logging(settings.log_level)
    security.init_app(app, settings.max_content_length)  # before blueprints: bounded routes

    Database().init_app(app)
    hold_flows(app, flows)  # a broken flow stops start-up here, never a caller mid-call
    tasking.celery_init_app(app)

    app.register_blueprint(health.bp)
    monitoring.init_app(app)  # /metrics, and every request's latency
    # The channels: their webhooks and pages, and their steps of the sweep, in this order.
    voice.init_app(app)
    app.register_blueprint(audio_views.bp)
    sms.init_app(app)
    dashboard.init_app(app)  # its pages, translations, error pages, and `/`
    websurvey.init_app(app)
    api.init_app(app)
    reports.init_app(app)  # the rollup follows every write, in local days; the reports' API
    webhooks.init_app(app)  # events go to the outbox in the transaction that made them

    if settings.insecure_skip_twilio_signature:
        app.logger.warning(
            "INSECURE_SKIP_TWILIO_SIGNATURE is on: webhooks are accepted unsigned. "
            "Development only."
        )
    return app
