"""GET /openapi.json: generated from the route declarations, valid OpenAPI 3.1, complete."""

import ast
from pathlib import Path

import msgspec
from openapi_spec_validator import validate

from chalicelib.api.routing import ROUTES

BLUEPRINTS = Path(__file__).resolve().parents[2] / "chalicelib" / "api"


def test_the_document_is_valid_openapi_31_and_open_to_everyone(auth_required):
    response = auth_required.http.get("/openapi.json")
    assert response.status_code == 200
    document = response.json_body
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_declared_route_is_described_with_its_parameters_body_and_security(client):
    document = client.http.get("/openapi.json").json_body
    operation_ids = []
    for doc in ROUTES:
        operation = document["paths"][doc.path][doc.method.lower()]
        operation_ids.append(operation["operationId"])
        parameters = {(p["in"], p["name"]) for p in operation.get("parameters", [])}
        assert {("path", name) for name in doc.path_params} <= parameters, doc.path
        if doc.query is not None:
            assert {("query", f.encode_name) for f in msgspec.structs.fields(doc.query)} <= parameters, doc.path
        else:
            assert not any(where == "query" for where, _ in parameters)
        if doc.body is not None:
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[-1].endswith(doc.body.__name__)
            assert document["components"]["schemas"][ref.rsplit("/", 1)[-1]]["additionalProperties"] is False
        assert ("security" in operation and operation["security"] == []) == (not doc.auth), doc.path
        assert "401" in operation["responses"] or not doc.auth
    assert len(operation_ids) == len(set(operation_ids))
    assert set(document["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyAuth"}
    assert document["components"]["securitySchemes"]["apiKeyAuth"]["name"] == "X-API-Key"
    upload = document["paths"]["/api/upload"]["post"]["requestBody"]["content"]
    assert upload["multipart/form-data"]["schema"]["required"] == ["file"]


def test_only_the_http_edge_reads_query_parameters():
    """A view reads its query through its declared `query=` struct, so the document and the checks cover it."""
    readers = []
    paths = sorted(BLUEPRINTS.glob("*.py"))
    assert len(paths) > 5
    for path in paths:
        if path.name == "routing.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("query_params", "uri_params"):
                readers.append(f"{path.name}:{node.lineno}")
    assert readers == []
