"""Coupon fixtures: a member, a manager, and a template builder with sensible defaults."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from carecard.core.roles import Role
from carecard.coupons import services
from tests.factories import make_member, make_staff

D = Decimal
SHANGHAI = ZoneInfo("Asia/Shanghai")
# 10:00 on 10 March 2026 in the store's time zone: business date 2026-03-10.
T0 = dt.datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI)


def at(days: float = 0, hours: float = 0) -> dt.datetime:
    return T0 + dt.timedelta(days=days, hours=hours)


@pytest.fixture
def member(store):
    return make_member(store, name="王秀英")


@pytest.fixture
def other_member(store):
    return make_member(store, name="李建国")


@pytest.fixture
def manager(store):
    return make_staff(Role.STORE_MANAGER, store)


@pytest.fixture
def make_template(db):
    def build(**overrides):
        values = {
            "name": "满100减10",
            "kind": "amount_off",
            "value": D("10.00"),
            "min_spend": D("100.00"),
            "valid_days": 30,
        }
        values.update(overrides)
        return services.coupon_template_create(**values)

    return build
