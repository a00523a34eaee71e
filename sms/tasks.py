"""Celery tasks of the SMS channel."""
