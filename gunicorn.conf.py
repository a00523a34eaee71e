"""gunicorn's settings, read from the working directory (`gunicorn wsgi:app`): the gateway's
own, in gateway/gunicorn_config.py."""

from gateway.gunicorn_config import child_exit, control_socket_disable

__all__ = ["child_exit", "control_socket_disable"]
