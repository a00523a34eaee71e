"""The integration API: JSON, bearer keys, problem+json errors, OpenAPI at /api/openapi.json."""

from __future__ import annotations

import http
from typing import Any

from flask import Flask
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from marshmallow import INCLUDE, Schema, fields

from gateway import security
from gateway.api import errors


class FieldErrorSchema(Schema):
    field = fields.String()
    message = fields.String()


class ProblemSchema(Schema):
    """RFC 9457 problem details, as every error of the API is written (gateway.api.errors)."""

    class Meta:
        unknown = INCLUDE  # a problem may carry more members (e.g. a conflict's differences)

    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    errors = fields.List(fields.Nested(FieldErrorSchema))


class GatewayApi(Api):
    """flask-smorest's Api with errors documented as they are sent: problem+json.

    A blueprint's routes are registered at once, its documentation when the spec is first
    read (`/api/openapi.json`): resolving every schema of the document is most of the cost of
    building an app, and serving requests never needs it.
    """

    ERROR_SCHEMA = ProblemSchema

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._spec: Any = None
        self._responses_documented = False
        self._undocumented: list[tuple[Any, str, Any]] = []
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def spec(self) -> Any:
        """The OpenAPI spec, with every blueprint registered so far documented in it (and the
        error responses, documented with the first blueprint)."""
        if self._undocumented and not self._responses_documented:
            self._responses_documented = True
            self._document_responses()
        while self._undocumented:
            blueprint, name, parameters = self._undocumented.pop(0)
            blueprint.register_views_in_doc(
                self, self._app, self._spec, name=name, parameters=parameters
            )
            self._spec.tag({"name": name, "description": blueprint.description})
        return self._spec

    @spec.setter
    def spec(self, value: Any) -> None:
        self._spec = value

    def register_blueprint(self, blp: Any, *, parameters: Any = None, **options: Any) -> None:
        """As flask-smorest's, with the blueprint's documentation left for the spec's first read."""
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        self._undocumented.append((blp, name, parameters))

    def _register_responses(self) -> None:
        """Left for the spec's first read (`_document_responses`)."""

    def _document_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self._spec, errors.PROBLEM_TYPE)
            self._spec.components.response(status.name, response, lazy=True)
        default: dict[str, Any] = {"description": "an error", "schema": self.ERROR_SCHEMA}
        prepare_response(default, self._spec, errors.PROBLEM_TYPE)
        self._spec.components.response("DEFAULT_ERROR", default, lazy=True)


def init_app(app: Flask) -> None:
    from gateway.api import customers, incidents, interactions, operators, resurvey, surveys

    app.config.update(
        API_TITLE="survey-gateway",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {
                "description": "Report contacts, read their survey scores and operator ratings."
            },
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearerAuth": []}],
        },
    )
    # One Api per app: flask-smorest keeps the spec on it, and tests build several apps.
    api = GatewayApi(app)
    api.register_converter(security.BoundedInt, security.bounded_int_schema)
    api.register_converter(security.BoundedString, security.bounded_string_schema)
    api.register_blueprint(interactions.bp)
    api.register_blueprint(incidents.bp)
    api.register_blueprint(resurvey.bp)
    api.register_blueprint(customers.bp)
    api.register_blueprint(operators.bp)
    api.register_blueprint(surveys.bp)
    app.extensions["api"] = api
    # After flask-smorest's own handlers, so every error leaves as problem+json.
    errors.init_app(app)
