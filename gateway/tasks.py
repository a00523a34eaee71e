"""Celery tasks of the gateway core: the sweep of due surveys."""
