"""Templates and issuance (V-1, V-2): by hand with per-member limits, in bulk, printed batches
and claims, validity, 满即送."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, transaction

from carecard.core.errors import DomainError, NotFound, PermissionDenied, ValidationFailed
from carecard.core.models import AuditEntry
from carecard.coupons import rules, services
from carecard.coupons.models import (
    Coupon,
    CouponBatch,
    CouponEvent,
    CouponQuota,
    CouponSource,
    CouponStatus,
    CouponTemplate,
    EventKind,
    PurchaseRule,
)
from carecard.members.models import MemberStatus
from tests.coupons.conftest import T0, D, at
from tests.factories import make_member, make_staff

pytestmark = pytest.mark.django_db


# --- templates ---------------------------------------------------------------------------------


def test_template_create_stores_terms_and_audits(make_template, store, hq_admin):
    template = make_template(
        name="厂家满200减30",
        value=D("30.00"),
        min_spend=D("200.00"),
        scope={"categories": [5], "exclude_skus": ["P-X"], "skus": []},
        store_ids=[store.pk],
        per_member_limit=2,
        funded_by="vendor",
        vendor_name="某药业",
        campaign_code="SPRING26",
        actor=hq_admin,
    )
    template.refresh_from_db()
    assert template.scope == {"categories": [5], "exclude_skus": ["P-X"]}
    assert list(template.stores.values_list("pk", flat=True)) == [store.pk]
    assert (template.funded_by, template.campaign_code, template.per_member_limit) == (
        "vendor",
        "SPRING26",
        2,
    )
    entry = AuditEntry.objects.get(target=f"coupon_template:{template.pk}")
    assert entry.action == "settings"
    assert entry.actor == hq_admin


def test_template_create_reports_every_bad_field_and_writes_nothing(db):
    with pytest.raises(ValidationFailed) as exc:
        services.coupon_template_create(
            name="",
            kind="percent_off",
            rate=D("1.2"),
            value=D("5.00"),
            store_ids=[999999],
            valid_days=0,
        )
    fields = sorted(e.field for e in exc.value.errors)
    assert fields == ["name", "rate", "store_ids", "valid_days", "valid_until", "value"]
    assert CouponTemplate.objects.count() == 0
    with pytest.raises(ValidationFailed) as exc:
        services.coupon_template_create(
            name="x", kind="amount_off", value=D("5.00"), valid_days=3, store_ids=["a"]
        )
    assert [(e.field, e.code) for e in exc.value.errors] == [("store_ids", "invalid")]


def test_template_model_clean_uses_the_same_rules(db):
    template = CouponTemplate(name="坏券", kind="gift", value=D("5.00"), valid_days=7)
    with pytest.raises(Exception, match="礼品券、服务券须指定商品或分类") as exc:
        template.clean()
    assert list(exc.value.message_dict) == ["scope"]


# --- issue by hand and the per-member limit ----------------------------------------------------


def test_issue_sets_validity_source_and_attribution(make_template, member, store, clerk):
    template = make_template(valid_days=7, campaign_code="WELCOME")
    coupon = services.coupon_issue(
        template=template,
        member=member,
        at=T0,
        source=CouponSource.POINTS_REDEMPTION,
        reference="points_entry:12",
        actor=clerk,
        store=store,
    )
    coupon.refresh_from_db()
    assert coupon.status == CouponStatus.ISSUED
    assert (coupon.valid_from, coupon.valid_until) == (dt.date(2026, 3, 10), dt.date(2026, 3, 16))
    assert (coupon.source, coupon.source_reference, coupon.campaign_code) == (
        "points_redemption",
        "points_entry:12",
        "WELCOME",
    )
    assert (coupon.issued_by, coupon.issued_store, coupon.member) == (clerk, store, member)
    assert rules.code_checks(coupon.code)


def test_issue_with_fixed_dates(make_template, member):
    template = make_template(
        valid_days=None, valid_from=dt.date(2026, 4, 1), valid_until=dt.date(2026, 4, 30)
    )
    coupon = services.coupon_issue(template=template, member=member, at=T0)
    assert (coupon.valid_from, coupon.valid_until) == (dt.date(2026, 4, 1), dt.date(2026, 4, 30))


def test_issue_uses_the_business_date_not_utc(make_template, member):
    # 00:30 on 11 March in Shanghai is still 10 March in UTC.
    template = make_template(valid_days=1)
    coupon = services.coupon_issue(
        template=template, member=member, at=dt.datetime(2026, 3, 10, 16, 30, tzinfo=dt.UTC)
    )
    assert coupon.valid_from == coupon.valid_until == dt.date(2026, 3, 11)


def test_per_member_limit_counts_non_void_coupons(make_template, member, other_member, manager):
    template = make_template(per_member_limit=2)
    first = services.coupon_issue(template=template, member=member, at=T0)
    services.coupon_issue(template=template, member=member, at=T0)
    with pytest.raises(DomainError) as exc:
        services.coupon_issue(template=template, member=member, at=T0)
    assert exc.value.code == "coupon_limit_reached"
    assert exc.value.detail == {"limit": 2, "held": 2}
    assert Coupon.objects.filter(member=member).count() == 2  # nothing written
    # Another member has their own allowance; a voided coupon frees a slot.
    services.coupon_issue(template=template, member=other_member, at=T0)
    services.coupon_void(coupon=first, reason="发错了", actor=manager, at=T0)
    services.coupon_issue(template=template, member=member, at=T0)
    assert Coupon.objects.filter(member=member).exclude(status="void").count() == 2
    assert CouponQuota.objects.filter(template=template).count() == 2


def test_issue_refusals_write_nothing(make_template, member, store):
    stopped = make_template()
    services.coupon_template_set_active(template=stopped, active=False, actor=None)
    ended = make_template(valid_days=None, valid_until=dt.date(2026, 3, 9))
    gone = make_member(store, name="赵六")
    gone.status = MemberStatus.CANCELLED
    gone.save(update_fields=["status"])
    live = make_template()
    cases = [
        (dict(template=stopped, member=member), "coupon_template_inactive"),
        (dict(template=ended, member=member), "coupon_template_ended"),
        (dict(template=live, member=gone), "member_inactive"),
        (dict(template=live, member=member, source="printed_batch"), "validation_error"),
        (dict(template=live, member=member, source="lottery"), "validation_error"),
        (dict(template=live, member=member, reference="x" * 65), "validation_error"),
    ]
    for kwargs, code in cases:
        with pytest.raises(DomainError) as exc:
            services.coupon_issue(at=T0, **kwargs)
        assert exc.value.code == code
    with pytest.raises(DomainError) as exc:
        services.coupon_issue(template=live, member=member, at=dt.datetime(2026, 3, 10, 10))  # noqa: DTZ001
    assert exc.value.errors[0].field == "at"
    assert Coupon.objects.count() == 0


# --- bulk --------------------------------------------------------------------------------------


def test_bulk_issue_skips_members_at_the_limit_and_inactive_ones(make_template, store):
    template = make_template(per_member_limit=1)
    members = [make_member(store, name=f"会员{i}") for i in range(5)]
    services.coupon_issue(template=template, member=members[0], at=T0)
    members[1].status = MemberStatus.MERGED
    members[1].save(update_fields=["status"])
    ids = [m.pk for m in members] + [members[2].pk, 99999999]
    result = services.coupon_issue_bulk(
        template=template, member_ids=ids, at=T0, reference="campaign:SPRING", chunk_size=2
    )
    assert result == services.BulkIssueResult(
        issued=3, skipped_limit=1, skipped_inactive=2, skipped_duplicate=0
    )
    issued = Coupon.objects.filter(source="bulk", source_reference="campaign:SPRING")
    assert sorted(issued.values_list("member_id", flat=True)) == sorted(m.pk for m in members[2:])
    assert len(set(issued.values_list("code", flat=True))) == 3
    assert {c.valid_until for c in issued} == {dt.date(2026, 4, 8)}


def test_bulk_issue_with_a_reference_can_be_rerun(make_template, store):
    template = make_template()
    members = [make_member(store, name=f"会员{i}") for i in range(3)]
    ids = [m.pk for m in members]
    first = services.coupon_issue_bulk(template=template, member_ids=ids[:2], at=T0, reference="r1")
    again = services.coupon_issue_bulk(template=template, member_ids=ids, at=T0, reference="r1")
    assert (first.issued, again.issued, again.skipped_duplicate) == (2, 1, 2)
    assert Coupon.objects.filter(template=template).count() == 3


def test_bulk_issue_rejects_bad_ids_before_writing(make_template, member):
    template = make_template()
    with pytest.raises(ValidationFailed):
        services.coupon_issue_bulk(template=template, member_ids=[member.pk, "7"], at=T0)
    assert Coupon.objects.count() == 0


# --- printed batches and claims ----------------------------------------------------------------


def test_printed_batch_has_unique_codes_without_owner(make_template, manager):
    template = make_template(valid_days=60)
    batch = services.coupon_batch_create(
        template=template, count=250, prefix="xmas", actor=manager, at=T0, note="门店海报"
    )
    coupons = Coupon.objects.filter(batch=batch)
    codes = list(coupons.values_list("code", flat=True))
    assert batch.count == len(codes) == len(set(codes)) == 250
    assert all(c.startswith("XMAS") and rules.code_checks(c) for c in codes)
    assert set(coupons.values_list("member_id", flat=True)) == {None}
    assert set(coupons.values_list("source", "source_reference")) == {
        ("printed_batch", f"batch:{batch.pk}")
    }
    assert set(coupons.values_list("valid_until", flat=True)) == {dt.date(2026, 5, 8)}
    assert AuditEntry.objects.get(target=f"coupon_batch:{batch.pk}").detail["count"] == 250


def test_printed_batch_refusals(make_template, manager, clerk):
    template = make_template()
    with pytest.raises(PermissionDenied):
        services.coupon_batch_create(template=template, count=5, actor=clerk, at=T0)
    for kwargs in ({"count": 0}, {"count": 100_001}, {"count": 5, "prefix": "太长的前缀"}):
        with pytest.raises(ValidationFailed):
            services.coupon_batch_create(template=template, actor=manager, at=T0, **kwargs)
    assert CouponBatch.objects.count() == Coupon.objects.count() == 0


def test_claim_attaches_a_printed_code_once(make_template, manager, member, other_member, store):
    template = make_template(per_member_limit=1)
    batch = services.coupon_batch_create(template=template, count=3, actor=manager, at=T0)
    first, second, _third = Coupon.objects.filter(batch=batch).order_by("pk")
    typed = first.code.lower()[:4] + "-" + first.code.lower()[4:]
    claimed = services.coupon_claim(code=typed, member=member, at=at(1), store=store)
    assert (claimed.pk, claimed.member, claimed.claimed_at) == (first.pk, member, at(1))
    event = CouponEvent.objects.get(coupon=first)
    assert (event.kind, event.member_id, event.store_id) == (EventKind.CLAIMED, member.pk, store.pk)
    # Claiming again is a no-op; another member cannot take it; the limit applies.
    assert services.coupon_claim(code=first.code, member=member, at=at(2)).claimed_at == at(1)
    with pytest.raises(DomainError) as exc:
        services.coupon_claim(code=first.code, member=other_member, at=at(2))
    assert exc.value.code == "coupon_already_claimed"
    with pytest.raises(DomainError) as exc:
        services.coupon_claim(code=second.code, member=member, at=at(2))
    assert exc.value.code == "coupon_limit_reached"
    with pytest.raises(NotFound):
        services.coupon_claim(code="NOPE", member=member, at=at(2))
    second.refresh_from_db()
    assert second.member_id is None
    assert CouponEvent.objects.count() == 1


def test_claim_refuses_expired_codes(make_template, manager, member):
    template = make_template(valid_days=3)
    batch = services.coupon_batch_create(template=template, count=1, actor=manager, at=T0)
    code = batch.coupons.get().code
    with pytest.raises(DomainError) as exc:
        services.coupon_claim(code=code, member=member, at=at(3))
    assert exc.value.code == "coupon_expired"
    assert batch.coupons.get().member_id is None


# --- 满即送 -------------------------------------------------------------------------------------


def test_purchase_rule_issues_per_full_amount_once_per_receipt(make_template, member, store):
    template = make_template(name="下次满50减5", value=D("5.00"), min_spend=D("50.00"))
    PurchaseRule.objects.create(
        name="每满100送1张",
        template=template,
        min_amount=D("100.00"),
        repeat=True,
        max_per_receipt=3,
    )
    issued = services.coupons_issue_for_purchase(
        member_id=member.pk, store_id=store.pk, amount=D("250.00"), at=T0, reference="sale:5"
    )
    assert len(issued) == 2
    assert {(c.source, c.source_reference, c.issued_store_id) for c in issued} == {
        ("purchase", "sale:5", store.pk)
    }
    again = services.coupons_issue_for_purchase(
        member_id=member.pk, store_id=store.pk, amount=D("250.00"), at=T0, reference="sale:5"
    )
    assert again == []
    assert Coupon.objects.filter(member=member).count() == 2


def test_purchase_rule_respects_stores_dates_and_limits(make_template, member, store, other_store):
    template = make_template(per_member_limit=1)
    rule = PurchaseRule.objects.create(
        name="满100送券",
        template=template,
        min_amount=D("100.00"),
        quantity=2,
        starts_on=dt.date(2026, 3, 1),
        ends_on=dt.date(2026, 3, 31),
    )
    rule.stores.set([store])

    def buy(store_id, when, ref):
        return services.coupons_issue_for_purchase(
            member_id=member.pk, store_id=store_id, amount=D("100.00"), at=when, reference=ref
        )

    assert buy(other_store.pk, T0, "sale:1") == []
    assert buy(store.pk, at(30), "sale:2") == []  # 9 April: rule ended
    assert buy(store.pk, T0, "sale:3") != []  # two earned, the limit allows one
    assert Coupon.objects.filter(member=member).count() == 1
    assert buy(store.pk, T0, "sale:4") == []
    assert (
        services.coupons_issue_for_purchase(
            member_id=member.pk, store_id=store.pk, amount=D("99.99"), at=T0, reference="sale:5"
        )
        == []
    )
    with pytest.raises(ValidationFailed):
        services.coupons_issue_for_purchase(
            member_id=member.pk, store_id=store.pk, amount=100, at=T0, reference="sale:6"
        )


def test_manual_staff_and_inactive_actor_are_not_managers(make_template, store):
    template = make_template()
    boss = make_staff("store_manager", store)
    boss.is_active = False
    with pytest.raises(PermissionDenied):
        services.coupon_batch_create(template=template, count=1, actor=boss, at=T0)
    with pytest.raises(PermissionDenied):
        services.coupon_batch_create(template=template, count=1, actor=None, at=T0)


# --- database constraints ----------------------------------------------------------------------


def test_database_constraints_guard_single_row_invariants(make_template, member):
    template = make_template()
    coupon = services.coupon_issue(template=template, member=member, at=T0)
    bad_updates = [
        {"status": "redeemed"},  # redeemed without time and amount
        {"status": "redeemed", "redeemed_at": T0},  # … or without the amount
        {"redeemed_amount": D("1.00")},  # amount on an unused coupon
        {"valid_until": dt.date(2026, 3, 1)},  # ends before it starts
        {"member": None},  # only printed codes may lack an owner
    ]
    for changes in bad_updates:
        with pytest.raises(IntegrityError), transaction.atomic():
            Coupon.objects.filter(pk=coupon.pk).update(**changes)
    with pytest.raises(IntegrityError), transaction.atomic():
        Coupon.objects.create(
            template=template,
            member=member,
            code=coupon.code,
            issued_at=T0,
            valid_from=T0.date(),
            valid_until=T0.date(),
            source="manual",
        )
    bad_templates = [
        {"kind": "percent_off", "value": D("5.00"), "rate": None},
        {"kind": "amount_off", "value": None},
        {"kind": "amount_off", "valid_days": None, "valid_until": None},
        {"kind": "amount_off", "per_member_limit": 0},
    ]
    for changes in bad_templates:
        with pytest.raises(IntegrityError), transaction.atomic():
            CouponTemplate.objects.filter(pk=template.pk).update(**changes)
