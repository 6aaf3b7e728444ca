"""The OpenAPI document covers every API route, and real answers fit its schemas."""

from __future__ import annotations

import json
import re

import requests_mock

from connect_service import schemas
from tests.conftest import same_origin
from tests.meta_mock import MetaMock, page
from tests.test_connect_flow import callback, start
from tests.test_schedule_api import body as schedule_body


def test_every_api_route_is_documented(app, anon_client):
    spec = anon_client.get("/api/meta/openapi.json").json
    assert spec["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops if method != "parameters"}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/meta/") and rule.endpoint != "openapi.openapi":
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routed |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == routed


def test_every_reference_resolves(anon_client):
    spec = anon_client.get("/api/meta/openapi.json").json
    refs = set(re.findall(r'"\$ref": "#/components/schemas/(\w+)"', json.dumps(spec)))
    assert refs and refs <= set(spec["components"]["schemas"])


def test_real_answers_fit_the_documented_schemas(client):
    with requests_mock.Mocker() as m:
        meta = MetaMock(m, pages=[page(1), page(2)])
        selection = callback(client, start(client), meta.code).json
        assert schemas.SelectionOut().validate(selection) == {}
        assert schemas.PagesOut().validate(client.get("/api/meta/pages").json) == {}
        chosen = client.post("/api/meta/select-page", json={"page_id": meta.pages[0].id}, headers=same_origin())
        assert schemas.ConnectedOut().validate(chosen.json) == {}
        assert schemas.StatusOut().validate(client.get("/api/meta/status").json) == {}
        assert schemas.ConnectOut().validate(client.get("/api/meta/connect").json) == {}
        created = client.post("/api/meta/schedule", json=schedule_body(), headers=same_origin()).json
        assert schemas.ScheduleOut().validate(created) == {}
        assert schemas.PostOut().validate(client.get(f"/api/meta/schedule/{created['job_id']}").json) == {}
        assert schemas.PostListOut().validate(client.get("/api/meta/schedule").json) == {}
        cancelled = client.delete(f"/api/meta/schedule/{created['job_id']}", headers=same_origin()).json
        assert schemas.CancelOut().validate(cancelled) == {}
        error = client.post("/api/meta/schedule", json={"caption": 1}, headers=same_origin()).json
        assert schemas.ErrorOut().validate(error) == {}
        m.delete(requests_mock.ANY, json={"success": True})
        assert schemas.DisconnectOut().validate(client.post("/api/meta/disconnect", headers=same_origin()).json) == {}


def test_a_method_a_path_does_not_list_answers_405_with_allow_in_the_error_shape(anon_client):
    response = anon_client.put("/api/meta/schedule")
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["Allow"].split(",")} >= {"GET", "POST"}
    assert "PUT" not in response.headers["Allow"]
    assert schemas.ErrorOut().validate(response.json) == {} and response.json["error_code"] == "bad_request"
    documented = anon_client.get("/api/meta/openapi.json").json["components"]["responses"]["MethodNotAllowed"]
    assert documented["headers"]["Allow"]["required"] is True


def test_parameters_carry_their_real_bounds(anon_client):
    spec = anon_client.get("/api/meta/openapi.json").json
    listing = {p["name"]: p["schema"] for p in spec["paths"]["/api/meta/schedule"]["get"]["parameters"]}
    assert listing["limit"] == {"type": "integer", "default": 20, "minimum": 1, "maximum": 100}
    assert None not in listing["status"]["enum"] and "nullable" not in listing["status"]
    key = spec["paths"]["/api/meta/schedule"]["post"]["parameters"][0]
    assert key["name"] == "Idempotency-Key" and key["schema"]["maxLength"] == 255
    body = spec["components"]["schemas"]["ScheduleBody"]["properties"]
    assert body["caption"]["maxLength"] == 2200 and body["targets"]["uniqueItems"] is True


def test_statuses_the_app_answers_are_documented(anon_client):
    paths = anon_client.get("/api/meta/openapi.json").json["paths"]
    assert {"200", "302", "401", "403", "422"} <= set(paths["/api/meta/connect"]["get"]["responses"])
    assert {"302", "400", "409", "429", "502"} <= set(paths["/api/meta/callback"]["get"]["responses"])
    assert {"400", "413", "415", "422"} <= set(paths["/api/meta/schedule"]["post"]["responses"])
    assert "403" in paths["/api/meta/schedule/{job_id}"]["delete"]["responses"]  # the scheduler may not cancel
    form = paths["/api/meta/deauthorize"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in form


def test_a_created_post_links_to_reading_and_cancelling_it(anon_client):
    spec = anon_client.get("/api/meta/openapi.json").json
    operation_ids = [op["operationId"] for ops in spec["paths"].values() for m, op in ops.items() if m != "parameters"]
    assert len(operation_ids) == len(set(operation_ids))
    links = spec["paths"]["/api/meta/schedule"]["post"]["responses"]["200"]["links"]
    assert {link["operationId"] for link in links.values()} == {"getPost", "cancelPost"}
    assert all(link["operationId"] in operation_ids for link in links.values())
