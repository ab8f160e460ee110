"""Factory functions and fixtures: small, explicit builders of valid objects."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest

from carecard.chain import services as chain_services
from carecard.chain.models import Staff, Store
from carecard.core.idcard import make_id_number
from carecard.core.roles import Role
from carecard.members import services as member_services
from carecard.members.models import Member

_seq = itertools.count(1)


def make_store(code: str = "", name: str = "", region_code: str = "SH") -> Store:
    n = next(_seq)
    region = chain_services.region_upsert(code=region_code, name=f"{region_code}片区")
    return chain_services.store_upsert(
        code=code or f"S{n:04d}",
        name=name or f"测试门店{n}",
        region=region,
        province="上海市",
        city="上海市",
        district="浦东新区",
    )


def make_staff(
    role: str = Role.CLERK,
    store: Store | None = None,
    username: str = "",
    password: str = "pass-Word-2026",
) -> Staff:
    n = next(_seq)
    return chain_services.staff_create(
        actor=None,
        username=username or f"{role}{n}",
        password=password,
        role=role,
        display_name=f"员工{n}",
        home_store=store,
        check_password=False,
    )


def unique_phone() -> str:
    return f"139{next(_seq) + 10000000:08d}"


def member_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "张三",
        "phone": unique_phone(),
        "gender": "M",
        "birthday": "1975-03-02",
        "consent_terms": True,
    }
    data.update(overrides)
    return data


def make_member(store: Store, actor: Staff | None = None, **overrides: Any) -> Member:
    return member_services.member_enrol(actor=actor, store=store, data=member_data(**overrides))


def valid_id(birthday: dt.date = dt.date(1980, 5, 6), seq: int = 123) -> str:
    return make_id_number("310115", birthday, seq)


@pytest.fixture
def store(db: None) -> Store:
    return make_store()


@pytest.fixture
def other_store(db: None) -> Store:
    return make_store()


@pytest.fixture
def clerk(store: Store) -> Staff:
    return make_staff(Role.CLERK, store)


@pytest.fixture
def hq_admin(db: None) -> Staff:
    return make_staff(Role.HQ_ADMIN)
