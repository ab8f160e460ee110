"""API test fixtures: POS terminals with their tokens, and an authenticated test client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from carecard.chain import services as chain_services
from carecard.chain.models import PosTerminal, Store

API = "/api/v1"


@dataclass
class Pos:
    """A POS terminal and a client that sends its bearer token."""

    terminal: PosTerminal
    token: str
    client: Client

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    def get(self, path: str, data: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.client.get(API + path, data, headers=self._headers(headers))

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(
            API + path, body, content_type="application/json", headers=self._headers(headers)
        )

    def patch(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.client.patch(
            API + path, body, content_type="application/json", headers=self._headers(headers)
        )


def make_pos(store: Store, code: str) -> Pos:
    terminal, token = chain_services.terminal_create(actor=None, store=store, code=code)
    return Pos(terminal=terminal, token=token, client=Client())


@pytest.fixture
def pos(store: Store) -> Pos:
    return make_pos(store, "POS-A1")


@pytest.fixture
def other_pos(other_store: Store) -> Pos:
    return make_pos(other_store, "POS-B1")


def assert_error_shape(body: dict[str, Any], code: str) -> None:
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert isinstance(body["errors"], list)
    for item in body["errors"]:
        assert set(item) == {"field", "code", "message"}


def error_fields(body: dict[str, Any]) -> dict[str, str]:
    return {e["field"]: e["code"] for e in body["errors"]}
