"""Pure coupon rules: codes, validity windows, refusals, 满即送 counts, template checks and the
conversion to the pricing engine's coupon. No database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carecard.checkout import engine
from carecard.coupons import rules
from carecard.loyalty.rules import Scope

D = Decimal
DAY = dt.date(2026, 3, 10)

# --- codes -------------------------------------------------------------------------------------

body_st = st.text(alphabet=rules.CODE_ALPHABET, min_size=rules.BODY_LENGTH, max_size=11)


def test_generated_codes_use_the_unambiguous_alphabet_and_check():
    code = rules.generate_code("XMAS")
    assert code.startswith("XMAS")
    assert len(code) == 4 + rules.CODE_LENGTH
    assert set(code[4:]) <= set(rules.CODE_ALPHABET)
    assert len(rules.CODE_ALPHABET) == 32
    assert not set("01OI") & set(rules.CODE_ALPHABET)
    assert rules.code_checks(code)


@given(body=body_st, position=st.integers(0, rules.CODE_LENGTH - 1), data=st.data())
def test_any_single_mistyped_character_is_caught(body, position, data):
    code = body + rules.check_char(body)
    wrong = data.draw(st.sampled_from([c for c in rules.CODE_ALPHABET if c != code[position]]))
    typo = code[:position] + wrong + code[position + 1 :]
    assert rules.code_checks(code)
    assert not rules.code_checks(typo)


def test_check_char_is_luhn_mod_n_for_a_known_value():
    # Luhn mod 32 by hand for body "2" (index 0): factor 2 → 0, check = 0 → "2".
    assert rules.check_char("2") == "2"
    # body "3" (index 1): 2×1 = 2 → check (32 − 2) % 32 = 30 → alphabet[30] = "Y".
    assert rules.check_char("3") == "Y"


def test_code_checks_refuses_short_or_foreign_text():
    assert not rules.code_checks("ABC")
    assert not rules.code_checks("0" * rules.CODE_LENGTH)
    assert not rules.code_checks("")


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        (" abcd-efgh 2345 ", "ABCDEFGH2345"),
        ("ＸＭＡＳ２３４", "XMAS234"),  # full-width input from a Chinese IME
        ("a_b", "AB"),
        (None, ""),
        (123, ""),
    ],
)
def test_normalize_code(typed, stored):
    assert rules.normalize_code(typed) == stored


def test_normalize_prefix():
    assert rules.normalize_prefix("xmas26") == "XMAS26"
    assert rules.normalize_prefix("") == ""
    assert rules.normalize_prefix("TOOLONGPREFIX") is None
    assert rules.normalize_prefix("券") is None
    assert rules.normalize_prefix(None) is None


# --- validity ----------------------------------------------------------------------------------


def test_days_after_issue_include_the_issue_day():
    assert rules.validity_window(DAY, valid_from=None, valid_until=None, valid_days=7) == (
        DAY,
        dt.date(2026, 3, 16),
    )


def test_fixed_dates_bound_days_after_issue():
    window = rules.validity_window(
        DAY, valid_from=dt.date(2026, 3, 12), valid_until=dt.date(2026, 3, 14), valid_days=30
    )
    assert window == (dt.date(2026, 3, 12), dt.date(2026, 3, 14))


def test_fixed_dates_alone():
    window = rules.validity_window(
        DAY, valid_from=dt.date(2026, 1, 1), valid_until=dt.date(2026, 12, 31), valid_days=None
    )
    assert window == (DAY, dt.date(2026, 12, 31))


def test_a_window_needs_an_end():
    with pytest.raises(ValueError, match="valid_until or valid_days"):
        rules.validity_window(DAY, valid_from=None, valid_until=None, valid_days=None)


# --- refusals ----------------------------------------------------------------------------------


def refuse(**overrides):
    values = {
        "status": "issued",
        "owner_id": 7,
        "member_id": 7,
        "members_only": True,
        "template_active": True,
        "valid_from": dt.date(2026, 3, 1),
        "valid_until": dt.date(2026, 3, 31),
        "store_allowed": True,
        "day": DAY,
    }
    values.update(overrides)
    result = rules.refusal(**values)
    return result and result[0]


def test_refusal_reasons():
    assert refuse() is None
    assert refuse(member_id=8) == "not_owner"
    assert refuse(member_id=None) == "not_owner"
    assert refuse(owner_id=None, member_id=None) == "member_required"
    assert refuse(owner_id=None, member_id=None, members_only=False) is None
    assert refuse(owner_id=None, member_id=9) is None  # printed code, any member
    assert refuse(status="void") == "void"
    assert refuse(status="redeemed") == "already_used"
    assert refuse(status="expired") == "expired"
    assert refuse(day=dt.date(2026, 4, 1)) == "expired"
    assert refuse(day=dt.date(2026, 3, 31)) is None  # last day inclusive
    assert refuse(day=dt.date(2026, 2, 28)) == "not_yet_valid"
    assert refuse(template_active=False) == "template_inactive"
    assert refuse(store_allowed=False) == "store_not_allowed"


def test_ownership_is_checked_before_anything_else():
    assert refuse(member_id=8, status="redeemed") == "not_owner"


def test_already_used_names_the_date():
    result = rules.refusal(
        status="redeemed",
        owner_id=1,
        member_id=1,
        members_only=True,
        template_active=True,
        valid_from=DAY,
        valid_until=DAY,
        store_allowed=True,
        day=DAY,
        redeemed_on=dt.date(2026, 3, 9),
    )
    assert result == ("already_used", "该券已使用（2026-03-09）")


# --- 满即送 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "repeat", "max_count", "expected"),
    [
        ("99.99", False, None, 0),
        ("100.00", False, None, 1),
        ("350.00", False, None, 1),
        ("350.00", True, None, 3),
        ("350.00", True, 2, 2),
        ("0.00", True, None, 0),
    ],
)
def test_purchase_count(amount, repeat, max_count, expected):
    count = rules.purchase_count(
        D(amount), min_amount=D("100.00"), quantity=1, repeat=repeat, max_count=max_count
    )
    assert count == expected


def test_purchase_count_multiplies_quantity():
    assert (
        rules.purchase_count(D("200"), min_amount=D("100"), quantity=2, repeat=True, max_count=None)
        == 4
    )


# --- templates ---------------------------------------------------------------------------------


def terms(**overrides):
    values = {
        "name": "满100减10",
        "kind": "amount_off",
        "value": D("10.00"),
        "min_spend": D("100.00"),
    }
    values.update(overrides)
    return rules.TemplateTerms(**values)


def error_fields(t, **kw):
    kw.setdefault("valid_days", 30)
    return sorted(e.field for e in rules.terms_errors(t, **kw))


def test_valid_terms_have_no_errors():
    assert error_fields(terms()) == []
    assert error_fields(terms(kind="percent_off", value=None, rate=D("0.90"))) == []


def test_terms_errors_name_every_bad_field():
    bad = terms(
        name=" ",
        value=D("0"),
        rate=D("0.9"),
        max_off=D("5"),
        min_spend=D("-1"),
        stacking_group="",
        funded_by="",
        scope={"skuz": ["A"]},
    )
    assert error_fields(bad, valid_days=None, per_member_limit=0) == [
        "funded_by",
        "max_off",
        "min_spend",
        "name",
        "per_member_limit",
        "rate",
        "scope.skuz",
        "stacking_group",
        "valid_until",
        "value",
    ]


def test_amounts_and_rates_fit_their_columns():
    assert error_fields(terms(value=D("100000000.00"))) == ["value"]
    assert error_fields(terms(min_spend=D("100000000.00"))) == ["min_spend"]
    assert error_fields(terms(kind="percent_off", value=None, rate=D("0.88885"))) == ["rate"]


def test_percent_terms():
    assert error_fields(terms(kind="percent_off", value=D("10"), rate=D("1"))) == ["rate", "value"]
    assert error_fields(
        terms(kind="percent_off", value=None, rate=D("0.9"), max_off=D("0.001"))
    ) == ["max_off"]


def test_gift_and_service_need_an_item_and_gifts_no_rx():
    assert error_fields(terms(kind="gift")) == ["scope.skus"]
    assert error_fields(terms(kind="service", scope={"skus": ["SVC-BG"]})) == []
    assert error_fields(terms(kind="gift", scope={"classes": ["rx"], "skus": ["G"]})) == [
        "scope.classes"
    ]


def test_dates_must_be_ordered():
    fields = error_fields(
        terms(), valid_from=dt.date(2026, 4, 1), valid_until=dt.date(2026, 3, 1), valid_days=None
    )
    assert fields == ["valid_until"]


@pytest.mark.parametrize(
    ("scope", "field"),
    [
        ("skus", "scope"),
        ({"skus": "A"}, "scope.skus"),
        ({"categories": ["3"]}, "scope.categories"),
        ({"categories": [True]}, "scope.categories"),
        ({"classes": ["drugs"]}, "scope.classes"),
        ({"exclude_tags": ["cheap"]}, "scope.exclude_tags"),
        ({"skus": [""]}, "scope.skus"),
    ],
)
def test_bad_scopes_are_refused_not_widened(scope, field):
    with pytest.raises(rules.CouponTemplateError) as exc:
        rules.scope_from_json(scope)
    assert [e.field for e in exc.value.errors] == [field]


def test_scope_from_json():
    assert rules.scope_from_json(None) == Scope()
    assert rules.scope_from_json({"categories": [3], "exclude_skus": ["X"]}) == Scope(
        categories=frozenset({3}), exclude_skus=frozenset({"X"})
    )


# --- conversion to the engine ------------------------------------------------------------------


def test_amount_off_converts_field_by_field():
    coupon = rules.engine_coupon(
        terms(
            id=4,
            scope={"categories": [2]},
            stacking_group="vendor",
            funded_by="vendor",
            points_funded=True,
            members_only=False,
            applies_to_flagged=True,
        ),
        "ABC",
    )
    assert coupon == engine.Coupon(
        code="ABC",
        template_id=4,
        name="满100减10",
        kind="amount_off",
        value=D("10.00"),
        min_spend=D("100.00"),
        scope=Scope(categories=frozenset({2})),
        stacking_group="vendor",
        funded_by="vendor",
        points_funded=True,
        members_only=False,
        applies_to_flagged=True,
    )


def test_percent_off_converts_rate_and_cap():
    coupon = rules.engine_coupon(
        terms(kind="percent_off", value=None, rate=D("0.85"), max_off=D("20.00"), min_spend=D("0")),
        "P",
    )
    assert (coupon.kind, coupon.value, coupon.rate, coupon.max_off) == (
        "percent_off",
        None,
        D("0.85"),
        D("20.00"),
    )
    assert coupon.label == "优惠券「满100减10」8.5折（最高减20）"


def test_gift_becomes_amount_off_on_its_item_and_never_covers_rx():
    coupon = rules.engine_coupon(terms(kind="gift", min_spend=D("0"), scope={"skus": ["G-1"]}), "G")
    assert coupon.kind == "amount_off"
    assert coupon.scope.skus == {"G-1"}
    assert coupon.scope.exclude_classes == engine.GIFT_BANNED_CLASSES


def test_service_voucher_is_amount_off_on_the_service_sku():
    coupon = rules.engine_coupon(
        terms(kind="service", value=D("15.00"), min_spend=D("0"), scope={"skus": ["SVC-BG"]}), "S"
    )
    assert (coupon.kind, coupon.value, coupon.scope.skus) == ("amount_off", D("15.00"), {"SVC-BG"})
    assert coupon.scope.exclude_classes == frozenset()


def test_broken_terms_raise_instead_of_building_a_coupon():
    with pytest.raises(engine.PricingError):
        rules.engine_coupon(terms(value=None), "X")
    with pytest.raises(rules.CouponTemplateError):
        rules.engine_coupon(terms(kind="cashback"), "X")


def test_dedupe_marks_repeats_after_normalising():
    assert rules.dedupe(["ab-c", "ABC", "x"]) == [
        (0, "ABC", False),
        (1, "ABC", True),
        (2, "X", False),
    ]


def test_rejection_field():
    r = rules.Rejection(index=2, code="X", reason_code="void", message="该券已作废")
    assert r.field == "coupons[2]"
    assert r.as_field_error().as_dict() == {
        "field": "coupons[2]",
        "code": "void",
        "message": "该券已作废",
    }


def test_wrongly_typed_settings_are_errors_not_crashes():
    bad = terms(name=5, stacking_group=None, funded_by=3)
    assert error_fields(bad, valid_days="7", per_member_limit=True) == [
        "funded_by",
        "name",
        "per_member_limit",
        "stacking_group",
        "valid_days",
    ]
    assert error_fields(terms(), valid_from="2026-03-01", valid_until=dt.date(2026, 3, 2)) == [
        "valid_from"
    ]
