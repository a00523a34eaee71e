"""Celery tasks of the IVR: outbound survey calls."""
