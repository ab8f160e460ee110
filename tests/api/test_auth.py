"""Terminal-token authentication (A-3, G-6) and the console-session alternative."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import string
from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone

from carecard.chain import services as chain_services
from carecard.chain.models import PosTerminal
from carecard.core.roles import Role
from carecard.members.models import Member
from tests.api.conftest import API, Pos, assert_error_shape, make_pos
from tests.factories import make_member, make_staff, member_data

pytestmark = pytest.mark.django_db


def _lookup(client: Client, token: str | None, scheme: str = "Bearer"):
    headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
    return client.get(f"{API}/members/lookup", {"q": "张三"}, headers=headers)


def _assert_401(response) -> None:
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert_error_shape(response.json(), "unauthorized")


def test_valid_token_is_accepted_and_bound_to_its_store(pos: Pos, store):
    make_member(store, name="张三", phone="13912345678")
    response = pos.get("/members/lookup", {"q": "13912345678"})
    assert response.status_code == 200
    body = response.json()
    assert body["match"] == "phone"
    assert [r["phone"] for r in body["results"]] == ["13912345678"]  # own store: unmasked
    assert body["results"][0]["own_store"] is True


def test_token_is_stored_only_as_its_hash(pos: Pos):
    row = PosTerminal.objects.get(pk=pos.terminal.pk)
    assert row.token_hash == hashlib.sha256(pos.token.encode()).hexdigest()
    assert pos.token not in {row.token_hash, row.token_prefix}


@pytest.mark.parametrize(
    ("token", "scheme"),
    [
        (None, "Bearer"),
        ("", "Bearer"),
        ("cct_not-a-real-token", "Bearer"),
        ("garbage", "Bearer"),
        ("cct_" + "x" * 200, "Bearer"),
    ],
)
def test_missing_or_unknown_token_is_401(client: Client, pos: Pos, token, scheme):
    _assert_401(_lookup(client, token, scheme))


def test_right_token_with_wrong_scheme_is_401(client: Client, pos: Pos):
    _assert_401(_lookup(client, pos.token, scheme="Token"))


def test_expired_token_is_401(client: Client, store):
    terminal, token = chain_services.terminal_create(
        actor=None, store=store, code="POS-EXP", valid_days=1
    )
    assert _lookup(client, token).status_code == 200
    later = timezone.now() + dt.timedelta(days=1, minutes=1)
    with mock.patch("carecard.chain.services.timezone.now", return_value=later):
        _assert_401(_lookup(client, token))


def test_revoked_token_is_401(client: Client, pos: Pos):
    assert _lookup(client, pos.token).status_code == 200
    chain_services.terminal_revoke(actor=None, terminal=pos.terminal)
    _assert_401(_lookup(client, pos.token))


def test_rotated_away_token_is_401_and_the_new_one_works(client: Client, pos: Pos):
    new_token = chain_services.terminal_rotate_token(actor=None, terminal=pos.terminal)
    _assert_401(_lookup(client, pos.token))
    assert _lookup(client, new_token).status_code == 200


def test_bad_token_on_a_write_is_401_and_writes_nothing(client: Client, pos: Pos):
    before = Member.objects.count()
    response = client.post(
        f"{API}/members",
        member_data(),
        content_type="application/json",
        headers={"Authorization": "Bearer cct_wrong"},
    )
    _assert_401(response)
    assert Member.objects.count() == before


def test_every_member_endpoint_requires_auth(client: Client, store):
    member = make_member(store)
    number = "V" + member.member_no
    calls = [
        ("get", "/members/lookup?q=1234"),
        ("post", "/members"),
        ("get", f"/members/{member.member_no}"),
        ("patch", f"/members/{member.member_no}"),
        ("get", f"/members/{member.member_no}/health"),
        ("post", f"/members/{member.member_no}/consents"),
        ("post", f"/cards/{number}/report-lost"),
        ("post", f"/cards/{number}/replace"),
    ]
    for method, path in calls:
        response = getattr(client, method)(API + path, content_type="application/json")
        _assert_401(response)


def test_health_endpoint_needs_no_token(client: Client):
    response = client.get(f"{API}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# --- console session -------------------------------------------------------------------------


def test_logged_in_clerk_session_sees_own_store_unmasked(store, other_store):
    clerk = make_staff(Role.CLERK, store)
    own = make_member(store, phone="13912340001")
    other = make_member(other_store, phone="13912340002")
    client = Client()
    client.force_login(clerk)
    own_body = client.get(f"{API}/members/{own.member_no}").json()
    other_body = client.get(f"{API}/members/{other.member_no}").json()
    assert own_body["phone"] == "13912340001"
    assert other_body["phone"] == "139****0002"
    response = client.get(f"{API}/members/{other.member_no}/health")
    assert response.status_code == 403
    assert_error_shape(response.json(), "permission_denied")


def test_session_write_needs_the_csrf_token(store):
    clerk = make_staff(Role.CLERK, store)
    client = Client(enforce_csrf_checks=True)
    client.force_login(clerk)
    before = Member.objects.count()
    response = client.post(f"{API}/members", member_data(), content_type="application/json")
    assert response.status_code == 403
    assert_error_shape(response.json(), "csrf_failed")
    assert Member.objects.count() == before

    csrf = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    client.cookies["csrftoken"] = csrf  # what the console's pages set
    response = client.post(
        f"{API}/members",
        member_data(phone="13912340003"),
        content_type="application/json",
        headers={"X-CSRFToken": csrf},
    )
    assert response.status_code == 201, response.json()
    member = Member.objects.get(member_no=response.json()["member_no"])
    assert member.enrolled_by == clerk
    assert member.home_store == store


def test_hq_session_cannot_enrol_without_a_store(hq_admin):
    client = Client()
    client.force_login(hq_admin)
    before = Member.objects.count()
    response = client.post(f"{API}/members", member_data(), content_type="application/json")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "store"
    assert Member.objects.count() == before


def test_other_stores_terminal_is_not_own_store(store, other_store):
    make_member(store, name="李四", phone="13912340004")
    other = make_pos(other_store, "POS-X")
    body = other.get("/members/lookup", {"q": "13912340004"}).json()
    assert body["results"][0]["phone"] == "139****0004"
    assert body["results"][0]["own_store"] is False
