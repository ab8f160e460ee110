"""Fixtures for the counter, receipt and member points pages: a frozen clock on a plain
(non member-day) business date, the 王曲同心 rules and catalogue, a member, and helpers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from carecard.checkout import services
from carecard.checkout.services import LineIn, TenderIn
from carecard.members.models import Member
from tests.checkout.conftest import catalog, wangqu  # noqa: F401 — re-exported fixtures
from tests.factories import make_member

D = Decimal
# 2026-02-25 18:00 in Shanghai is lunar 正月初九: 王曲同心 gives its everyday 9.8折.
PLAIN_DAY = dt.datetime(2026, 2, 25, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def frozen(monkeypatch):
    """Pin ``timezone.now`` (and so the business date) for the views and services."""
    monkeypatch.setattr(timezone, "now", lambda: PLAIN_DAY)
    return PLAIN_DAY


@pytest.fixture
def member(store) -> Member:
    return make_member(store, name="王秀英", phone="13912345678")


def sell(store, member, lines, tenders, *, key="seed-1", at=PLAIN_DAY, staff=None):
    """A sale committed through the service, as a POS would."""
    return services.sale_commit(
        scope="terminal:test",
        idempotency_key=key,
        body={"lines": [(sku, q) for sku, q in lines], "key": key},
        store_id=store.pk,
        member_id=member.pk if member else None,
        lines=[LineIn(sku, q) for sku, q in lines],
        tenders=[TenderIn(kind, D(amount)) for kind, amount in tenders],
        at=at,
        staff=staff,
    ).sale
