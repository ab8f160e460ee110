"""The API contract: one error shape for every failure, the OpenAPI document, query budgets."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from carecard.members.models import Member
from tests.api.conftest import API, Pos, assert_error_shape, error_fields
from tests.factories import make_member, member_data

pytestmark = pytest.mark.django_db


def test_malformed_json_is_400_in_the_error_shape(pos: Pos):
    before = Member.objects.count()
    response = pos.client.post(
        f"{API}/members",
        b'{"name": "x", ',
        content_type="application/json",
        headers={"Authorization": f"Bearer {pos.token}"},
    )
    assert response.status_code == 400
    assert_error_shape(response.json(), "malformed_request")
    assert Member.objects.count() == before


@pytest.mark.parametrize("body", [[], "text", 42, None, [member_data()]])
def test_json_that_is_not_an_object_is_422(pos: Pos, body):
    before = Member.objects.count()
    response = pos.post("/members", json.dumps(body).encode())
    assert response.status_code == 422
    assert_error_shape(response.json(), "validation_error")
    assert Member.objects.count() == before


def test_empty_body_is_422(pos: Pos):
    response = pos.client.post(
        f"{API}/members",
        b"",
        content_type="application/json",
        headers={"Authorization": f"Bearer {pos.token}"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize("bad", ["a\x00b", "\ud800"])
def test_text_no_database_can_store_is_422(pos: Pos, bad):
    before = Member.objects.count()
    response = pos.post("/members", member_data(name=bad))
    assert response.status_code == 422
    assert list(error_fields(response.json())) == ["name"]
    assert Member.objects.count() == before


def test_nul_in_a_query_or_path_is_refused_cleanly(pos: Pos, store):
    response = pos.get("/members/lookup", {"q": "13912345678\x00"})
    assert response.status_code == 422
    assert error_fields(response.json()) == {"q": "value_error"}
    response = pos.get("/members/1%00")
    assert response.status_code == 404
    assert response.json()["code"] == "member_not_found"
    response = pos.post("/cards/V1%00/report-lost")
    assert response.status_code == 404
    assert response.json()["code"] == "card_not_found"


def test_unknown_path_is_404_in_the_error_shape(pos: Pos):
    response = pos.get("/no-such-endpoint")
    assert response.status_code == 404
    assert_error_shape(response.json(), "not_found")
    response = Client(enforce_csrf_checks=True).post(f"{API}/members/x/y/z", {})
    assert response.status_code == 404
    assert_error_shape(response.json(), "not_found")


def test_wrong_method_is_405_in_the_error_shape(pos: Pos):
    response = pos.client.delete(f"{API}/members", headers={"Authorization": f"Bearer {pos.token}"})
    assert response.status_code == 405
    assert_error_shape(response.json(), "method_not_allowed")
    assert "POST" in response["Allow"]


def test_an_unexpected_error_is_logged_and_answered_as_internal_error(
    pos: Pos, monkeypatch, caplog
):
    def boom(query: str, **kwargs):
        raise RuntimeError("selector exploded")

    monkeypatch.setattr("carecard.members.selectors.lookup_members", boom)
    response = pos.get("/members/lookup", {"q": "zsf"})
    assert response.status_code == 500
    body = response.json()
    assert_error_shape(body, "internal_error")
    assert "exploded" not in response.content.decode()  # no internals leak
    assert any("selector exploded" in (r.exc_text or "") for r in caplog.records)


# --- OpenAPI -------------------------------------------------------------------------------


def test_openapi_lists_the_member_endpoints_with_the_bearer_scheme(client: Client):
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    paths = doc["paths"]
    expected = {
        ("/api/v1/members/lookup", "get"),
        ("/api/v1/members", "post"),
        ("/api/v1/members/{member_no}", "get"),
        ("/api/v1/members/{member_no}", "patch"),
        ("/api/v1/members/{member_no}/health", "get"),
        ("/api/v1/members/{member_no}/consents", "post"),
        ("/api/v1/cards/{number}/report-lost", "post"),
        ("/api/v1/cards/{number}/replace", "post"),
    }
    listed = {(path, method) for path, ops in paths.items() for method in ops}
    assert expected <= listed
    schemes = doc["components"]["securitySchemes"]
    assert schemes["TerminalToken"]["type"] == "http"
    assert schemes["TerminalToken"]["scheme"] == "bearer"
    assert "revocable" in schemes["TerminalToken"]["description"]
    operation_ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    assert len(operation_ids) == len(set(operation_ids))
    assert paths["/api/v1/members/lookup"]["get"]["operationId"] == "member_lookup"
    for path, method in expected:
        op = paths[path][method]
        assert {"TerminalToken": []} in op["security"]
        assert op["summary"]
        assert any("\u4e00" <= ch <= "\u9fff" for ch in op["summary"])
        assert op["tags"][0] in {"members 会员", "cards 会员卡"}
    enrol = doc["components"]["schemas"]["MemberEnrolIn"]
    assert {"name", "phone", "consent_terms"} <= set(enrol["required"])


def test_docs_page_is_served_without_a_cdn(client: Client):
    response = client.get(f"{API}/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "openapi.json" in html
    assert "cdn." not in html


# --- query budgets (the lookup is the counter's hot path) -----------------------------------


def _warm(pos: Pos) -> None:
    # The first call of a minute also records last_used_at; budgets measure the steady state.
    assert pos.get("/members/lookup", {"q": "1"}).status_code == 200


def test_lookup_by_phone_query_budget(pos: Pos, store):
    make_member(store, phone="13912349901")
    _warm(pos)
    with CaptureQueriesContext(connection) as ctx:
        response = pos.get("/members/lookup", {"q": "13912349901"})
    assert response.status_code == 200
    assert response.json()["count"] == 1
    # 1 terminal by token hash, 1 members by phone.
    assert len(ctx.captured_queries) == 2, [q["sql"] for q in ctx.captured_queries]


def test_lookup_by_name_does_not_grow_with_results(pos: Pos, store, other_store):
    for i in range(15):
        make_member(store if i % 2 else other_store, name=f"孙{i:02d}", id_number="")
    _warm(pos)
    with CaptureQueriesContext(connection) as ctx:
        response = pos.get("/members/lookup", {"q": "孙"})
    assert response.json()["count"] == 15
    assert len(ctx.captured_queries) == 2, [q["sql"] for q in ctx.captured_queries]


def test_get_member_query_budget(pos: Pos, store):
    member = make_member(store, card_number="55550001", consent_marketing=True)
    pos.post("/cards/55550001/report-lost")
    pos.post("/cards/55550001/replace", {"reason": "lost"})
    _warm(pos)
    with CaptureQueriesContext(connection) as ctx:
        response = pos.get(f"/members/{member.member_no}")
    assert response.status_code == 200
    assert len(response.json()["cards"]) == 3
    # terminal, member + home store, cards, consents.
    assert len(ctx.captured_queries) == 4, [q["sql"] for q in ctx.captured_queries]
