"""No input makes the API answer 500 (issue #2 acceptance): random JSON bodies, field values and
query strings against every member endpoint, each answered < 500 in the one error shape."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import Pos
from tests.factories import make_member

pytestmark = pytest.mark.django_db

# Deterministic and quick by default; CARECARD_FUZZ_EXAMPLES=2000 explores at random for longer.
_EXAMPLES = int(os.environ.get("CARECARD_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=_EXAMPLES or 40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=not _EXAMPLES,
    database=None,
)

MEMBER_KEYS = [
    "name", "phone", "gender", "birthday", "birthday_calendar", "lunar_birthday", "lunar_leap",
    "id_number", "email", "address", "province", "city", "district", "community", "allergies",
    "medical_history", "chronic_conditions", "health_interests", "contact_channels",
    "preferred_channel", "acquisition_channel", "heard_from", "campaign_code", "referrer",
    "card_number", "consent_terms", "consent_marketing", "consent_health_data",
]  # fmt: skip

text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from("0123456789-Xx张三丰LzZ \x00"),
    ),
    max_size=40,
)
plausible = st.one_of(
    text,
    st.sampled_from(
        [
            "13912345678",
            "1391234567",
            "+8613912345678",
            "110105194912310021",
            "11010519491231002X",
            "1980-L04-12",
            "9999-13-45",
            "0000-01-01",
            "9999-12-30",
            "1900-02-30",
            "lunar",
            "solar",
            "男",
            "hypertension",
            "diabetes",
            "wechat",
            "sms",
            "2026-02-29",
            "",
            " ",
        ]
    ),  # fmt: skip
)
scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), plausible)
json_value = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
LIST_KEYS = {
    "allergies", "medical_history", "chronic_conditions", "health_interests", "contact_channels",
}  # fmt: skip
BOOL_KEYS = {"lunar_leap", "consent_terms", "consent_marketing", "consent_health_data"}
# Bodies that pass the schema, so that the business validation and the services run on them.
typed_member = st.fixed_dictionaries(
    {"name": plausible, "phone": plausible, "consent_terms": st.just(True)},
    optional={
        key: st.lists(plausible, max_size=3)
        if key in LIST_KEYS
        else st.booleans()
        if key in BOOL_KEYS
        else st.sampled_from(["solar", "lunar"])
        if key == "birthday_calendar"
        else plausible
        for key in MEMBER_KEYS
        if key not in {"name", "phone", "consent_terms"}
    },
)
member_body = st.dictionaries(st.sampled_from(MEMBER_KEYS), json_value, max_size=10)
any_body = st.one_of(typed_member, member_body, json_value)
raw_body = st.binary(max_size=60)


def _check(response: Any) -> None:
    assert response.status_code < 500, response.content[:500]
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body["code"], str)
        assert isinstance(body["errors"], list)


@pytest.fixture
def member_no(store) -> str:
    return make_member(store, card_number="77770001").member_no


@FUZZ
@given(body=any_body)
def test_enrol_never_500(pos: Pos, body):
    _check(pos.post("/members", json.dumps(body).encode()))


@FUZZ
@given(body=raw_body)
def test_enrol_raw_bytes_never_500(pos: Pos, body):
    _check(pos.post("/members", body))


@FUZZ
@given(body=any_body)
def test_patch_never_500(pos: Pos, member_no, body):
    _check(pos.patch(f"/members/{member_no}", json.dumps(body).encode()))


@FUZZ
@given(
    body=st.one_of(
        st.fixed_dictionaries(
            {"purpose": st.sampled_from(["terms", "marketing", "health_data", "x"])},
            optional={"granted": json_value, "channel": json_value},
        ),
        json_value,
    )
)
def test_consents_never_500(pos: Pos, member_no, body):
    _check(pos.post(f"/members/{member_no}/consents", json.dumps(body).encode()))


@FUZZ
@given(
    number=st.one_of(st.just("77770001"), text.filter(lambda s: s and "/" not in s)),
    body=st.one_of(
        st.fixed_dictionaries(
            {"reason": st.sampled_from(["lost", "damaged", "x"])},
            optional={"new_number": json_value},
        ),
        json_value,
    ),
)
def test_cards_never_500(pos: Pos, member_no, number, body):
    from urllib.parse import quote

    path = quote(number, safe="")
    _check(pos.post(f"/cards/{path}/report-lost"))
    _check(pos.post(f"/cards/{path}/replace", json.dumps(body).encode()))


@FUZZ
@given(q=text, path=text.filter(lambda s: "/" not in s))
def test_reads_never_500(pos: Pos, member_no, q, path):
    from urllib.parse import quote

    _check(pos.get("/members/lookup", {"q": q.replace("\ud800", "")}))
    _check(pos.get(f"/members/{quote(path, safe='')}"))
    _check(pos.get(f"/members/{quote(path, safe='')}/health"))
