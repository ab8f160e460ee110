"""Coupons at the till (C-1, V-3): validation with stable rejection codes, conversion into the
pricing engine, single-use redemption, restore on return, void, expiry and cost attribution."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from carecard.checkout import engine
from carecard.core.errors import DomainError, NotFound, PermissionDenied, ValidationFailed
from carecard.core.models import AuditEntry
from carecard.coupons import services
from carecard.coupons.models import Coupon, CouponEvent, CouponStatus, EventKind
from carecard.coupons.selectors import (
    batch_codes,
    coupon_by_code,
    coupon_cost_by_issuer,
    coupon_events,
    member_coupons,
)
from carecard.loyalty.rules import Member as PricingMember
from tests.coupons.conftest import T0, D, at
from tests.factories import make_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def template(make_template):
    return make_template()


@pytest.fixture
def coupon(template, member):
    return services.coupon_issue(template=template, member=member, at=T0)


def check(codes, member, store, when=T0):
    return services.coupons_for_checkout(
        codes=codes, member_id=member.pk if member else None, store_id=store.pk, at=when
    )


def reasons(rejected):
    return [(r.field, r.reason_code) for r in rejected]


TEN = D("10.00")


def redeem(coupons, member, store, amount=TEN, when=T0, reference="sale:1"):
    return services.coupons_redeem(
        codes=[c.code for c in coupons],
        member_id=member.pk if member else None,
        store_id=store.pk,
        at=when,
        reference=reference,
        amounts={c.code: amount for c in coupons},
    )


def snapshot(coupon):
    coupon.refresh_from_db()
    return (
        coupon.status,
        coupon.redeemed_at,
        coupon.redeemed_reference,
        coupon.redeemed_amount,
        coupon.member_id,
    )


# --- validation --------------------------------------------------------------------------------


def test_a_valid_coupon_converts_to_the_engine_coupon(coupon, template, member, store):
    usable, rejected = check([coupon.code.lower()], member, store)
    assert rejected == []
    assert usable == [
        engine.Coupon(
            code=coupon.code,
            template_id=template.pk,
            name="满100减10",
            kind="amount_off",
            value=D("10.00"),
            min_spend=D("100.00"),
        )
    ]


def test_validation_is_one_query(coupon, member, store, make_template):
    other = services.coupon_issue(template=make_template(), member=member, at=T0)
    with CaptureQueriesContext(connection) as queries:
        usable, _rejected = check([coupon.code, other.code, "UNKNOWN"], member, store)
    assert len(usable) == 2
    assert len(queries) == 1
    with CaptureQueriesContext(connection) as queries:
        assert check([], member, store) == ([], [])
    assert len(queries) == 0


def test_every_rejection_has_its_code(
    make_template, member, other_member, store, other_store, manager
):
    t = make_template()
    mine = services.coupon_issue(template=t, member=member, at=T0)
    theirs = services.coupon_issue(template=t, member=other_member, at=T0)
    used = services.coupon_issue(template=t, member=member, at=T0)
    redeem([used], member, store, when=at(hours=-1))
    void = services.coupon_issue(template=t, member=member, at=T0)
    services.coupon_void(coupon=void, reason="发错", actor=manager, at=T0)
    old = services.coupon_issue(template=make_template(valid_days=1), member=member, at=at(-2))
    later = services.coupon_issue(
        template=make_template(
            valid_days=None, valid_from=dt.date(2026, 4, 1), valid_until=dt.date(2026, 4, 30)
        ),
        member=member,
        at=T0,
    )
    stopped_t = make_template()
    stopped = services.coupon_issue(template=stopped_t, member=member, at=T0)
    services.coupon_template_set_active(template=stopped_t, active=False, actor=None)
    elsewhere = services.coupon_issue(
        template=make_template(store_ids=[other_store.pk]), member=member, at=T0
    )
    broken_t = make_template()
    broken = services.coupon_issue(template=broken_t, member=member, at=T0)
    # A template edited behind the services' back (raw SQL, a bad admin edit) must not crash.
    type(broken_t).objects.filter(pk=broken_t.pk).update(scope={"classes": ["drugs"]})

    codes = [
        mine.code,
        "ABCDEFGHJKMN",  # right shape, wrong check character
        mine.code[:-1] + ("2" if mine.code[-1] != "2" else "3"),  # one typo
        "XMAS" + "2" * 11 + "2",  # passes the check, does not exist
        mine.code,  # presented twice
        theirs.code,
        used.code,
        void.code,
        old.code,
        later.code,
        stopped.code,
        elsewhere.code,
        broken.code,
        "",
    ]
    usable, rejected = check(codes, member, store)
    assert [c.code for c in usable] == [mine.code]
    assert reasons(rejected) == [
        ("coupons[1]", "invalid_code"),
        ("coupons[2]", "invalid_code"),
        ("coupons[3]", "unknown_code"),
        ("coupons[4]", "duplicate_code"),
        ("coupons[5]", "not_owner"),
        ("coupons[6]", "already_used"),
        ("coupons[7]", "void"),
        ("coupons[8]", "expired"),
        ("coupons[9]", "not_yet_valid"),
        ("coupons[10]", "template_inactive"),
        ("coupons[11]", "store_not_allowed"),
        ("coupons[12]", "template_invalid"),
        ("coupons[13]", "invalid_code"),
    ]
    messages = {r.reason_code: r.message for r in rejected}
    assert messages["already_used"] == "该券已使用（2026-03-10）"
    assert messages["expired"] == "该券已过期（有效期至 2026-03-08）"
    assert messages["not_yet_valid"] == "该券 2026-04-01 起可用"
    assert messages["unknown_code"] == "券码不存在：XMAS222222222222"


def test_walk_ins_and_printed_codes(make_template, manager, member, store):
    members_only = services.coupon_batch_create(
        template=make_template(), count=1, actor=manager, at=T0
    ).coupons.get()
    anyone = services.coupon_batch_create(
        template=make_template(members_only=False), count=1, actor=manager, at=T0
    ).coupons.get()
    owned = services.coupon_issue(template=make_template(), member=member, at=T0)
    usable, rejected = check([members_only.code, anyone.code, owned.code], None, store)
    assert [c.code for c in usable] == [anyone.code]
    assert usable[0].members_only is False
    assert reasons(rejected) == [("coupons[0]", "member_required"), ("coupons[2]", "not_owner")]
    assert rejected[1].message == "该券为会员专属，请先识别会员"
    usable, rejected = check([members_only.code], member, store)
    assert (len(usable), rejected) == (1, [])


def test_bad_input_is_a_validation_error_not_a_crash(member, store):
    for codes in ("ABC", ["A"] * 21, 7):
        with pytest.raises(ValidationFailed):
            check(codes, member, store)
    usable, rejected = check([None, 12], member, store)
    assert (usable, reasons(rejected)) == (
        [],
        [("coupons[0]", "invalid_code"), ("coupons[1]", "invalid_code")],
    )


# --- engine integration ------------------------------------------------------------------------


def test_checkout_prices_with_the_converted_coupons_then_redeems_them(make_template, member, store):
    cold = make_template(
        name="感冒药满50减8", value=D("8.00"), min_spend=D("50.00"), scope={"skus": ["P-COLD"]}
    )
    percent = make_template(
        name="全场9折",
        kind="percent_off",
        value=None,
        rate=D("0.90"),
        min_spend=D("0"),
        max_off=D("20.00"),
        stacking_group="percent",
        funded_by="vendor",
    )
    c1 = services.coupon_issue(template=cold, member=member, at=T0)
    c2 = services.coupon_issue(template=percent, member=member, at=T0)
    usable, rejected = check([c1.code, c2.code], member, store)
    assert rejected == []
    lines = [
        engine.Line(
            engine.Item(
                sku="P-COLD", name="感冒灵颗粒", item_class="otc_b", shelf_price=D("25.00")
            ),
            2,
        ),
        engine.Line(
            engine.Item(sku="P-VITC", name="维生素C片", item_class="otc_b", shelf_price=D("40.00")),
            1,
        ),
    ]
    basket = engine.price_basket(
        lines, PricingMember(), [], usable, engine.DEFAULT_POLICY, dt.date(2026, 3, 10)
    )
    # 感冒药 50.00 − 8.00 = 42.00; then 9折 on 42.00 + 40.00 = 82.00 → 8.20 off.
    assert [(a.code, a.amount) for a in basket.coupons_applied] == [
        (c1.code, D("8.00")),
        (c2.code, D("8.20")),
    ]
    assert basket.net == D("73.80")
    assert basket.discounts_by_funder() == {"hq": D("8.00"), "vendor": D("8.20")}

    done = services.coupons_redeem(
        codes=[c1.code, c2.code],
        member_id=member.pk,
        store_id=store.pk,
        at=T0,
        reference="sale:123",
        amounts={a.code: a.amount for a in basket.coupons_applied},
    )
    assert [(c.code, c.status, c.redeemed_amount) for c in done] == [
        (c1.code, "redeemed", D("8.00")),
        (c2.code, "redeemed", D("8.20")),
    ]
    c2.refresh_from_db()
    assert (c2.redeemed_store, c2.redeemed_reference, c2.redeemed_at) == (store, "sale:123", T0)
    event = CouponEvent.objects.get(coupon=c2)
    assert (event.kind, event.amount, event.reference, event.member_id) == (
        EventKind.REDEEMED,
        D("8.20"),
        "sale:123",
        member.pk,
    )


def test_a_gift_coupon_pays_for_the_gift_but_never_for_rx(make_template, member, store):
    gift = make_template(
        name="赠血压计",
        kind="gift",
        value=D("99.00"),
        min_spend=D("0"),
        scope={"categories": [7]},
    )
    coupon = services.coupon_issue(template=gift, member=member, at=T0)
    usable, _ = check([coupon.code], member, store)
    lines = [
        engine.Line(
            engine.Item(
                sku="D-BP",
                name="血压计",
                item_class="device",
                category_ids=(7,),
                shelf_price=D("129.00"),
            ),
            1,
        ),
        engine.Line(
            engine.Item(
                sku="RX-1",
                name="处方药",
                item_class="rx",
                category_ids=(7,),
                shelf_price=D("50.00"),
            ),
            1,
        ),
    ]
    basket = engine.price_basket(
        lines, PricingMember(), [], usable, engine.DEFAULT_POLICY, dt.date(2026, 3, 10)
    )
    assert [line.net for line in basket.lines] == [D("30.00"), D("50.00")]


# --- redemption --------------------------------------------------------------------------------


def test_redeem_is_single_use(coupon, member, store):
    redeem([coupon], member, store)
    before = snapshot(coupon)
    events = CouponEvent.objects.count()
    with pytest.raises(DomainError) as exc:
        redeem([coupon], member, store, reference="sale:2", when=at(hours=1))
    assert exc.value.code == "coupon_already_used"
    assert exc.value.status == 409
    assert exc.value.errors[0].field == "coupons[0]"
    assert exc.value.detail == {"coupon": coupon.code}
    assert snapshot(coupon) == before
    assert before[2] == "sale:1"
    assert CouponEvent.objects.count() == events


def test_redeem_refuses_the_whole_set_when_one_is_unusable(
    make_template, member, other_member, store
):
    t = make_template()
    good = services.coupon_issue(template=t, member=member, at=T0)
    theirs = services.coupon_issue(template=t, member=other_member, at=T0)
    with pytest.raises(DomainError) as exc:
        redeem([good, theirs], member, store)
    assert exc.value.code == "coupon_unusable"
    assert [(e.field, e.code) for e in exc.value.errors] == [("coupons[1]", "not_owner")]
    assert snapshot(good)[0] == snapshot(theirs)[0] == CouponStatus.ISSUED
    assert CouponEvent.objects.count() == 0


def test_redeem_checks_amounts(coupon, member, store):
    cases = [
        ({}, "coupons[0]"),
        ({coupon.code: D("10.001")}, "coupons[0]"),
        ({coupon.code: D("0")}, "coupons[0]"),
        ({coupon.code: 10.0}, "coupons[0]"),
        ({coupon.code: D("10.01")}, "coupons[0]"),  # more than the face value
        ({coupon.code: D("5.00"), "OTHER": D("1.00")}, "amounts"),
    ]
    for amounts, field in cases:
        with pytest.raises(ValidationFailed) as exc:
            services.coupons_redeem(
                codes=[coupon.code],
                member_id=member.pk,
                store_id=store.pk,
                at=T0,
                reference="sale:1",
                amounts=amounts,
            )
        assert field in [e.field for e in exc.value.errors]
    with pytest.raises(ValidationFailed):
        services.coupons_redeem(
            codes=[coupon.code],
            member_id=member.pk,
            store_id=store.pk,
            at=T0,
            reference="",
            amounts={coupon.code: D("5.00")},
        )
    assert snapshot(coupon)[0] == CouponStatus.ISSUED
    assert (
        services.coupons_redeem(
            codes=[], member_id=member.pk, store_id=store.pk, at=T0, reference="sale:1", amounts={}
        )
        == []
    )


def test_a_printed_code_used_by_a_member_becomes_theirs(make_template, manager, member, store):
    batch = services.coupon_batch_create(template=make_template(), count=1, actor=manager, at=T0)
    printed = batch.coupons.get()
    (done,) = redeem([printed], member, store)
    printed.refresh_from_db()
    assert (printed.member_id, printed.claimed_at, printed.status) == (member.pk, T0, "redeemed")
    assert batch_codes(batch.pk) == [printed.code]


def test_redeem_rechecks_store_and_dates(make_template, member, store, other_store):
    only_there = services.coupon_issue(
        template=make_template(store_ids=[other_store.pk]), member=member, at=T0
    )
    with pytest.raises(DomainError) as exc:
        redeem([only_there], member, store)
    assert exc.value.errors[0].code == "store_not_allowed"
    redeem([only_there], member, other_store)
    soon = services.coupon_issue(template=make_template(valid_days=1), member=member, at=T0)
    with pytest.raises(DomainError) as exc:
        redeem([soon], member, store, when=at(1))
    assert exc.value.errors[0].code == "expired"


# --- restore on return --------------------------------------------------------------------------


def test_full_return_restores_a_coupon_still_valid(coupon, member, store):
    redeem([coupon], member, store, reference="sale:5")
    (result,) = services.coupons_restore_for(
        redeemed_reference="sale:5", at=at(2), reference="return:9"
    )
    assert result.restored
    assert snapshot(coupon) == (CouponStatus.ISSUED, None, "", None, member.pk)
    kinds = [(e.kind, e.reference, e.amount) for e in coupon_events(coupon.pk)]
    assert kinds == [
        ("redeemed", "sale:5", D("10.00")),
        ("restored", "return:9", D("10.00")),
    ]
    restored = coupon_events(coupon.pk)[1]
    assert restored.detail == {
        "redeemed_at": T0.isoformat(),
        "redeemed_store_id": store.pk,
        "redeemed_reference": "sale:5",
        "redeemed_amount": "10.00",
    }
    # Usable again; a retry of the return changes nothing.
    assert check([coupon.code], member, store, when=at(3))[1] == []
    assert (
        services.coupons_restore_for(redeemed_reference="sale:5", at=at(2), reference="return:9")
        == []
    )
    again = services.coupon_restore(coupon=coupon.code, at=at(2), reference="return:9")
    assert (again.restored, again.reason_code) == (False, "not_redeemed")
    assert CouponEvent.objects.filter(coupon=coupon).count() == 2


def test_a_return_after_expiry_keeps_the_coupon_used(make_template, member, store):
    coupon = services.coupon_issue(template=make_template(valid_days=3), member=member, at=T0)
    redeem([coupon], member, store, reference="sale:5")
    before = snapshot(coupon)
    result = services.coupon_restore(
        coupon=coupon, at=at(3), reference="return:9", redeemed_reference="sale:5"
    )
    assert (result.restored, result.reason_code) == (False, "expired")
    assert snapshot(coupon) == before
    assert CouponEvent.objects.filter(kind="restored").count() == 0


def test_restore_checks_the_sale(coupon, member, store):
    redeem([coupon], member, store, reference="sale:5")
    with pytest.raises(ValidationFailed):
        services.coupon_restore(
            coupon=coupon, at=T0, reference="return:1", redeemed_reference="sale:6"
        )
    with pytest.raises(NotFound):
        services.coupon_restore(coupon="NOPE", at=T0, reference="return:1")
    assert snapshot(coupon)[0] == CouponStatus.REDEEMED


# --- void and expiry ---------------------------------------------------------------------------


def test_void_is_audited_and_final(coupon, member, manager, clerk, store):
    with pytest.raises(PermissionDenied):
        services.coupon_void(coupon=coupon, reason="发错", actor=clerk, at=T0)
    with pytest.raises(ValidationFailed):
        services.coupon_void(coupon=coupon, reason="  ", actor=manager, at=T0)
    assert snapshot(coupon)[0] == CouponStatus.ISSUED
    assert AuditEntry.objects.filter(action="coupon_void").count() == 0

    services.coupon_void(coupon=coupon.code, reason="会员投诉补发后作废", actor=manager, at=at(1))
    assert snapshot(coupon)[0] == CouponStatus.VOID
    entry = AuditEntry.objects.get(action="coupon_void")
    assert (entry.actor, entry.member_id, entry.target) == (
        manager,
        member.pk,
        f"coupon:{coupon.pk}",
    )
    assert entry.detail == {
        "code": coupon.code,
        "template": coupon.template_id,
        "reason": "会员投诉补发后作废",
    }
    event = CouponEvent.objects.get(coupon=coupon)
    assert (event.kind, event.actor, event.reason) == ("voided", manager, "会员投诉补发后作废")
    with pytest.raises(DomainError) as exc:
        services.coupon_void(coupon=coupon, reason="再作废", actor=manager, at=at(1))
    assert exc.value.code == "coupon_not_issued"
    with pytest.raises(NotFound):
        services.coupon_void(coupon="NOPE", reason="x", actor=manager)


def test_used_coupons_cannot_be_voided(coupon, member, manager, store):
    redeem([coupon], member, store)
    with pytest.raises(DomainError) as exc:
        services.coupon_void(coupon=coupon, reason="x", actor=manager, at=T0)
    assert exc.value.code == "coupon_not_issued"
    assert snapshot(coupon)[0] == CouponStatus.REDEEMED


def test_expiry_job_marks_lapsed_coupons_once(make_template, member):
    short = services.coupon_issue(template=make_template(valid_days=1), member=member, at=T0)
    long = services.coupon_issue(template=make_template(valid_days=30), member=member, at=T0)
    assert services.coupons_expire_due(today=dt.date(2026, 3, 11)) == 1
    assert services.coupons_expire_due(today=dt.date(2026, 3, 11)) == 0
    assert (snapshot(short)[0], snapshot(long)[0]) == ("expired", "issued")
    assert list(CouponEvent.objects.values_list("coupon_id", "kind")) == [(short.pk, "expired")]


# --- selectors ---------------------------------------------------------------------------------


def test_member_coupons_groups_by_state(make_template, member, store):
    usable = services.coupon_issue(template=make_template(valid_days=30), member=member, at=T0)
    soon = services.coupon_issue(template=make_template(valid_days=5), member=member, at=T0)
    upcoming = services.coupon_issue(
        template=make_template(
            valid_days=None, valid_from=dt.date(2026, 4, 1), valid_until=dt.date(2026, 4, 2)
        ),
        member=member,
        at=T0,
    )
    used = services.coupon_issue(template=make_template(), member=member, at=T0)
    redeem([used], member, store)
    lapsed = services.coupon_issue(template=make_template(valid_days=1), member=member, at=at(-5))
    view = member_coupons(member.pk, at=T0)
    assert [c.pk for c in view.usable] == [soon.pk, usable.pk]
    assert [c.pk for c in view.upcoming] == [upcoming.pk]
    assert [c.pk for c in view.used] == [used.pk]
    assert [c.pk for c in view.expired] == [lapsed.pk]
    assert coupon_by_code(usable.code.lower()).pk == usable.pk
    assert coupon_by_code("") is None


def test_cost_attribution_sums_redeemed_amounts_by_issuer(make_template, member, store):
    hq = make_template(campaign_code="SPRING")
    vendor = make_template(funded_by="vendor", value=D("20.00"))
    c1 = services.coupon_issue(template=hq, member=member, at=T0)
    c2 = services.coupon_issue(template=hq, member=member, at=T0, source="campaign")
    c3 = services.coupon_issue(template=vendor, member=member, at=T0)
    c4 = services.coupon_issue(template=vendor, member=member, at=T0)
    c5 = services.coupon_issue(template=vendor, member=member, at=T0)
    redeem([c1], member, store, amount=D("10.00"), reference="sale:1")
    redeem([c2], member, store, amount=D("7.50"), reference="sale:2")
    redeem([c3, c4], member, store, amount=D("20.00"), when=at(1), reference="sale:3")
    redeem([c5], member, store, amount=D("20.00"), when=at(5), reference="sale:4")  # outside
    returned = services.coupon_issue(template=hq, member=member, at=T0)
    redeem([returned], member, store, reference="sale:6")
    services.coupons_restore_for(redeemed_reference="sale:6", at=T0, reference="return:1")

    rows = coupon_cost_by_issuer(date_from=dt.date(2026, 3, 10), date_to=dt.date(2026, 3, 11))
    assert [(r.group, r.count, r.amount) for r in rows] == [
        ({"funded_by": "vendor", "campaign_code": "", "source": "manual"}, 2, D("40.00")),
        ({"funded_by": "hq", "campaign_code": "SPRING", "source": "manual"}, 1, D("10.00")),
        ({"funded_by": "hq", "campaign_code": "SPRING", "source": "campaign"}, 1, D("7.50")),
    ]
    by_store = coupon_cost_by_issuer(
        date_from=dt.date(2026, 3, 10), date_to=dt.date(2026, 3, 15), by=["redeemed_store"]
    )
    assert [(r.group, r.count, r.amount) for r in by_store] == [
        ({"redeemed_store": store.pk}, 5, D("77.50"))
    ]
    with pytest.raises(ValueError, match="unknown cost dimensions"):
        coupon_cost_by_issuer(date_from=T0.date(), date_to=T0.date(), by=["member"])


def test_cost_report_uses_business_dates(make_template, member):
    store = make_store()
    coupon = services.coupon_issue(template=make_template(), member=member, at=T0)
    # 23:30 on 10 March in Shanghai is 15:30 UTC: it belongs to 10 March.
    late = dt.datetime(2026, 3, 10, 15, 30, tzinfo=dt.UTC)
    redeem([coupon], member, store, when=late)
    day = coupon_cost_by_issuer(date_from=dt.date(2026, 3, 10), date_to=dt.date(2026, 3, 10))
    next_day = coupon_cost_by_issuer(date_from=dt.date(2026, 3, 11), date_to=dt.date(2026, 3, 11))
    assert ([r.amount for r in day], next_day) == ([D("10.00")], [])
    assert Coupon.objects.get(pk=coupon.pk).redeemed_at == late
