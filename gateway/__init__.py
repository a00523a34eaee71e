"""survey-gateway: post-contact satisfaction surveys over IVR and SMS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from gateway.config import load_settings
from gateway.db import Database


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """The Flask app: configuration, then each subsystem's init_app, then blueprints."""
    from audio import views as audio_views
    from gateway import api, dashboard, health, logs, monitoring, security, tasking
    from gateway.reports import rollup as reports_rollup
    from gateway.voice import views as voice_views
    from gateway.webhooks import events as webhook_events
    from gateway.websurvey import views as websurvey_views
    from ivr_flows import default_flows
    from sms import views as sms_views

    settings = load_settings(overrides=test_config)
    app = Flask(__name__)
    app.config["SETTINGS"] = settings
    app.config.update(
        SECRET_KEY=settings.session_secret(),
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_base_url.startswith("https://"),
    )
    logs.configure_logging(settings.log_level)
    security.init_app(app, settings.max_content_length)  # before blueprints: bounded routes

    default_flows()  # an invalid flow stops start-up here, never a caller mid-call
    Database().init_app(app)
    reports_rollup.init_app(app)  # the reports' rollup follows every write, in local days
    webhook_events.install()  # events go to the outbox in the transaction that made them
    tasking.celery_init_app(app)

    app.register_blueprint(health.bp)
    monitoring.init_app(app)  # /metrics, and every request's latency
    app.register_blueprint(voice_views.bp)
    app.register_blueprint(audio_views.bp)
    app.register_blueprint(sms_views.bp)
    dashboard.init_app(app)  # its pages, translations, error pages, and `/`
    app.register_blueprint(websurvey_views.bp)
    api.init_app(app)

    if settings.insecure_skip_twilio_signature:
        app.logger.warning(
            "INSECURE_SKIP_TWILIO_SIGNATURE is on: webhooks are accepted unsigned. "
            "Development only."
        )
    return app
