"""The OpenAPI document covers every API route, says who may call each and what it answers,
and real answers fit its schemas."""

from __future__ import annotations

import json
import re

import pytest
import requests_mock
from sqlalchemy import update

from connect_service import openapi, schemas
from connect_service.responses import dump, response_schemas
from shared.models import SocialConnection
from tests.conftest import SCHEDULER_TOKEN, same_origin
from tests.factories import make_connection, make_post
from tests.meta_mock import MetaMock, page
from tests.test_connect_flow import callback, start
from tests.test_meta_callbacks import good
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


def documented_answer(spec: dict, path: str, method: str) -> list[str]:
    """The schema name(s) of an operation's documented 200 JSON answer (several: oneOf)."""
    schema = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
    refs = schema.get("oneOf", [schema])
    return [ref["$ref"].removeprefix("#/components/schemas/") for ref in refs]


def fits(spec: dict, path: str, method: str, response) -> bool:
    """The answer is 200 JSON and loads, with no unknown or missing key, by a documented schema."""
    assert response.status_code == 200, response.json
    names = documented_answer(spec, path, method)
    return any(openapi.SCHEMAS[name]().validate(response.json) == {} for name in names)


def test_real_answers_fit_the_documented_schemas(client, anon_client, db_session):
    spec = anon_client.get("/api/meta/openapi.json").json
    assert fits(spec, "/api/meta/status", "get", client.get("/api/meta/status"))  # not connected
    with requests_mock.Mocker() as m:
        meta = MetaMock(m, pages=[page(1), page(2)])
        assert fits(spec, "/api/meta/connect", "get", client.get("/api/meta/connect"))
        assert fits(spec, "/api/meta/callback", "get", callback(client, start(client), meta.code))
        assert fits(spec, "/api/meta/pages", "get", client.get("/api/meta/pages"))
        chosen = client.post("/api/meta/select-page", json={"page_id": meta.pages[0].id}, headers=same_origin())
        assert fits(spec, "/api/meta/select-page", "post", chosen)
        assert fits(spec, "/api/meta/status", "get", client.get("/api/meta/status"))
        created = client.post("/api/meta/schedule", json=schedule_body(), headers=same_origin())
        assert fits(spec, "/api/meta/schedule", "post", created)
        one = client.get(f"/api/meta/schedule/{created.json['job_id']}")
        assert fits(spec, "/api/meta/schedule/{job_id}", "get", one)
        assert fits(spec, "/api/meta/schedule", "get", client.get("/api/meta/schedule"))
        cancelled = client.delete(f"/api/meta/schedule/{created.json['job_id']}", headers=same_origin())
        assert fits(spec, "/api/meta/schedule/{job_id}", "delete", cancelled)
        error = client.post("/api/meta/schedule", json={"caption": 1}, headers=same_origin()).json
        assert schemas.ErrorOut().validate(error) == {} and set(error["fields"]) == {"caption", "publish_at"}
        db_session.execute(update(SocialConnection).values(status="needs_reauth"))
        db_session.commit()
        assert fits(spec, "/api/meta/status", "get", client.get("/api/meta/status"))
        m.delete(requests_mock.ANY, json={"success": True})
        assert fits(spec, "/api/meta/disconnect", "post", client.post("/api/meta/disconnect", headers=same_origin()))
    make_connection(db_session, "user-9", page_id="104000000000009")
    assert fits(
        spec,
        "/api/meta/deauthorize",
        "post",
        anon_client.post("/api/meta/deauthorize", data={"signed_request": good()}),
    )
    deletion = anon_client.post("/api/meta/data-deletion", data={"signed_request": good()})
    assert fits(spec, "/api/meta/data-deletion", "post", deletion)
    status = anon_client.get(f"/api/meta/data-deletion/{deletion.json['confirmation_code']}")
    assert fits(spec, "/api/meta/data-deletion/{code}", "get", status)


def routed_operations(app) -> dict[tuple[str, str], object]:
    """(OpenAPI path, method) -> view function, for every API route but the document itself."""
    routed = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/meta/") and rule.endpoint != "openapi.openapi":
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routed[(openapi.openapi_path(rule.rule), method.lower())] = app.view_functions[rule.endpoint]
    return routed


def test_each_documented_answer_is_the_schema_its_view_dumps_with(app, anon_client):
    spec = anon_client.get("/api/meta/openapi.json").json
    for (path, method), view in routed_operations(app).items():
        marked = [schema.__name__ for schema in response_schemas(view)]
        assert marked, f"{method} {path} does not say what it answers (@responds)"
        documented = [openapi.SCHEMAS[name].__name__ for name in documented_answer(spec, path, method)]
        assert documented == marked, (method, path)


def test_a_view_cannot_answer_with_a_schema_it_does_not_document(app):
    with app.test_request_context("/api/meta/status"):
        assert dump(schemas.StatusOut, schemas.NOT_CONNECTED) == {"status": "not_connected"}
        with pytest.raises(LookupError):
            dump(schemas.PostOut, {})


# Who may call: the document's security schemes for each caller the code lets in.
SECURITY = {
    "anyone": set(),
    "seller": {"sessionCookie", "sessionBearer"},
    "seller_or_scheduler": {"sessionCookie", "sessionBearer", "schedulerBearer"},
}


def who_may_call(anon_client, path: str, method: str) -> str:
    """What the code decides, by asking it: no credentials, then the scheduler's bearer token."""
    url = re.sub(r"\{\w+\}", "x", path)
    if anon_client.open(url, method=method.upper()).status_code != 401:
        return "anyone"
    scheduler = anon_client.open(url, method=method.upper(), headers={"Authorization": f"Bearer {SCHEDULER_TOKEN}"})
    refused = scheduler.status_code == 403 and scheduler.json["error_code"] == "forbidden"
    return "seller" if refused else "seller_or_scheduler"


def test_each_operation_documents_who_may_call_it(app, anon_client):
    spec = anon_client.get("/api/meta/openapi.json").json
    decided = {operation: who_may_call(anon_client, *operation) for operation in routed_operations(app)}
    for (path, method), who in decided.items():
        schemes = {name for requirement in spec["paths"][path][method]["security"] for name in requirement}
        assert schemes == SECURITY[who], (method, path, who)
    # The drift issue 8 found: the scheduler may read posts but never cancel one.
    assert decided[("/api/meta/schedule/{job_id}", "delete")] == "seller"
    assert decided[("/api/meta/schedule/{job_id}", "get")] == "seller_or_scheduler"
    assert decided[("/api/meta/deauthorize", "post")] == "anyone"


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


def test_the_content_v2_body_fields_carry_their_real_bounds(anon_client):
    components = anon_client.get("/api/meta/openapi.json").json["components"]["schemas"]
    body = components["ScheduleBody"]["properties"]
    assert body["format"]["enum"] == ["post", "reel", "story"] and body["format"]["default"] == "post"
    assert (body["media"]["minItems"], body["media"]["maxItems"]) == (1, 10)
    assert body["media"]["items"] == {"$ref": "#/components/schemas/MediaItemBody"}
    assert (body["first_comment"]["minLength"], body["first_comment"]["maxLength"]) == (1, 2200)
    assert body["cover_url"]["format"] == "uri" and body["cover_url"]["maxLength"] == 2048
    item = components["MediaItemBody"]
    assert set(item["required"]) == {"url", "type"} and item["additionalProperties"] is False
    assert item["properties"]["url"]["maxLength"] == 2048 and item["properties"]["url"]["format"] == "uri"
    assert item["properties"]["type"]["enum"] == ["image", "video"]
    assert item["properties"]["alt_text"]["maxLength"] == 1000 and item["properties"]["alt_text"]["nullable"]


def test_a_content_v2_post_fits_the_documented_post_schema(client, anon_client, db_session):
    spec = anon_client.get("/api/meta/openapi.json").json
    make_connection(db_session)
    media = [
        {"url": "https://cdn.example.com/1.jpg", "type": "image", "alt_text": "Batik"},
        {"url": "https://cdn.example.com/2.mp4", "type": "video"},
    ]
    created = client.post(
        "/api/meta/schedule",
        json=schedule_body(media_url=None, media=media, targets=["instagram"], first_comment="#batik"),
        headers=same_origin(),
    )
    assert fits(spec, "/api/meta/schedule", "post", created)
    one = client.get(f"/api/meta/schedule/{created.json['job_id']}")
    assert fits(spec, "/api/meta/schedule/{job_id}", "get", one)
    assert one.json["targets"]["instagram"]["comment"] == {"status": "pending", "comment_id": None, "error_code": None}
    documented = spec["components"]["schemas"]
    assert set(one.json) == set(documented["PostOut"]["properties"])
    assert set(one.json["targets"]) == set(documented["TargetsOut"]["properties"]) == {"facebook", "instagram"}
    assert set(one.json["targets"]["instagram"]) == set(documented["InstagramTargetOut"]["properties"])


def test_edit_and_retry_answers_fit_the_documented_post_schema(client, anon_client, db_session):
    spec = anon_client.get("/api/meta/openapi.json").json
    conn = make_connection(db_session)
    created = client.post("/api/meta/schedule", json=schedule_body(), headers=same_origin())
    job_id = created.json["job_id"]
    edited = client.patch(f"/api/meta/schedule/{job_id}", json={"caption": "Baru"}, headers=same_origin())
    assert fits(spec, "/api/meta/schedule/{job_id}", "patch", edited)
    failed = make_post(
        db_session, conn, status="failed", facebook={"status": "failed", "error_code": "meta_unavailable"}
    )
    retried = client.post(f"/api/meta/schedule/{failed.id}/retry", headers=same_origin())
    assert fits(spec, "/api/meta/schedule/{job_id}/retry", "post", retried)
    operations = (
        spec["paths"]["/api/meta/schedule/{job_id}"]["patch"],
        spec["paths"]["/api/meta/schedule/{job_id}/retry"]["post"],
    )
    for operation in operations:
        assert {"404", "409", "415", "422"} <= set(operation["responses"])
    assert "application/merge-patch+json" in operations[0]["requestBody"]["content"]
    assert operations[1]["requestBody"]["required"] is False
