"""The published OpenAPI document is valid and describes every API endpoint."""

from __future__ import annotations

from openapi_spec_validator import validate


def test_openapi_document_is_valid_and_lists_every_api_endpoint(app, client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json
    validate(document)

    served = {
        rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/")
    }
    documented = set(document["paths"])
    normalised = {p.split("{")[0] for p in documented}
    for path in served:
        assert path.split("{")[0] in normalised, f"{path} is served but not documented"
    assert "/api/v1/interactions" in documented


def test_openapi_document_requires_a_bearer_key(client):
    document = client.get("/api/openapi.json").json
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert {"bearerAuth": []} in document["security"]


def test_request_schema_in_the_document_is_the_one_that_validates(client, auth):
    document = client.get("/api/openapi.json").json
    post = document["paths"]["/api/v1/interactions"]["post"]
    ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert set(schema["required"]) == {"external_id", "channel", "ended_at", "operator", "customer"}
    response = client.post("/api/v1/interactions", json={}, headers=auth)
    assert {e["field"] for e in response.json["errors"]} == set(schema["required"])
