"""Figures counted by the process that sees them, for `/metrics` (gateway.monitoring).

prometheus-client only, no Flask: the send services count here. Under gunicorn and Celery's
prefork pool, set PROMETHEUS_MULTIPROC_DIR (a folder shared by the processes of a machine,
emptied before they start; `make run` does both) and /metrics adds every process's figures.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SENDS = Counter(
    "survey_gateway_sends",
    "Provider requests sending a survey (first SMS or call), by outcome and error class",
    ["channel", "outcome", "error_class"],
)
REQUEST_SECONDS = Histogram(
    "survey_gateway_request_duration_seconds",
    "Time to answer an HTTP request (Twilio webhooks, the API), by route",
    ["route", "method"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def count_send(channel: str, outcome: str, error_class: str | None = None) -> None:
    """Count one provider request of a survey send; `error_class` None when it went out."""
    SENDS.labels(channel, outcome, error_class or "none").inc()
