"""Coupon use cases (V-1..V-3): templates, issue (by hand, in bulk, by points, by purchase,
printed batches), claim, the till's validation and single-use redemption, restore on return,
void and expiry.

Transactions and locks (``coupons.locks``): issue and claim lock the member's quota row of
the template before counting; redeem, restore, void and claim lock the coupon rows, in
primary-key order, and re-check them under the lock. The services the checkout composes
(``coupons_redeem``, ``coupon_restore``, ``coupons_restore_for``, ``coupon_issue``,
``coupons_issue_for_purchase``) use plain ``atomic`` so they join the checkout's durable
transaction; ``coupon_void`` is an outermost operation of its own.

Every coupon write also guards in SQL (``UPDATE … WHERE status = 'issued'``), so even without
row locks (SQLite) a coupon can never be redeemed twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from carecard.chain.models import Store
from carecard.checkout import engine
from carecard.core.audit import AuditAction, audit
from carecard.core.errors import (
    DomainError,
    FieldError,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from carecard.core.money import ZERO, is_money
from carecard.core.roles import Role
from carecard.coupons import rules
from carecard.coupons.errors import (
    CouponAlreadyUsed,
    CouponError,
    CouponLimitReached,
    CouponNotIssued,
    CouponUnusable,
)
from carecard.coupons.locks import lock_coupons, lock_quotas
from carecard.coupons.models import (
    Coupon,
    CouponBatch,
    CouponEvent,
    CouponSource,
    CouponStatus,
    CouponTemplate,
    EventKind,
    PurchaseRule,
)
from carecard.members.models import Member, MemberStatus

MAX_CODES = 20  # coupons presented on one receipt
MAX_BATCH = 100_000  # printed codes per batch
PURCHASE_MAX = 50  # coupons of one template one receipt can earn, whatever a rule says
CHUNK = 1000
_CODE_ATTEMPTS = 5
_LIVE = (MemberStatus.ACTIVE, MemberStatus.PENDING)
# Who may void coupons and print batches. core.roles has no coupon permission yet; these are
# the roles that manage campaigns and store exceptions.
MANAGER_ROLES = frozenset({Role.STORE_MANAGER, Role.MARKETING, Role.HQ_ADMIN})
AUDIT_COUPON_VOID = AuditAction.COUPON_VOID
AUDIT_COUPON_BATCH = AuditAction.COUPON_BATCH


# --------------------------------------------------------------------------- helpers


def _bad(field: str, code: str, message: str) -> ValidationFailed:
    return ValidationFailed([FieldError(field, code, message)])


def _day(at: dt.datetime) -> dt.date:
    """The business date of ``at`` (aware; Asia/Shanghai unless configured otherwise)."""
    if not isinstance(at, dt.datetime) or timezone.is_naive(at):
        raise _bad("at", "invalid", _("时间必须是带时区的时间"))
    return timezone.localdate(at)


def _text(value: object, field: str, max_length: int, *, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value.strip()) > max_length:
        raise _bad(field, "invalid", _("最多 %(n)d 个字符") % {"n": max_length})
    if required and not value.strip():
        raise _bad(field, "required", _("此项必填"))
    return value.strip()


def _is_manager(actor: Any) -> bool:
    return bool(
        actor is not None
        and getattr(actor, "is_active", False)
        and getattr(actor, "role", None) in MANAGER_ROLES
    )


def _check_issuable(template: CouponTemplate, day: dt.date) -> None:
    if not template.active:
        raise CouponError("coupon_template_inactive", _("该券模板已停用"), "template")
    if template.valid_until is not None and day > template.valid_until:
        raise CouponError(
            "coupon_template_ended",
            _("该券 %(d)s 已截止，不能再发放") % {"d": template.valid_until.isoformat()},
            "template",
        )


def _window(template: CouponTemplate, day: dt.date) -> tuple[dt.date, dt.date]:
    return rules.validity_window(
        day,
        valid_from=template.valid_from,
        valid_until=template.valid_until,
        valid_days=template.valid_days,
    )


def _held(template_id: int, member_ids: Iterable[int]) -> dict[int, int]:
    """Non-void coupons of the template per member (the per-member limit counts these)."""
    return dict(
        Coupon.objects.filter(template_id=template_id, member_id__in=list(member_ids))
        .exclude(status=CouponStatus.VOID)
        .values("member_id")
        .annotate(n=Count("pk"))
        .values_list("member_id", "n")
    )


def _insert(rows: list[Coupon], prefix: str = "") -> list[Coupon]:
    """Give ``rows`` fresh random codes and insert them, retrying on a code collision.

    Codes already taken are replaced before the insert; a collision with a concurrent insert
    rolls back only the savepoint, and the rows are retried with new codes.
    """
    for _attempt in range(_CODE_ATTEMPTS):
        codes: set[str] = set()
        while len(codes) < len(rows):
            codes.add(rules.generate_code(prefix))
        taken = set(Coupon.objects.filter(code__in=codes).values_list("code", flat=True))
        codes -= taken
        while len(codes) < len(rows):
            code = rules.generate_code(prefix)
            if code not in taken:
                codes.add(code)
        for row, code in zip(rows, sorted(codes), strict=True):
            row.code = code
        try:
            with transaction.atomic():
                return Coupon.objects.bulk_create(rows)
        except IntegrityError:
            if not Coupon.objects.filter(code__in=codes).exists():
                raise  # not a code collision: a real error
    raise DomainError(  # pragma: no cover — 32^11 codes: five collisions in a row
        code="coupon_code_collision", message=_("券码生成冲突，请重试"), status=409
    )


def _event(coupon: Coupon, kind: str, at: dt.datetime, **fields: Any) -> CouponEvent:
    return CouponEvent(coupon=coupon, member_id=coupon.member_id, kind=kind, at=at, **fields)


def _store_ids(store: Store | int | None) -> int | None:
    if store is None:
        return None
    return store if isinstance(store, int) else store.pk


# --------------------------------------------------------------------------- templates


def coupon_template_create(
    *,
    name: str,
    kind: str,
    value: Decimal | None = None,
    rate: Decimal | None = None,
    max_off: Decimal | None = None,
    min_spend: Decimal = ZERO,
    scope: dict[str, list[Any]] | None = None,
    applies_to_flagged: bool | None = None,
    valid_from: dt.date | None = None,
    valid_until: dt.date | None = None,
    valid_days: int | None = None,
    store_ids: Sequence[int] = (),
    per_member_limit: int | None = None,
    stacking_group: str = "default",
    funded_by: str = "hq",
    vendor_name: str = "",
    campaign_code: str = "",
    points_funded: bool = False,
    members_only: bool = True,
    description: str = "",
    actor: Any = None,
) -> CouponTemplate:
    """Create a coupon template (V-1). Every bad field is reported at once; the template is
    also converted to an engine coupon once so the till can never meet a broken one. Audited
    as a settings change."""
    terms = rules.TemplateTerms(
        name=name,
        kind=kind,
        value=value,
        rate=rate,
        max_off=max_off,
        min_spend=min_spend,
        scope=scope or {},
        stacking_group=stacking_group,
        funded_by=funded_by,
        points_funded=points_funded,
        members_only=members_only,
        applies_to_flagged=applies_to_flagged,
    )
    errors = rules.terms_errors(
        terms,
        valid_from=valid_from,
        valid_until=valid_until,
        valid_days=valid_days,
        per_member_limit=per_member_limit,
    )
    for field, text, limit in (
        ("name", name, 100),
        ("stacking_group", stacking_group, 32),
        ("funded_by", funded_by, 32),
        ("vendor_name", vendor_name, 100),
        ("campaign_code", campaign_code, 32),
        ("description", description, 300),
    ):
        if any(e.field == field for e in errors):
            continue
        if not isinstance(text, str):
            errors.append(FieldError(field, "invalid", _("应为文本")))
        elif len(text.strip()) > limit:
            errors.append(FieldError(field, "too_long", _("最多 %(n)d 个字符") % {"n": limit}))
    ids = sorted({i for i in store_ids or () if isinstance(i, int) and not isinstance(i, bool)})
    if len(ids) != len(set(store_ids or ())):
        errors.append(FieldError("store_ids", "invalid", _("门店编号应为整数")))
    elif ids and Store.objects.filter(pk__in=ids).count() != len(ids):
        errors.append(FieldError("store_ids", "unknown", _("有门店不存在")))
    if not errors:
        try:
            rules.engine_coupon(terms, "CHECK")
        except (rules.CouponTemplateError, engine.PricingError) as exc:
            errors.extend(exc.errors)
    if errors:
        raise ValidationFailed(errors)
    with transaction.atomic():
        template = CouponTemplate.objects.create(
            name=name.strip(),
            kind=kind,
            value=value,
            rate=rate,
            max_off=max_off,
            min_spend=min_spend,
            scope={k: v for k, v in (scope or {}).items() if v},
            applies_to_flagged=applies_to_flagged,
            valid_from=valid_from,
            valid_until=valid_until,
            valid_days=valid_days,
            per_member_limit=per_member_limit,
            stacking_group=stacking_group.strip(),
            funded_by=funded_by.strip(),
            vendor_name=vendor_name.strip(),
            campaign_code=campaign_code.strip(),
            points_funded=points_funded,
            members_only=members_only,
            description=description.strip(),
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        if ids:
            template.stores.set(ids)
        audit(
            action=AuditAction.SETTINGS,
            actor=actor,
            target=f"coupon_template:{template.pk}",
            detail={"created": template.name, "kind": kind},
        )
    return template


def coupon_template_set_active(*, template: CouponTemplate, active: bool, actor: Any) -> None:
    """Start or stop a template (stopped: no issue, and its coupons are refused at the till)."""
    with transaction.atomic():
        CouponTemplate.objects.filter(pk=template.pk).update(
            active=bool(active), updated_at=timezone.now()
        )
        template.active = bool(active)
        audit(
            action=AuditAction.SETTINGS,
            actor=actor,
            target=f"coupon_template:{template.pk}",
            detail={"active": bool(active)},
        )


# --------------------------------------------------------------------------- issue


def _issue_source(source: object) -> str:
    if source not in CouponSource.values or source == CouponSource.PRINTED_BATCH:
        raise _bad("source", "invalid", _("未知的发券来源"))
    return str(source)


def _issue_many(
    *,
    template: CouponTemplate,
    member_id: int,
    count: int,
    at: dt.datetime,
    day: dt.date,
    source: str,
    reference: str,
    campaign_code: str,
    actor: Any,
    store_id: int | None,
    partial: bool,
) -> list[Coupon]:
    """Issue up to ``count`` coupons to one member inside the caller's transaction, under the
    quota lock when the template has a limit. ``partial``: issue what the limit allows
    instead of refusing."""
    if template.per_member_limit:
        lock_quotas(template.pk, [member_id])
        held = _held(template.pk, [member_id]).get(member_id, 0)
        room = template.per_member_limit - held
        if room < count and not partial:
            raise CouponLimitReached(limit=template.per_member_limit, held=held)
        count = max(0, min(count, room))
    if count == 0:
        return []
    valid_from, valid_until = _window(template, day)
    rows = [
        Coupon(
            template=template,
            member_id=member_id,
            status=CouponStatus.ISSUED,
            issued_at=at,
            valid_from=valid_from,
            valid_until=valid_until,
            source=source,
            source_reference=reference,
            campaign_code=campaign_code,
            issued_by=actor if getattr(actor, "is_authenticated", False) else None,
            issued_store_id=store_id,
        )
        for _i in range(count)
    ]
    return _insert(rows)


def coupon_issue(
    *,
    template: CouponTemplate,
    member: Member,
    at: dt.datetime | None = None,
    source: str = CouponSource.MANUAL,
    reference: str = "",
    actor: Any = None,
    store: Store | int | None = None,
    campaign_code: str | None = None,
) -> Coupon:
    """Issue one coupon of ``template`` to ``member`` (V-2): by hand, by points redemption
    (``reference="points_entry:12"``), by campaign or automation.

    Refused when the template is stopped or past its last day, the member is cancelled or
    merged, or the member already holds ``per_member_limit`` non-void coupons of the template
    (``coupon_limit_reached``). Takes the member's quota lock for the template; joins the
    caller's transaction. ``campaign_code`` defaults to the template's (cost attribution).
    """
    at = at or timezone.now()
    day = _day(at)
    source = _issue_source(source)
    reference = _text(reference, "reference", 64)
    code = _text(campaign_code or template.campaign_code, "campaign_code", 32)
    _check_issuable(template, day)
    if not member.is_live:
        raise CouponError("member_inactive", _("该会员已注销或已合并"), "member_id")
    with transaction.atomic():
        (coupon,) = _issue_many(
            template=template,
            member_id=member.pk,
            count=1,
            at=at,
            day=day,
            source=source,
            reference=reference,
            campaign_code=code,
            actor=actor,
            store_id=_store_ids(store),
            partial=False,
        )
    return coupon


@dataclass(frozen=True)
class BulkIssueResult:
    """What a bulk issue did: coupons issued and members skipped, by reason."""

    issued: int
    skipped_limit: int  # already at the per-member limit
    skipped_inactive: int  # unknown, cancelled or merged members
    skipped_duplicate: int  # already got a coupon of this template with this reference


def coupon_issue_bulk(
    *,
    template: CouponTemplate,
    member_ids: Iterable[int],
    at: dt.datetime | None = None,
    source: str = CouponSource.BULK,
    reference: str = "",
    actor: Any = None,
    store: Store | int | None = None,
    campaign_code: str | None = None,
    chunk_size: int = CHUNK,
) -> BulkIssueResult:
    """Issue one coupon of ``template`` to each member of a list (a segment, an import), set
    by set: per chunk one query for live members, one lock of the quota rows, one count and
    one ``bulk_create``. Members at the limit are skipped, not an error.

    Each chunk is its own transaction when called outside one, so a huge list does not hold
    locks for long; with a ``reference`` (e.g. ``campaign:SPRING``) a re-run after a failure
    skips members who already got theirs, so the run can simply be repeated (one run per
    reference at a time: without a limit no lock serialises two runs).
    """
    at = at or timezone.now()
    day = _day(at)
    source = _issue_source(source)
    reference = _text(reference, "reference", 64)
    code = _text(campaign_code or template.campaign_code, "campaign_code", 32)
    _check_issuable(template, day)
    ids: list[int] = []
    seen: set[int] = set()
    for raw in member_ids:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _bad("member_ids", "invalid", _("会员编号应为整数"))
        if raw not in seen:
            seen.add(raw)
            ids.append(raw)
    valid_from, valid_until = _window(template, day)
    store_id = _store_ids(store)
    issued_by = actor if getattr(actor, "is_authenticated", False) else None
    issued = skipped_limit = skipped_inactive = skipped_duplicate = 0
    for start in range(0, len(ids), max(1, chunk_size)):
        chunk = ids[start : start + max(1, chunk_size)]
        live = set(
            Member.objects.filter(pk__in=chunk, status__in=_LIVE).values_list("pk", flat=True)
        )
        skipped_inactive += len(chunk) - len(live)
        with transaction.atomic():
            if template.per_member_limit:
                lock_quotas(template.pk, live)
            if reference:
                done = set(
                    Coupon.objects.filter(
                        source_reference=reference, template=template, member_id__in=live
                    ).values_list("member_id", flat=True)
                )
                skipped_duplicate += len(done)
                live -= done
            if template.per_member_limit:
                held = _held(template.pk, live)
                full = {m for m in live if held.get(m, 0) >= template.per_member_limit}
                skipped_limit += len(full)
                live -= full
            rows = [
                Coupon(
                    template=template,
                    member_id=member_id,
                    status=CouponStatus.ISSUED,
                    issued_at=at,
                    valid_from=valid_from,
                    valid_until=valid_until,
                    source=source,
                    source_reference=reference,
                    campaign_code=code,
                    issued_by=issued_by,
                    issued_store_id=store_id,
                )
                for member_id in sorted(live)
            ]
            if rows:
                _insert(rows)
            issued += len(rows)
    return BulkIssueResult(issued, skipped_limit, skipped_inactive, skipped_duplicate)


def coupons_issue_for_purchase(
    *,
    member_id: int,
    store_id: int,
    amount: Decimal,
    at: dt.datetime,
    reference: str,
    actor: Any = None,
) -> list[Coupon]:
    """消费送券 / 满即送: issue the coupons a receipt of ``amount`` earns under the active
    purchase rules of this store and day, inside the checkout's transaction.

    ``amount`` is what the caller counts towards thresholds (usually the self-paid net).
    Idempotent per (``reference``, template): a replay issues nothing more. A member at a
    template's limit gets what the limit still allows; a stopped template gives nothing; one
    receipt never earns more than ``PURCHASE_MAX`` coupons of a template (a guard against a
    rule without ``max_per_receipt`` meeting a wholesale receipt).
    Nothing here fails a sale: a walk-in, an inactive member or no rule gives ``[]``.
    """
    if not is_money(amount) or amount < 0:
        raise _bad("amount", "invalid", _("金额应为不小于 0 的两位小数"))
    reference = _text(reference, "reference", 64, required=True)
    day = _day(at)
    if not Member.objects.filter(pk=member_id, status__in=_LIVE).exists():
        return []
    through = PurchaseRule.stores.through
    matching = (
        PurchaseRule.objects.filter(active=True, template__active=True)
        .filter(Q(starts_on__isnull=True) | Q(starts_on__lte=day))
        .filter(Q(ends_on__isnull=True) | Q(ends_on__gte=day))
        .annotate(
            limited=Exists(through.objects.filter(purchaserule_id=OuterRef("pk"))),
            listed=Exists(
                through.objects.filter(purchaserule_id=OuterRef("pk"), store_id=store_id)
            ),
        )
        .select_related("template")
        .order_by("pk")
    )
    wanted: dict[int, int] = {}
    templates: dict[int, CouponTemplate] = {}
    for rule in matching:
        if rule.limited and not rule.listed:
            continue
        template = rule.template
        if template.valid_until is not None and day > template.valid_until:
            continue
        n = rules.purchase_count(
            amount,
            min_amount=rule.min_amount,
            quantity=rule.quantity,
            repeat=rule.repeat,
            max_count=rule.max_per_receipt,
        )
        if n:
            wanted[template.pk] = min(PURCHASE_MAX, wanted.get(template.pk, 0) + n)
            templates[template.pk] = template
    issued: list[Coupon] = []
    with transaction.atomic():
        for template_id in sorted(wanted):
            template = templates[template_id]
            # The quota lock also serialises two replays of the same receipt.
            lock_quotas(template_id, [member_id])
            if Coupon.objects.filter(
                source_reference=reference,
                template_id=template_id,
                member_id=member_id,
                source=CouponSource.PURCHASE,
            ).exists():
                continue
            issued += _issue_many(
                template=template,
                member_id=member_id,
                count=wanted[template_id],
                at=at,
                day=day,
                source=CouponSource.PURCHASE,
                reference=reference,
                campaign_code=template.campaign_code,
                actor=actor,
                store_id=store_id,
                partial=True,
            )
    return issued


def coupon_batch_create(
    *,
    template: CouponTemplate,
    count: int,
    prefix: str = "",
    actor: Any = None,
    at: dt.datetime | None = None,
    note: str = "",
) -> CouponBatch:
    """Print a batch of ``count`` unique codes (纸质券): coupons without an owner until a member
    claims one (``coupon_claim``) or uses it at the till. ``valid_days`` count from the batch's
    date. Needs a manager role; audited."""
    at = at or timezone.now()
    day = _day(at)
    if not _is_manager(actor):
        raise PermissionDenied(_("没有制作纸质券的权限"))
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_BATCH:
        raise _bad("count", "invalid", _("张数应为 1–%(n)d") % {"n": MAX_BATCH})
    clean_prefix = rules.normalize_prefix(prefix or "")
    if clean_prefix is None:
        raise _bad("prefix", "invalid", _("前缀最多 8 位字母或数字"))
    note = _text(note, "note", 200)
    _check_issuable(template, day)
    valid_from, valid_until = _window(template, day)
    with transaction.atomic():
        batch = CouponBatch.objects.create(
            template=template,
            count=count,
            prefix=clean_prefix,
            note=note,
            created_by=actor,
            created_at=at,
        )
        for start in range(0, count, CHUNK):
            rows = [
                Coupon(
                    template=template,
                    member=None,
                    status=CouponStatus.ISSUED,
                    issued_at=at,
                    valid_from=valid_from,
                    valid_until=valid_until,
                    source=CouponSource.PRINTED_BATCH,
                    source_reference=f"batch:{batch.pk}",
                    campaign_code=template.campaign_code,
                    batch=batch,
                    issued_by=actor,
                )
                for _i in range(min(CHUNK, count - start))
            ]
            _insert(rows, clean_prefix)
        audit(
            action=AUDIT_COUPON_BATCH,
            actor=actor,
            target=f"coupon_batch:{batch.pk}",
            detail={"template": template.pk, "count": count, "prefix": clean_prefix},
        )
    return batch


def coupon_claim(
    *,
    code: str,
    member: Member,
    at: dt.datetime | None = None,
    actor: Any = None,
    store: Store | int | None = None,
) -> Coupon:
    """Attach a printed code to ``member`` (领取). Claiming a code the member already holds
    returns it unchanged; a code another member holds is ``coupon_already_claimed``. The
    per-member limit applies. Locks the coupon, then the member's quota row."""
    at = at or timezone.now()
    day = _day(at)
    clean = rules.normalize_code(code)
    if not clean:
        raise _bad("code", "required", _("请输入券码"))
    if not member.is_live:
        raise CouponError("member_inactive", _("该会员已注销或已合并"), "member_id")
    with transaction.atomic():
        coupon = lock_coupons([clean]).get(clean)
        if coupon is None:
            raise NotFound("coupon", _("券码不存在：%(c)s") % {"c": clean})
        if coupon.member_id == member.pk:
            return coupon
        if coupon.member_id is not None:
            raise DomainError(
                code="coupon_already_claimed",
                message=_("该券已被其他会员领取"),
                errors=[FieldError("code", "coupon_already_claimed", _("该券已被其他会员领取"))],
                status=409,
            )
        if coupon.status != CouponStatus.ISSUED:
            raise CouponNotIssued(code=clean, status=coupon.status, action=_("领取"))
        if day > coupon.valid_until:
            raise CouponError(
                "coupon_expired",
                _("该券已过期（有效期至 %(d)s）") % {"d": coupon.valid_until.isoformat()},
                "code",
            )
        if not coupon.template.active:
            raise CouponError("coupon_template_inactive", _("该券活动已停用"), "code")
        limit = coupon.template.per_member_limit
        if limit:
            lock_quotas(coupon.template_id, [member.pk])
            held = _held(coupon.template_id, [member.pk]).get(member.pk, 0)
            if held >= limit:
                raise CouponLimitReached(limit=limit, held=held)
        coupon.member = member
        coupon.claimed_at = at
        coupon.save(update_fields=["member", "claimed_at"])
        CouponEvent.objects.create(
            coupon=coupon,
            member_id=member.pk,
            kind=EventKind.CLAIMED,
            at=at,
            store_id=_store_ids(store),
            actor=actor if getattr(actor, "is_authenticated", False) else None,
        )
    return coupon


# --------------------------------------------------------------------------- the till


def _store_allowed_map(template_ids: Iterable[int], store_id: int) -> dict[int, bool]:
    """Per template: may it be used in ``store_id`` (no stores listed = every store)."""
    through = CouponTemplate.stores.through
    listed: dict[int, set[int]] = {}
    for tid, sid in through.objects.filter(coupontemplate_id__in=set(template_ids)).values_list(
        "coupontemplate_id", "store_id"
    ):
        listed.setdefault(tid, set()).add(sid)
    return {tid: (tid not in listed or store_id in listed[tid]) for tid in set(template_ids)}


def _codes_in(codes: object) -> list[str]:
    if codes is None:
        return []
    if isinstance(codes, str) or not isinstance(codes, list | tuple):
        raise _bad("coupons", "invalid", _("券码应为列表"))
    if len(codes) > MAX_CODES:
        raise _bad("coupons", "too_many", _("每单最多使用 %(n)d 张券") % {"n": MAX_CODES})
    return list(codes)


def _refuse(
    coupon: Coupon, *, member_id: int | None, day: dt.date, store_allowed: bool
) -> tuple[str, str] | None:
    redeemed_on = timezone.localdate(coupon.redeemed_at) if coupon.redeemed_at else None
    return rules.refusal(
        status=coupon.status,
        owner_id=coupon.member_id,
        member_id=member_id,
        members_only=coupon.template.members_only,
        template_active=coupon.template.active,
        valid_from=coupon.valid_from,
        valid_until=coupon.valid_until,
        store_allowed=store_allowed,
        day=day,
        redeemed_on=redeemed_on,
    )


def _unknown(index: int, code: str) -> rules.Rejection:
    if not code:
        return rules.Rejection(
            index=index, code=code, reason_code="invalid_code", message=_("请输入券码")
        )
    reason = "unknown_code" if rules.code_checks(code) else "invalid_code"
    return rules.Rejection(
        index=index, code=code, reason_code=reason, message=f"{rules.REASONS[reason]}：{code}"
    )


def coupons_for_checkout(
    *, codes: list[str], member_id: int | None, store_id: int, at: dt.datetime
) -> tuple[list[engine.Coupon], list[rules.Rejection]]:
    """Which presented coupons the till may price (C-1, V-3), read-only, in one query.

    Returns the usable ones as ``checkout.engine.Coupon`` in the order presented (the engine
    applies them in that order) and a ``Rejection`` per refused code (``field`` =
    ``coupons[i]``) with one of the stable reason codes of ``rules.REASONS``: invalid_code,
    unknown_code, duplicate_code, not_owner, member_required, void, already_used, expired,
    not_yet_valid, template_inactive, store_not_allowed, template_invalid. Minimum spend,
    scope and stacking are the engine's to judge.
    """
    presented = rules.dedupe(_codes_in(codes))
    day = _day(at)
    if not presented:
        return [], []
    through = CouponTemplate.stores.through
    found = {
        c.code: c
        for c in Coupon.objects.filter(code__in={code for _i, code, _r in presented if code})
        .select_related("template")
        .annotate(
            store_limited=Exists(through.objects.filter(coupontemplate_id=OuterRef("template_id"))),
            store_listed=Exists(
                through.objects.filter(coupontemplate_id=OuterRef("template_id"), store_id=store_id)
            ),
        )
    }
    usable: list[engine.Coupon] = []
    rejected: list[rules.Rejection] = []
    for index, code, repeat in presented:
        coupon = found.get(code)
        if coupon is None:
            rejected.append(_unknown(index, code))
            continue
        if repeat:
            rejected.append(
                rules.Rejection(
                    index=index,
                    code=code,
                    reason_code="duplicate_code",
                    message=rules.REASONS["duplicate_code"],
                )
            )
            continue
        allowed = not coupon.store_limited or coupon.store_listed  # type: ignore[attr-defined]
        refusal = _refuse(coupon, member_id=member_id, day=day, store_allowed=allowed)
        if refusal is None:
            try:
                usable.append(rules.engine_coupon(coupon.template.terms(), coupon.code))
                continue
            except (rules.CouponTemplateError, engine.PricingError):
                refusal = ("template_invalid", rules.REASONS["template_invalid"])
        rejected.append(
            rules.Rejection(index=index, code=code, reason_code=refusal[0], message=refusal[1])
        )
    return usable, rejected


def _amounts_in(
    presented: list[tuple[int, str, bool]], amounts: object, coupons: dict[str, Coupon]
) -> dict[str, Decimal]:
    if not isinstance(amounts, dict):
        raise _bad("amounts", "invalid", _("缺少各券抵扣金额"))
    clean = {rules.normalize_code(k): v for k, v in amounts.items()}
    errors: list[FieldError] = []
    wanted = {code for _i, code, _r in presented}
    for extra in sorted(set(clean) - wanted):
        errors.append(FieldError("amounts", "unknown", _("未使用的券：%(c)s") % {"c": extra}))
    for index, code, _r in presented:
        amount = clean.get(code)
        field = f"coupons[{index}]"
        if not is_money(amount) or not 0 < amount < rules.MAX_AMOUNT:  # type: ignore[operator]
            errors.append(FieldError(field, "invalid_amount", _("抵扣金额应为大于 0 的两位小数")))
            continue
        coupon = coupons.get(code)
        if coupon is None:
            continue
        template = coupon.template
        face = template.max_off if template.kind == "percent_off" else template.value
        if face is not None and amount > face:  # type: ignore[operator]
            errors.append(
                FieldError(
                    field,
                    "exceeds_face_value",
                    _("抵扣金额 %(a)s 超过券面 %(f)s") % {"a": amount, "f": face},
                )
            )
    if errors:
        raise ValidationFailed(errors)
    return clean  # type: ignore[return-value]


def coupons_redeem(
    *,
    codes: list[str],
    member_id: int | None,
    store_id: int,
    at: dt.datetime,
    reference: str,
    amounts: dict[str, Decimal],
    actor: Any = None,
) -> list[Coupon]:
    """Use the coupons of a sale (V-3), single use, inside the checkout's transaction.

    Locks the coupon rows in primary-key order, re-checks each exactly as
    ``coupons_for_checkout`` does and marks it redeemed with its amount (what the engine
    applied), the store and ``reference`` (``sale:123``); a printed code used by a member
    becomes theirs. A coupon another till used meanwhile is a ``coupon_already_used``
    conflict naming it; any other refusal is ``coupon_unusable`` with one field error per
    coupon. On any error nothing is written (the caller's transaction rolls back).
    """
    presented = rules.dedupe(_codes_in(codes))
    day = _day(at)
    reference = _text(reference, "reference", 64, required=True)
    if not presented:
        return []
    with transaction.atomic():
        locked = lock_coupons(code for _i, code, _r in presented if code)
        clean_amounts = _amounts_in(presented, amounts, locked)
        allowed = _store_allowed_map({c.template_id for c in locked.values()}, store_id)
        rejected: list[rules.Rejection] = []
        for index, code, repeat in presented:
            coupon = locked.get(code)
            if coupon is None:
                rejected.append(_unknown(index, code))
                continue
            if repeat:
                rejected.append(
                    rules.Rejection(
                        index=index,
                        code=code,
                        reason_code="duplicate_code",
                        message=rules.REASONS["duplicate_code"],
                    )
                )
                continue
            refusal = _refuse(
                coupon, member_id=member_id, day=day, store_allowed=allowed[coupon.template_id]
            )
            if refusal is not None and refusal[0] == "already_used":
                raise CouponAlreadyUsed(index=index, code=code)
            if refusal is not None:
                rejected.append(
                    rules.Rejection(
                        index=index, code=code, reason_code=refusal[0], message=refusal[1]
                    )
                )
        if rejected:
            raise CouponUnusable(rejected)
        redeemed: list[Coupon] = []
        events: list[CouponEvent] = []
        actor_row = actor if getattr(actor, "is_authenticated", False) else None
        for index, code, _r in presented:
            coupon = locked[code]
            amount = clean_amounts[code]
            changes: dict[str, Any] = {
                "status": CouponStatus.REDEEMED,
                "redeemed_at": at,
                "redeemed_store_id": store_id,
                "redeemed_reference": reference,
                "redeemed_amount": amount,
            }
            if coupon.member_id is None and member_id is not None:
                changes.update(member_id=member_id, claimed_at=at)
            # The SQL guard: without row locks (SQLite) this still redeems a coupon once.
            if not Coupon.objects.filter(pk=coupon.pk, status=CouponStatus.ISSUED).update(
                **changes
            ):
                raise CouponAlreadyUsed(index=index, code=code)
            for name, value in changes.items():
                setattr(coupon, name, value)
            redeemed.append(coupon)
            events.append(
                _event(
                    coupon,
                    EventKind.REDEEMED,
                    at,
                    store_id=store_id,
                    actor=actor_row,
                    reference=reference,
                    amount=amount,
                )
            )
        CouponEvent.objects.bulk_create(events)
    return redeemed


# --------------------------------------------------------------------------- restore, void


@dataclass(frozen=True)
class RestoreResult:
    """Whether a return gave the coupon back; ``reason_code`` says why not."""

    coupon: Coupon
    restored: bool
    reason_code: str = ""
    message: str = ""


def _restore_locked(
    coupon: Coupon, *, at: dt.datetime, day: dt.date, reference: str, actor: Any
) -> RestoreResult:
    if coupon.status != CouponStatus.REDEEMED:
        return RestoreResult(coupon, False, "not_redeemed", _("该券未处于已使用状态"))
    if day > coupon.valid_until:
        return RestoreResult(
            coupon,
            False,
            "expired",
            _("该券已过期（有效期至 %(d)s），退货不再返还") % {"d": coupon.valid_until.isoformat()},
        )
    previous = {
        "redeemed_at": (
            timezone.localtime(coupon.redeemed_at).isoformat() if coupon.redeemed_at else None
        ),
        "redeemed_store_id": coupon.redeemed_store_id,
        "redeemed_reference": coupon.redeemed_reference,
        "redeemed_amount": str(coupon.redeemed_amount),
    }
    amount = coupon.redeemed_amount
    Coupon.objects.filter(pk=coupon.pk, status=CouponStatus.REDEEMED).update(
        status=CouponStatus.ISSUED,
        redeemed_at=None,
        redeemed_store=None,
        redeemed_reference="",
        redeemed_amount=None,
    )
    coupon.status = CouponStatus.ISSUED
    coupon.redeemed_at = coupon.redeemed_store = coupon.redeemed_amount = None  # type: ignore[assignment]
    coupon.redeemed_reference = ""
    CouponEvent.objects.create(
        coupon=coupon,
        member_id=coupon.member_id,
        kind=EventKind.RESTORED,
        at=at,
        reference=reference,
        amount=amount,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        detail=previous,
    )
    return RestoreResult(coupon, True)


def coupon_restore(
    *,
    coupon: Coupon | str,
    at: dt.datetime,
    reference: str,
    redeemed_reference: str | None = None,
    actor: Any = None,
) -> RestoreResult:
    """Give a used coupon back on a **full** return (C-6), inside the return's transaction.

    The rule: a single-use coupon cannot be split, so a partial return keeps it used (its
    discount stays with the lines kept); a full return gives it back — status issued, the
    redemption fields cleared and kept in a ``restored`` event — if it is still within its
    validity on the return's business date. Past its last day it stays used
    (``restored=False``, ``reason_code="expired"``): the member keeps the discount they had.
    A coupon that is not redeemed is left alone (``not_redeemed``), so a retry is harmless.
    ``redeemed_reference`` (``sale:5``), when given, must be the sale that used the coupon.
    Locks the coupon row.
    """
    day = _day(at)
    reference = _text(reference, "reference", 64, required=True)
    code = coupon.code if isinstance(coupon, Coupon) else rules.normalize_code(coupon)
    with transaction.atomic():
        locked = lock_coupons([code]).get(code)
        if locked is None:
            raise NotFound("coupon", _("券码不存在：%(c)s") % {"c": code})
        if (
            redeemed_reference is not None
            and locked.status == CouponStatus.REDEEMED
            and locked.redeemed_reference != redeemed_reference
        ):
            raise _bad("coupon", "not_from_sale", _("该券不是在原单中使用的"))
        return _restore_locked(locked, at=at, day=day, reference=reference, actor=actor)


def coupons_restore_for(
    *, redeemed_reference: str, at: dt.datetime, reference: str, actor: Any = None
) -> list[RestoreResult]:
    """Give back every coupon the sale ``redeemed_reference`` used (a full return), by the
    rule of ``coupon_restore``. Locks those coupon rows in primary-key order."""
    day = _day(at)
    redeemed_reference = _text(redeemed_reference, "redeemed_reference", 64, required=True)
    reference = _text(reference, "reference", 64, required=True)
    with transaction.atomic():
        codes = Coupon.objects.filter(
            redeemed_reference=redeemed_reference, status=CouponStatus.REDEEMED
        ).values_list("code", flat=True)
        locked = lock_coupons(list(codes))
        return [
            _restore_locked(c, at=at, day=day, reference=reference, actor=actor)
            for c in sorted(locked.values(), key=lambda c: c.pk)
            if c.redeemed_reference == redeemed_reference
        ]


def coupon_void(
    *, coupon: Coupon | str, reason: str, actor: Any, at: dt.datetime | None = None
) -> Coupon:
    """Void an unused coupon (作废): needs a manager role and a reason; audited, and kept in
    the coupon's trail. A used, void or expired coupon cannot be voided."""
    at = at or timezone.now()
    _day(at)
    if not _is_manager(actor):
        raise PermissionDenied(_("没有作废优惠券的权限"))
    reason = _text(reason, "reason", 200, required=True)
    code = coupon.code if isinstance(coupon, Coupon) else rules.normalize_code(coupon)
    with transaction.atomic(durable=True):
        locked = lock_coupons([code]).get(code)
        if locked is None:
            raise NotFound("coupon", _("券码不存在：%(c)s") % {"c": code})
        if locked.status != CouponStatus.ISSUED:
            raise CouponNotIssued(code=code, status=locked.status, action=_("作废"))
        Coupon.objects.filter(pk=locked.pk, status=CouponStatus.ISSUED).update(
            status=CouponStatus.VOID
        )
        locked.status = CouponStatus.VOID
        CouponEvent.objects.create(
            coupon=locked,
            member_id=locked.member_id,
            kind=EventKind.VOIDED,
            at=at,
            actor=actor,
            reason=reason,
        )
        audit(
            action=AUDIT_COUPON_VOID,
            actor=actor,
            member_id=locked.member_id,
            target=f"coupon:{locked.pk}",
            detail={"code": locked.code, "template": locked.template_id, "reason": reason},
        )
    return locked


def coupons_expire_due(*, today: dt.date | None = None, batch: int = CHUNK) -> int:
    """Mark issued coupons past their last day as expired (a daily job), a batch per
    transaction, with an ``expired`` event each. Idempotent: a second run finds nothing. The
    till does not depend on it: it checks dates itself."""
    today = today or timezone.localdate()
    at = timezone.now()
    total = 0
    while True:
        with transaction.atomic(durable=True):
            due = list(
                Coupon.objects.filter(status=CouponStatus.ISSUED, valid_until__lt=today)
                .order_by("pk")
                .select_for_update(of=("self",))
                .values_list("pk", "member_id")[:batch]
            )
            if not due:
                return total
            Coupon.objects.filter(pk__in=[pk for pk, _m in due], status=CouponStatus.ISSUED).update(
                status=CouponStatus.EXPIRED
            )
            CouponEvent.objects.bulk_create(
                CouponEvent(coupon_id=pk, member_id=member_id, kind=EventKind.EXPIRED, at=at)
                for pk, member_id in due
            )
            total += len(due)


__all__ = [
    "BulkIssueResult",
    "RestoreResult",
    "coupon_batch_create",
    "coupon_claim",
    "coupon_issue",
    "coupon_issue_bulk",
    "coupon_restore",
    "coupon_template_create",
    "coupon_template_set_active",
    "coupon_void",
    "coupons_expire_due",
    "coupons_for_checkout",
    "coupons_issue_for_purchase",
    "coupons_redeem",
    "coupons_restore_for",
]
