"""Errors as RFC 9457 problem+json, with a message a person can act on."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException

PROBLEM_TYPE = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_TYPE)
    return response


def _flatten(messages: Any, prefix: str = "") -> list[dict[str, str]]:
    """webargs' nested {"field": {"sub": ["msg"]}} as [{"field": "field.sub", "message": ...}]."""
    if isinstance(messages, dict):
        errors: list[dict[str, str]] = []
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix and key != "_schema" else (prefix or str(key))
            errors.extend(_flatten(value, name))
        return errors
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [{"field": prefix, "message": m} for m in messages]
    if isinstance(messages, list):
        return [e for m in messages for e in _flatten(m, prefix)]
    return [{"field": prefix, "message": str(messages)}]


def flatten_errors(messages: Any) -> list[dict[str, str]]:
    """marshmallow's nested error messages as [{"field": "customer.phone", "message": ...}]."""
    return _flatten(messages)


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    if messages:
        # webargs puts errors under the location ("json", "query"); the field is what matters.
        located = [_flatten(v) for v in messages.values()] if isinstance(messages, dict) else []
        errors = [e for group in located for e in group]
        detail = "; ".join(
            (
                f"{e['field']}: {e['message']}"
                if e["field"] and e["field"] != "_schema"
                else e["message"]
            ).rstrip(".")
            for e in errors
        )
        return problem(status, "Invalid request", detail or "the request is invalid", errors=errors)
    detail = data.get("message") or error.description or error.name
    response = problem(status, error.name, detail)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="survey-gateway"'
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def handle_unexpected(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return handle_http_exception(error)
    from flask import current_app

    current_app.logger.exception("unhandled error")
    return problem(500, "Internal Server Error", "the gateway failed; the error is logged")


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
