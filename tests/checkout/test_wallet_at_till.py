"""Stored value at the till (S-1, C-4a, C-6): pays a sale inside the commit, refused when short,
given back by a return of the lines it paid."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from carecard.checkout import services
from carecard.checkout.models import Sale
from carecard.checkout.services import LineIn, ReturnLineIn, TenderIn
from carecard.core.errors import DomainError
from carecard.loyalty.selectors import verify_points
from carecard.wallet.selectors import verify_wallets, wallet_summary
from carecard.wallet.services import wallet_topup
from tests.factories import make_member, valid_id

pytestmark = pytest.mark.django_db

D = Decimal
AT = dt.datetime(2026, 2, 25, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def member(store):
    m = make_member(store, name="郭靖", id_number=valid_id(), birthday="1980-05-06")
    wallet_topup(member_id=m.pk, amount=D("100.00"), tender="cash", at=AT)
    return m


def _sale(store, member, tenders, key="a", qty=2):
    return services.sale_commit(
        scope="t",
        idempotency_key=key,
        body={"k": key},
        store_id=store.pk,
        member_id=member.pk,
        lines=[LineIn("P-VITC", qty)],
        tenders=tenders,
        at=AT,
    )


def test_stored_value_pays_and_earns_points(store, member, catalog, wangqu):
    r = _sale(store, member, [TenderIn(kind="stored_value", amount=D("78.40"))]).response
    assert r["points_earned"] == 78
    assert wallet_summary(member.pk).balance == D("21.60")
    assert verify_wallets() == []


def test_too_little_stored_value_refuses_the_sale(store, member, catalog, wangqu):
    with pytest.raises(DomainError) as exc:
        _sale(store, member, [TenderIn(kind="stored_value", amount=D("156.80"))], qty=4)
    assert exc.value.errors[0].field == "tenders[0].amount"
    assert not Sale.objects.exists()
    assert wallet_summary(member.pk).balance == D("100.00")


def test_return_puts_stored_value_back(store, member, catalog, wangqu):
    sale = _sale(
        store,
        member,
        [
            TenderIn(kind="stored_value", amount=D("50.00")),
            TenderIn(kind="cash", amount=D("28.40")),
        ],
    ).sale
    r = services.sale_return(
        scope="t",
        idempotency_key="r",
        body={},
        sale_id=sale.pk,
        lines=[ReturnLineIn(1, 2)],
        at=AT + dt.timedelta(days=1),
    ).response
    assert {t["kind"]: t["amount"] for t in r["refund"]["tenders"]} == {
        "stored_value": "50.00",
        "cash": "28.40",
    }
    assert wallet_summary(member.pk).balance == D("100.00")
    assert verify_wallets() == []
    assert verify_points() == []
