"""The import's fast path agrees with clean_member on every row it accepts (pure, no database)."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from carecard.core.idcard import make_id_number
from carecard.members.importers import _fast_clean
from carecard.members.validation import clean_member

TODAY = dt.date(2026, 6, 1)
IDS = [
    make_id_number("310115", dt.date(1980, 5, 6), 123),  # male
    make_id_number("110105", dt.date(1992, 2, 29), 244),  # female
    "310115198005061234",  # bad checksum
    "31011580050612",  # bad format
    "310115800506123",  # 15-digit legacy
]
TEXT = st.sampled_from(
    ["", " ", "上海市浦东新区张杨路1号", "x" * 33, "a\tb", "  前后空格  ", "x" * 301]
)
VALUES = {
    "name": st.sampled_from(["张三", "曾小贤", "", " 李 四", "x" * 51, "Anna", "王\u3000五"]),
    "phone": st.sampled_from(
        [
            "13812345678",
            "+86 138 1234 5678",
            "12345",
            "",
            "19012345678",
            "1741234567",
            "14512345678",
        ]
    ),
    "gender": st.sampled_from(["", "男", "女", "M", "F", "U", "male", "未知", "X", " 男 "]),
    "birthday": st.sampled_from(
        ["", "1980-05-06", "1980/05/06", "19800506", "1980-5-6", "2030-01-01", "1980-02-30"]
    ),
    "id_number": st.sampled_from(["", *IDS]),
    "email": st.sampled_from(["", "a@b.cn", "bad@"]),
    "address": TEXT,
    "province": TEXT,
    "city": TEXT,
    "district": TEXT,
    "community": TEXT,
    "heard_from": TEXT,
    "campaign_code": TEXT,
    "allergies": st.sampled_from(["", "青霉素", "青霉素、磺胺", " ; ", "青霉素/头孢"]),
    "medical_history": st.sampled_from(["", "胃溃疡"]),
    "chronic_conditions": st.sampled_from(["", "高血压", "hypertension;糖尿病", "感冒"]),
    "health_interests": st.sampled_from(["", "睡眠", "睡眠、睡眠、sleep", "钓鱼", "Sleep"]),
    "contact_channels": st.sampled_from(["", "短信", "sms,wechat", "飞鸽"]),
    "preferred_channel": st.sampled_from(["", "微信", "sms", "飞鸽", "短信、微信"]),
    "acquisition_channel": st.sampled_from(["", "门店", "import", "社区活动", "路过"]),
    "consent_terms": st.booleans(),
    "consent_marketing": st.booleans(),
    "consent_health_data": st.booleans(),
    "birthday_calendar": st.just("lunar"),
    "lunar_birthday": st.sampled_from(["1980-04-12", "1980-L04-12"]),
}


@st.composite
def rows(draw: st.DrawFn) -> dict[str, object]:
    # name, phone and the terms consent are (nearly) always there, so that many generated rows
    # are valid and the comparison below is not vacuous.
    keys = draw(st.sets(st.sampled_from(sorted(VALUES)))) | {"name", "phone"}
    row = {k: draw(VALUES[k]) for k in keys}
    row["consent_terms"] = draw(st.sampled_from([True, True, True, False]))
    return row


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows())
def test_fast_path_output_equals_clean_member(data: dict[str, object]) -> None:
    fast = _fast_clean(data, TODAY)
    event("fast" if fast is not None else "fallback")
    if fast is not None:
        out, errors = clean_member(data, today=TODAY)
        assert errors == []
        assert fast == out


def test_plain_rows_take_the_fast_path() -> None:
    data = {
        "name": "曾小贤",
        "phone": "13812345678",
        "gender": "男",
        "birthday": "",
        "id_number": IDS[0],
        "address": "上海市浦东新区张杨路1号",
        "province": "上海市",
        "city": "上海市",
        "district": "浦东新区",
        "allergies": "青霉素、磺胺",
        "chronic_conditions": "高血压",
        "health_interests": "睡眠;糖尿病",
        "contact_channels": "短信",
        "preferred_channel": "微信",
        "acquisition_channel": "门店",
        "consent_terms": True,
        "consent_marketing": False,
        "consent_health_data": True,
    }
    fast = _fast_clean(data, TODAY)
    assert fast is not None
    assert fast == clean_member(data, today=TODAY)[0]
    assert fast["contact_channels"] == ["sms", "wechat"]
    assert fast["birthday"] == dt.date(1980, 5, 6)
    # Each list is a fresh copy: the cached values are never handed out to be mutated.
    fast["allergies"].append("x")
    assert _fast_clean(data, TODAY)["allergies"] == ["青霉素", "磺胺"]
    # Anything unusual goes to clean_member, which owns the error messages.
    assert _fast_clean({**data, "email": "a@b.cn"}, TODAY) is None
    assert _fast_clean({**data, "consent_health_data": False}, TODAY) is None
