"""Celery bound to the Flask app: every task runs inside an app context.

Tasks are sent only after the commit that made their rows (`send_after_commit`), so a
worker never looks for a row that is not there yet, or that was rolled back.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Celery, Task
from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session

from gateway.logs import ALERTS_TASK, PRIVACY_TASK, SMS_REPLIES_TASK, SWEEP_TASK, WEBHOOKS_TASK

logger = logging.getLogger(__name__)

BEAT_DISPATCH = SWEEP_TASK
BEAT_WEBHOOKS = WEBHOOKS_TASK
BEAT_PRIVACY = PRIVACY_TASK
BEAT_ALERTS = ALERTS_TASK
BEAT_SMS_REPLIES = SMS_REPLIES_TASK
PRIVACY_SWEEP_INTERVAL = timedelta(minutes=5)
# Sweeps have a queue of their own (served by the worker that runs beat), so a backlog of
# sends can never starve them.
SWEEP_QUEUE = "sweeps"
SEND_QUEUE = "celery"  # Celery's default name: messages queued by an earlier release still run
# Webhook deliveries and the privacy sweep wait on other parties' servers (a receiver that
# takes its whole timeout, Twilio's recordings API): a queue and a worker of their own, so
# neither a backlog of sends delays them nor they the dispatch sweeps.
BACKGROUND_QUEUE = "background"


def queue_names(prefix: str) -> tuple[str, str, str]:
    """The send, sweep and background queues, under TASK_QUEUE_PREFIX (several gateways on
    one Redis)."""
    return prefix + SEND_QUEUE, prefix + SWEEP_QUEUE, prefix + BACKGROUND_QUEUE


def celery_init_app(app: Flask) -> Celery:
    settings = app.config["SETTINGS"]

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    broker_dir = settings.var_dir / "broker"
    send_queue, sweep_queue, background_queue = queue_names(settings.task_queue_prefix)
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "task_default_queue": send_queue,
        "task_routes": {
            BEAT_DISPATCH: {"queue": sweep_queue},
            BEAT_WEBHOOKS: {"queue": background_queue},
            BEAT_PRIVACY: {"queue": background_queue},
            # Alerts talk to an SMTP server: off the sweep queue, like webhook deliveries.
            BEAT_ALERTS: {"queue": background_queue},
        },
        # A publish fails fast when the broker is down (not ~0.6 s of retries), so the sweep
        # gives the claimed surveys back at once instead of leaving them to their lease.
        "task_publish_retry": False,
        "broker_connection_timeout": 2,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        # The console SMS provider prints; what a task prints is information, not a warning.
        "worker_redirect_stdouts_level": "INFO",
        "beat_schedule": {
            "privacy-sweep": {
                "task": BEAT_PRIVACY,
                "schedule": PRIVACY_SWEEP_INTERVAL,
                "options": {"expires": PRIVACY_SWEEP_INTERVAL.total_seconds()},
            },
            "dispatch-due-surveys": {
                "task": BEAT_DISPATCH,
                "schedule": timedelta(seconds=settings.dispatch_interval_seconds),
                # A sweep older than its interval is pointless: the next one is coming.
                "options": {"expires": settings.dispatch_interval_seconds},
            },
            "send-incident-alerts": {
                "task": BEAT_ALERTS,
                "schedule": timedelta(seconds=settings.dispatch_interval_seconds),
                "options": {"expires": settings.dispatch_interval_seconds},
            },
            "deliver-webhooks": {
                "task": BEAT_WEBHOOKS,
                "schedule": timedelta(seconds=settings.dispatch_interval_seconds),
                "options": {"expires": settings.dispatch_interval_seconds},
            },
        },
        "beat_schedule_filename": str(settings.var_dir / "celerybeat-schedule"),
        "imports": (
            "gateway.tasks",
            "sms.tasks",
            "gateway.voice.tasks",
            "gateway.webhooks.tasks",
            "gateway.websurvey.tasks",
        ),
    }
    if settings.sms_provider_name == "smsc":
        config["beat_schedule"]["send-pending-sms-replies"] = {
            "task": BEAT_SMS_REPLIES,
            "schedule": timedelta(seconds=settings.dispatch_interval_seconds),
            "options": {"expires": settings.dispatch_interval_seconds},
        }
    if not settings.redis_url:
        # Embedded mode: kombu's filesystem transport needs no server; one machine only. Ours
        # writes each file whole before a worker can see it (gateway/broker_files.py).
        for sub in ("queue", "processed", "control"):
            (broker_dir / sub).mkdir(parents=True, exist_ok=True)
        config["broker_transport"] = "gateway.broker_files:Transport"
        config["broker_transport_options"] = {
            "data_folder_in": str(broker_dir / "queue"),
            "data_folder_out": str(broker_dir / "queue"),
            "processed_folder": str(broker_dir / "processed"),
            "control_folder": str(broker_dir / "control"),
            "store_processed": False,
        }
    else:
        config["broker_transport_options"] = {
            "visibility_timeout": 3600,
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
        }
    celery.config_from_object(config)
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


def publish_task(task_name: str, *args: Any) -> None:
    """Queue a task by name now (the caller has committed its rows); raises if the broker
    refuses it."""
    from flask import current_app

    celery: Celery = current_app.extensions["celery"]
    celery.send_task(task_name, args=list(args))


def send_after_commit(session: Session, task_name: str, *args: Any, **options: Any) -> None:
    """Queue a task by name once `session` commits; nothing is sent if it rolls back."""
    from flask import current_app

    celery: Celery = current_app.extensions["celery"]

    @event.listens_for(session, "after_commit", once=True)
    def _send(_session: Session) -> None:
        if event.contains(session, "after_rollback", _forget):
            event.remove(session, "after_rollback", _forget)
        try:
            celery.send_task(task_name, args=list(args), **options)
        except Exception:
            # The rows are committed; the next sweep of due surveys picks them up.
            logger.exception("could not queue %s; the next sweep will retry", task_name)

    @event.listens_for(session, "after_rollback", once=True)
    def _forget(_session: Session) -> None:
        if event.contains(session, "after_commit", _send):
            event.remove(session, "after_commit", _send)
