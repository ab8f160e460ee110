"""Fixtures for console tests: signed-in clients per role."""

from __future__ import annotations

import pytest
from django.test import Client

from carecard.chain.models import Staff, Store
from carecard.core.roles import Role
from tests.factories import make_staff


def signed_in(staff: Staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def clerk_client(clerk: Staff) -> Client:
    return signed_in(clerk)


@pytest.fixture
def hq_client(hq_admin: Staff) -> Client:
    return signed_in(hq_admin)


@pytest.fixture
def manager(store: Store) -> Staff:
    return make_staff(Role.STORE_MANAGER, store)


@pytest.fixture
def other_clerk(other_store: Store) -> Staff:
    return make_staff(Role.CLERK, other_store)
