"""The POS checkout API over HTTP, as an integrator calls it (C-1, C-2, C-5, C-6)."""

from __future__ import annotations

import pytest

from carecard.checkout.models import Sale
from carecard.loyalty.models import PointsAccount
from tests.api.conftest import Pos, assert_error_shape, error_fields, make_pos
from tests.factories import make_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def pos(store) -> Pos:
    return make_pos(store, "POS-C1")


@pytest.fixture
def member(store):
    return make_member(store, name="赵敏")


def sale_body(member, qty=1, cash="39.20", **extra):
    return {
        "member_no": member.member_no if member else None,
        "lines": [{"sku": "P-VITC", "quantity": qty}],
        "tenders": [{"kind": "cash", "amount": cash}],
        **extra,
    }


def test_quote_prices_and_explains(pos, member, catalog, wangqu):
    r = pos.post(
        "/checkout/quote",
        {"member_no": member.member_no, "lines": [{"sku": "P-VITC", "quantity": 2}]},
    )
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["net_total"] == "78.40"
    assert body["lines"][0]["discounts"][0]["reason"].startswith("会员折扣")
    assert body["points_to_earn"] == 78
    assert not Sale.objects.exists()


def test_commit_then_retry_then_reuse_key(pos, member, catalog, wangqu):
    headers = {"Idempotency-Key": "till-1-0001"}
    first = pos.post("/checkout/sales", sale_body(member), headers=headers)
    assert first.status_code == 201, first.json()
    receipt = first.json()
    assert (receipt["points_earned"], receipt["points_balance"]) == (39, 39)
    again = pos.post("/checkout/sales", sale_body(member), headers=headers)
    assert again.status_code == 200
    assert again.json()["replayed"] is True
    assert again.json()["sale_id"] == receipt["sale_id"]
    other = pos.post("/checkout/sales", sale_body(member, qty=2, cash="78.40"), headers=headers)
    assert other.status_code == 409
    assert_error_shape(other.json(), "idempotency_key_reused")
    assert Sale.objects.count() == 1
    assert PointsAccount.objects.get(pk=member.pk).balance == 39


def test_commit_needs_an_idempotency_key(pos, member, catalog, wangqu):
    r = pos.post("/checkout/sales", sale_body(member))
    assert r.status_code == 422
    assert not Sale.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lines": [{"sku": "NOPE", "quantity": 1}]}, "lines[0].sku"),
        ({"tenders": [{"kind": "cash", "amount": "1.00"}]}, "tenders"),
        ({"tenders": [{"kind": "points", "points": 3920}]}, "tenders[0].points"),
    ],
)
def test_bad_sale_is_422_naming_the_field(pos, member, catalog, wangqu, change, field):
    r = pos.post(
        "/checkout/sales", {**sale_body(member), **change}, headers={"Idempotency-Key": "x"}
    )
    assert r.status_code == 422, r.json()
    assert field in error_fields(r.json())
    assert not Sale.objects.exists()


def test_unknown_member_is_404(pos, catalog, wangqu):
    r = pos.post(
        "/checkout/sales",
        {**sale_body(None), "member_no": "999999999999"},
        headers={"Idempotency-Key": "y"},
    )
    assert r.status_code == 404
    assert_error_shape(r.json(), "member_not_found")


def test_return_over_http(pos, member, catalog, wangqu):
    sale = pos.post(
        "/checkout/sales", sale_body(member, qty=2, cash="78.40"), headers={"Idempotency-Key": "s"}
    ).json()
    path = f"/checkout/sales/{sale['sale_id']}/returns"
    body = {"lines": [{"line_no": 1, "quantity": 1}]}
    r = pos.post(path, body, headers={"Idempotency-Key": "r1"})
    assert r.status_code == 201, r.json()
    assert r.json()["refund"]["points_reversed"] == 39
    assert pos.post(path, body, headers={"Idempotency-Key": "r1"}).json()["replayed"] is True
    too_many = pos.post(
        path, {"lines": [{"line_no": 1, "quantity": 2}]}, headers={"Idempotency-Key": "r2"}
    )
    assert too_many.status_code == 422
    assert error_fields(too_many.json()) == {"lines[0].quantity": "exceeds_sold"}


def test_offline_batch_in_time_order_and_idempotent(pos, member, catalog, wangqu):
    batch = [
        {**sale_body(member), "idempotency_key": "off-2", "at": "2026-03-02T10:00:00+08:00"},
        {**sale_body(member), "idempotency_key": "off-1", "at": "2026-03-01T10:00:00+08:00"},
        {
            **sale_body(member, cash="1.00"),
            "idempotency_key": "off-3",
            "at": "2026-03-03T10:00:00+08:00",
        },
    ]
    r = pos.post("/checkout/sales/batch", batch)
    assert r.status_code == 200, r.json()
    results = r.json()["results"]
    assert [x["idempotency_key"] for x in results] == ["off-1", "off-2", "off-3"]
    assert [x["status"] for x in results] == [201, 201, 422]
    assert results[2]["error"]["code"] == "validation_error"
    again = pos.post("/checkout/sales/batch", batch).json()["results"]
    assert [x["status"] for x in again] == [200, 200, 422]
    assert Sale.objects.filter(offline=True).count() == 2
    assert PointsAccount.objects.get(pk=member.pk).balance == 78
