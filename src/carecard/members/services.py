"""Write use cases for members, cards and consents (M-1..M-7, G-1).

Every function is one transaction with its audit entry. Uniqueness (phone, ID number, card
number) is enforced by database constraints; the checks here only give a friendlier answer that
points at the existing member.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from carecard.chain.models import Staff, Store, TradingZone
from carecard.core.address import parse_address
from carecard.core.audit import AuditAction, audit
from carecard.core.crypto import blind_index
from carecard.core.errors import Conflict, DomainError, FieldError, ValidationFailed
from carecard.core.names import pinyin_keys
from carecard.core.roles import Perm
from carecard.members.models import (
    Card,
    CardKind,
    CardStatus,
    Consent,
    ConsentPurpose,
    DuplicateDismissal,
    EntryRule,
    Household,
    Member,
    MemberGroup,
    MemberMerge,
    MemberSearchKey,
    MembershipPolicy,
    MemberStatus,
)
from carecard.members.validation import clean_member

LIVE = (MemberStatus.ACTIVE, MemberStatus.PENDING)
DEFAULT_REQUIRED_FIELDS = [
    "name",
    "gender",
    "birthday",
    "phone",
    "address",
    "health_interests",
    "preferred_channel",
]
_REFERRAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def policy_get() -> MembershipPolicy:
    policy = MembershipPolicy.objects.order_by("pk").first()
    if policy is None:
        policy, _created = MembershipPolicy.objects.get_or_create(
            pk=1, defaults={"required_fields": DEFAULT_REQUIRED_FIELDS}
        )
    return policy


def completeness(values: Mapping[str, Any], required: list[str]) -> tuple[int, bool]:
    """Percent of HQ-required fields that are filled, and whether all are (M-7)."""
    required = required or DEFAULT_REQUIRED_FIELDS
    filled = sum(1 for f in required if values.get(f) not in (None, "", [], "U"))
    pct = round(100 * filled / len(required)) if required else 100
    return pct, filled == len(required)


def zone_for(*, store: Store, district: str, community: str, address: str) -> TradingZone | None:
    """The trading-area zone whose district and keyword match the address (D-5)."""
    text = f"{community}{address}"
    zones = TradingZone.objects.filter(store__region_id=store.region_id)
    if district:
        zones = zones.filter(Q(district=district) | Q(district=""))
    best = None
    for zone in zones.order_by("store_id", "pk"):
        if zone.keywords and any(k and k in text for k in zone.keywords):
            if zone.store_id == store.pk:
                return zone
            best = best or zone
    return best


def valid_until_for(years: int | None, enrolled_on: dt.date) -> dt.date | None:
    """Card validity end (M-4): ``years`` after enrolment; 29 February ends on 28 February."""
    if not years:
        return None
    try:
        return enrolled_on.replace(year=enrolled_on.year + years)
    except ValueError:
        return enrolled_on.replace(year=enrolled_on.year + years, day=28)


def _new_digits(n: int) -> str:
    return str(secrets.randbelow(9 * 10 ** (n - 1)) + 10 ** (n - 1))


def _new_referral_code() -> str:
    return "".join(secrets.choice(_REFERRAL_ALPHABET) for _ in range(8))


def _save_search_keys(member: Member, *, new: bool = False) -> None:
    if not new:
        MemberSearchKey.objects.filter(member=member).delete()
    MemberSearchKey.objects.bulk_create(
        [MemberSearchKey(member=member, key=k[:64]) for k in pinyin_keys(member.name)]
    )


def fill_address(values: dict[str, Any]) -> None:
    """Fill province/city/district/community from a free-text address when they are missing."""
    if values.get("address") and not (values.get("province") and values.get("district")):
        parsed = parse_address(values["address"])
        values["province"] = values.get("province") or parsed.province
        values["city"] = values.get("city") or parsed.city
        values["district"] = values.get("district") or parsed.district
        values["community"] = values.get("community") or parsed.detail


def _raise_duplicate(field: str, existing: Member, code: str) -> None:
    labels = {"phone": _("该手机号已是会员"), "id_number": _("该身份证号已是会员")}
    raise Conflict(
        code,
        labels[field],
        errors=[FieldError(field, "duplicate", labels[field])],
        detail={"member_no": existing.member_no, "member_id": existing.pk, "name": existing.name},
    )


def _check_unique(*, phone: str | None, id_index: str | None, exclude_pk: int | None) -> None:
    if not phone and not id_index:
        return
    match = Q(phone=phone) if phone else Q()
    if id_index:
        match |= Q(id_number_index=id_index)
    live = Member.objects.filter(match, status__in=LIVE)
    if exclude_pk:
        live = live.exclude(pk=exclude_pk)
    # One query for both keys; the phone is reported first when both collide.
    for existing in sorted(live[:2], key=lambda m: m.phone != phone):
        if phone and existing.phone == phone:
            _raise_duplicate("phone", existing, "duplicate_phone")
        _raise_duplicate("id_number", existing, "duplicate_id_number")


def _consent_row(
    *,
    member: Member,
    purpose: str,
    granted: bool,
    channel: str,
    actor: Staff | None,
    policy: MembershipPolicy,
    at: dt.datetime,
) -> Consent:
    version = {
        ConsentPurpose.TERMS: policy.terms_version,
        ConsentPurpose.MARKETING: policy.marketing_text_version,
        ConsentPurpose.HEALTH_DATA: policy.health_text_version,
    }[purpose]
    return Consent(
        member=member,
        purpose=purpose,
        granted=granted,
        text_version=version,
        channel=channel,
        at=at,
        recorded_by=actor if actor and actor.pk else None,
    )


def _record_consent(**kwargs: Any) -> Consent:
    consent = _consent_row(**kwargs)
    consent.save()
    return consent


def _resolve_referrer(code: str) -> Member | None:
    code = (code or "").strip().upper()
    if not code:
        return None
    referrer = Member.objects.filter(
        Q(referral_code=code) | Q(member_no=code), status__in=LIVE
    ).first()
    if referrer is None:
        raise ValidationFailed([FieldError("referrer", "not_found", _("推荐码不存在"))])
    return referrer


def _resolve_group(raw: Any) -> MemberGroup | None:
    if raw in (None, ""):
        return None
    if isinstance(raw, MemberGroup):
        return raw
    group = MemberGroup.objects.filter(pk=int(raw)).first() if str(raw).isdigit() else None
    if group is None:
        raise ValidationFailed([FieldError("group", "not_found", _("团体不存在"))])
    return group


@transaction.atomic
def member_enrol(
    *,
    actor: Staff | None,
    store: Store,
    data: Mapping[str, Any],
    channel: str = "counter",
    ip: str | None = None,
    terminal_id: int | None = None,
    qualifying_amount: Decimal | None = None,
    fee_paid: bool = False,
    external_code: str | None = None,
    enrolled_at: dt.datetime | None = None,
) -> Member:
    """Enrol a customer (M-1): validate, refuse duplicates, create the member with a virtual
    card, record consents, index pinyin keys. Raises ValidationFailed / Conflict; writes
    nothing then.

    The entry rule (M-4) decides the status: free → active; purchase → active only when
    ``qualifying_amount`` reaches the threshold; paid → active only when ``fee_paid``.
    """
    if actor is not None and not actor.can(Perm.MEMBER_ENROL):
        raise DomainError("permission_denied", _("无权办理入会"), status=403)
    now = enrolled_at or timezone.now()
    values, errors = clean_member(data, today=timezone.localdate(now))
    if errors:
        raise ValidationFailed(errors)
    policy = policy_get()
    referrer = _resolve_referrer(str(data.get("referrer") or ""))
    group = _resolve_group(data.get("group"))
    if group is not None and "acquisition_channel" not in data:
        values["acquisition_channel"] = "group"
    id_index = blind_index(values["id_number"]) if values["id_number"] else None
    _check_unique(phone=values["phone"], id_index=id_index, exclude_pk=None)
    fill_address(values)

    status = MemberStatus.ACTIVE
    if (
        policy.entry_rule == EntryRule.PURCHASE
        and (qualifying_amount is None or qualifying_amount < policy.entry_min_purchase)
        or policy.entry_rule == EntryRule.PAID
        and not fee_paid
    ):
        status = MemberStatus.PENDING
    pct, complete = completeness(values, policy.required_fields)
    consents = {p: values.pop(f"consent_{p}") for p in ("terms", "marketing", "health_data")}
    valid_until = valid_until_for(policy.validity_years, timezone.localdate(now))
    member = None
    for _attempt in range(5):  # random member/card numbers: retry the rare collision
        member = Member(
            **values,
            member_no=_new_digits(12),
            referral_code=_new_referral_code(),
            external_code=external_code or None,
            id_number_index=id_index,
            phone_tail=(values["phone"] or "")[-4:],
            status=status,
            home_store=store,
            enrolled_by=actor if actor and actor.pk else None,
            referrer=referrer,
            group=group,
            zone=zone_for(
                store=store,
                district=values.get("district", ""),
                community=values.get("community", ""),
                address=values.get("address", ""),
            ),
            consent_marketing=consents["marketing"],
            consent_health=consents["health_data"],
            completeness=pct,
            is_complete=complete,
            valid_until=valid_until,
            enrolled_at=now,
        )
        try:
            with transaction.atomic():
                member.save(force_insert=True)
                Card.objects.create(
                    member=member,
                    number="V" + member.member_no,
                    kind=CardKind.VIRTUAL,
                    issued_at=now,
                    issued_store=store,
                )
            break
        except IntegrityError as exc:
            # A concurrent enrolment of the same phone/ID wins the unique constraint.
            _check_unique(phone=values["phone"], id_index=id_index, exclude_pk=None)
            if _attempt == 4:
                raise Conflict("enrol_conflict", _("入会冲突，请重试")) from exc
    assert member is not None
    Consent.objects.bulk_create(
        [
            _consent_row(
                member=member,
                purpose=purpose,
                granted=granted,
                channel=channel,
                actor=actor,
                policy=policy,
                at=now,
            )
            for purpose, granted in consents.items()
        ]
    )
    _save_search_keys(member, new=True)
    physical = str(data.get("card_number") or "").strip()
    if physical:
        _issue_physical(member=member, number=physical, store=store, at=now, fee=Decimal("0"))
    audit(
        action=AuditAction.MEMBER_ENROL,
        actor=actor,
        member_id=member.pk,
        store_id=store.pk,
        target=f"member:{member.member_no}",
        ip=ip,
        terminal_id=terminal_id,
        detail={"channel": channel, "status": status},
    )
    return member


@transaction.atomic
def member_update(
    *,
    actor: Staff | None,
    member: Member,
    data: Mapping[str, Any],
    ip: str | None = None,
    terminal_id: int | None = None,
) -> Member:
    """Correct a member's profile (partial update). Health fields need the health consent."""
    if actor is not None and not actor.can(Perm.MEMBER_EDIT):
        raise DomainError("permission_denied", _("无权修改会员资料"), status=403)
    member = Member.objects.select_for_update().get(pk=member.pk)
    if not member.is_live:
        raise DomainError("member_not_live", _("该会员已合并或注销"), status=409)
    touches_health = any(k in data for k in ("allergies", "medical_history", "chronic_conditions"))
    if (
        touches_health
        and actor is not None
        and not actor.can_for_store(Perm.MEMBER_HEALTH, member.home_store_id)
    ):
        raise DomainError("permission_denied", _("无权修改该会员的健康信息"), status=403)
    # Consents change through consent_set, never as a side effect of a profile edit.
    payload = {k: v for k, v in data.items() if not k.startswith("consent_")}
    values, errors = clean_member(payload, today=timezone.localdate(), partial=True)
    if (
        touches_health
        and not member.consent_health
        and any(values.get(f) for f in ("allergies", "medical_history", "chronic_conditions"))
    ):
        errors.append(
            FieldError("consent_health_data", "required", _("记录健康信息须先取得顾客单独同意"))
        )
    if errors:
        raise ValidationFailed(errors)
    id_index = None
    if values.get("id_number"):
        id_index = blind_index(values["id_number"])
    _check_unique(phone=values.get("phone"), id_index=id_index, exclude_pk=member.pk)
    if "address" in values and "district" not in data:
        values["province"] = values["city"] = values["district"] = values["community"] = ""
        fill_address(values)
    changed = sorted(k for k, v in values.items() if getattr(member, k) != v)
    for key, value in values.items():
        setattr(member, key, value)
    if "id_number" in values:
        member.id_number_index = id_index
    if "phone" in values:
        member.phone_tail = values["phone"][-4:]
    if {"address", "district", "community"} & set(values):
        member.zone = zone_for(
            store=member.home_store,
            district=member.district,
            community=member.community,
            address=member.address,
        )
    policy = policy_get()
    member.completeness, member.is_complete = completeness(
        {f: getattr(member, f, None) for f in (policy.required_fields or DEFAULT_REQUIRED_FIELDS)},
        policy.required_fields,
    )
    try:
        with transaction.atomic():
            member.save()
    except IntegrityError as exc:
        _check_unique(phone=values.get("phone"), id_index=id_index, exclude_pk=member.pk)
        raise Conflict("update_conflict", _("保存冲突，请重试")) from exc
    if "name" in values:
        _save_search_keys(member)
    # Sensitive values are never written into the audit detail, only which fields changed.
    audit(
        action=AuditAction.MEMBER_UPDATE,
        actor=actor,
        member_id=member.pk,
        store_id=member.home_store_id,
        target=f"member:{member.member_no}",
        ip=ip,
        terminal_id=terminal_id,
        detail={"fields": changed},
    )
    return member


@transaction.atomic
def member_activate(*, member: Member, reason: str) -> Member:
    """Make a pending member effective (entry rule met: qualifying purchase or fee paid)."""
    Member.objects.filter(pk=member.pk, status=MemberStatus.PENDING).update(
        status=MemberStatus.ACTIVE
    )
    member.refresh_from_db(fields=["status"])
    return member


@transaction.atomic
def consent_set(
    *,
    actor: Staff | None,
    member: Member,
    purpose: str,
    granted: bool,
    channel: str,
    ip: str | None = None,
    terminal_id: int | None = None,
) -> Consent:
    """Record a consent decision (G-1); withdrawal takes effect at once."""
    if purpose not in ConsentPurpose.values:
        raise ValidationFailed([FieldError("purpose", "invalid", _("未知授权用途"))])
    member = Member.objects.select_for_update().get(pk=member.pk)
    consent = _record_consent(
        member=member,
        purpose=purpose,
        granted=granted,
        channel=channel,
        actor=actor,
        policy=policy_get(),
        at=timezone.now(),
    )
    if purpose == ConsentPurpose.MARKETING:
        member.consent_marketing = granted
    elif purpose == ConsentPurpose.HEALTH_DATA:
        member.consent_health = granted
    member.save(update_fields=["consent_marketing", "consent_health", "updated_at"])
    audit(
        action=AuditAction.CONSENT,
        actor=actor,
        member_id=member.pk,
        store_id=member.home_store_id,
        target=f"member:{member.member_no}",
        ip=ip,
        terminal_id=terminal_id,
        detail={"purpose": purpose, "granted": granted, "channel": channel},
    )
    return consent


def _issue_physical(
    *,
    member: Member,
    number: str,
    store: Store | None,
    at: dt.datetime,
    fee: Decimal,
    note: str = "",
) -> Card:
    number = number.strip()
    if not number.isalnum() or len(number) > 32:
        raise ValidationFailed([FieldError("card_number", "invalid", _("卡号只能是字母和数字"))])
    if Card.objects.filter(number=number).exists():
        raise ValidationFailed([FieldError("card_number", "taken", _("该卡号已被使用"))])
    try:
        with transaction.atomic():
            return Card.objects.create(
                member=member,
                number=number,
                kind=CardKind.PHYSICAL,
                issued_at=at,
                issued_store=store,
                fee=fee,
                note=note,
            )
    except IntegrityError as exc:
        raise ValidationFailed([FieldError("card_number", "taken", _("该卡号已被使用"))]) from exc


@transaction.atomic
def card_issue(
    *, actor: Staff | None, member: Member, number: str, store: Store | None = None
) -> Card:
    """Bind a physical card number to a member."""
    if actor is not None and not actor.can(Perm.CARD_MANAGE):
        raise DomainError("permission_denied", _("无权办理会员卡"), status=403)
    card = _issue_physical(
        member=member, number=number, store=store, at=timezone.now(), fee=Decimal("0")
    )
    return card


def _lock_card(card: Card) -> Card:
    return Card.objects.select_for_update().select_related("member").get(pk=card.pk)


@transaction.atomic
def card_report_lost(
    *, actor: Staff | None, card: Card, ip: str | None = None, terminal_id: int | None = None
) -> Card:
    """Freeze a card at once (M-3). Points stay with the member; the card can't pay any more."""
    if actor is not None and not actor.can(Perm.CARD_MANAGE):
        raise DomainError("permission_denied", _("无权办理挂失"), status=403)
    card = _lock_card(card)
    if card.status != CardStatus.ACTIVE:
        raise DomainError("card_not_active", _("该卡不是正常状态，不能挂失"), status=409)
    card.status = CardStatus.FROZEN
    card.frozen_at = timezone.now()
    card.save(update_fields=["status", "frozen_at"])
    audit(
        action=AuditAction.CARD_LOST,
        actor=actor,
        member_id=card.member_id,
        store_id=card.member.home_store_id,
        target=f"card:{card.number}",
        ip=ip,
        terminal_id=terminal_id,
    )
    return card


@transaction.atomic
def card_replace(
    *,
    actor: Staff | None,
    card: Card,
    new_number: str = "",
    reason: str = "lost",
    store: Store | None = None,
    ip: str | None = None,
    terminal_id: int | None = None,
) -> Card:
    """Issue a replacement for a frozen (lost) or damaged card; the fee follows the policy.

    Points and balances belong to the member, so they carry over without being copied.
    """
    if actor is not None and not actor.can(Perm.CARD_MANAGE):
        raise DomainError("permission_denied", _("无权办理补卡"), status=403)
    if reason not in ("lost", "damaged"):
        raise ValidationFailed([FieldError("reason", "invalid", _("补卡原因应为 挂失 或 损坏"))])
    card = _lock_card(card)
    if card.status in (CardStatus.REPLACED, CardStatus.CANCELLED):
        raise DomainError("card_closed", _("该卡已补换或注销"), status=409)
    if reason == "lost" and card.status != CardStatus.FROZEN:
        raise DomainError("card_not_frozen", _("挂失补卡前须先挂失"), status=409)
    policy = policy_get()
    fee = policy.lost_card_fee if reason == "lost" else policy.damaged_card_fee
    now = timezone.now()
    card.status = CardStatus.REPLACED
    card.closed_at = now
    card.save(update_fields=["status", "closed_at"])
    if card.kind == CardKind.VIRTUAL:
        new = Card.objects.create(
            member=card.member,
            number="V" + _new_digits(12),
            kind=CardKind.VIRTUAL,
            issued_at=now,
            issued_store=store,
            fee=fee,
        )
    else:
        new = _issue_physical(
            member=card.member,
            number=new_number or ("P" + _new_digits(11)),
            store=store,
            at=now,
            fee=fee,
            note=reason,
        )
    card.replaced_by = new
    card.save(update_fields=["replaced_by"])
    audit(
        action=AuditAction.CARD_REPLACE,
        actor=actor,
        member_id=card.member_id,
        store_id=card.member.home_store_id,
        target=f"card:{card.number}",
        ip=ip,
        terminal_id=terminal_id,
        detail={"new_card": new.number, "fee": str(fee), "reason": reason},
    )
    return new


@transaction.atomic
def card_cancel(*, actor: Staff | None, card: Card) -> Card:
    if actor is not None and not actor.can(Perm.CARD_MANAGE):
        raise DomainError("permission_denied", _("无权注销会员卡"), status=403)
    card = _lock_card(card)
    card.status = CardStatus.CANCELLED
    card.closed_at = timezone.now()
    card.save(update_fields=["status", "closed_at"])
    audit(
        action=AuditAction.CARD_CANCEL,
        actor=actor,
        member_id=card.member_id,
        store_id=card.member.home_store_id,
        target=f"card:{card.number}",
    )
    return card


# Apps that keep per-member state derived from moved rows (ledger balance caches, aggregates)
# register a callable(survivor, absorbed) here; it runs inside the merge transaction, after the
# rows have moved. Per-member state rows keyed by the member (one-to-one primary keys) are
# never re-pointed generically: their app's hook combines them. MERGE_OWN lists further models
# a hook moves itself (rows unique per member).
MERGE_HOOKS: list[Any] = []
MERGE_OWN: set[Any] = set()


@transaction.atomic(durable=True)
def member_merge(
    *, actor: Staff | None, survivor: Member, absorbed: Member, ip: str | None = None
) -> MemberMerge:
    """Merge a duplicate into the survivor (M-2): every row pointing at the absorbed member —
    cards, consents, referrals, and whatever later apps add — moves to the survivor; the absorbed
    member is kept as a tombstone with status ``merged``. Audited.
    """
    if actor is not None and not actor.can(Perm.MEMBER_MERGE):
        raise DomainError("permission_denied", _("无权合并会员"), status=403)
    if survivor.pk == absorbed.pk:
        raise ValidationFailed([FieldError("absorbed", "same", _("不能与自己合并"))])
    # Lock both in primary-key order so two merges of the same pair cannot deadlock.
    locked = {
        m.pk: m
        for m in Member.objects.select_for_update()
        .filter(pk__in=[survivor.pk, absorbed.pk])
        .order_by("pk")
    }
    survivor, absorbed = locked[survivor.pk], locked[absorbed.pk]
    if not survivor.is_live or not absorbed.is_live:
        raise DomainError("member_not_live", _("已合并或注销的会员不能再合并"), status=409)
    now = timezone.now()
    moved: dict[str, int] = {}
    # The absorbed member's virtual card is closed: one virtual card per member.
    Card.objects.filter(member=absorbed, kind=CardKind.VIRTUAL, status=CardStatus.ACTIVE).update(
        status=CardStatus.REPLACED, closed_at=now
    )
    MemberSearchKey.objects.filter(member=absorbed).delete()
    for rel in Member._meta.related_objects:
        if not (rel.one_to_many or rel.one_to_one) or rel.related_model is MemberSearchKey:
            continue
        if rel.related_model is MemberMerge or rel.related_model is DuplicateDismissal:
            continue
        if rel.related_model in MERGE_OWN or (rel.one_to_one and rel.field.primary_key):
            continue
        field = rel.field
        if field.name == "merged_into":
            continue
        count = rel.related_model._base_manager.filter(**{field.name: absorbed}).update(
            **{field.name: survivor}
        )
        if count:
            moved[f"{rel.related_model._meta.label}.{field.name}"] = count
    # Fill the survivor's blanks from the absorbed profile; never overwrite what is there.
    for name in (
        "email",
        "address",
        "province",
        "city",
        "district",
        "community",
        "birthday",
        "preferred_channel",
        "heard_from",
    ):
        if not getattr(survivor, name) and getattr(absorbed, name):
            setattr(survivor, name, getattr(absorbed, name))
    if not survivor.id_number and absorbed.id_number:
        survivor.id_number, survivor.id_number_index = absorbed.id_number, None
        pending_index = absorbed.id_number_index
    else:
        pending_index = None
    for name in (
        "allergies",
        "medical_history",
        "chronic_conditions",
        "health_interests",
        "contact_channels",
    ):
        merged = list(dict.fromkeys([*getattr(survivor, name), *getattr(absorbed, name)]))
        setattr(survivor, name, merged)
    absorbed.status = MemberStatus.MERGED
    absorbed.merged_into = survivor
    absorbed.save(update_fields=["status", "merged_into", "updated_at"])
    if pending_index:
        survivor.id_number_index = pending_index
    survivor.save()
    for hook in MERGE_HOOKS:
        hook(survivor=survivor, absorbed=absorbed)
    _save_search_keys(survivor)
    merge = MemberMerge.objects.create(
        survivor=survivor,
        absorbed=absorbed,
        merged_by=actor if actor and actor.pk else None,
        merged_at=now,
        moved=moved,
    )
    audit(
        action=AuditAction.MEMBER_MERGE,
        actor=actor,
        member_id=survivor.pk,
        store_id=survivor.home_store_id,
        target=f"member:{absorbed.member_no}",
        ip=ip,
        detail={"survivor": survivor.member_no, "absorbed": absorbed.member_no, "moved": moved},
    )
    return merge


@transaction.atomic
def duplicate_dismiss(*, actor: Staff | None, a: Member, b: Member) -> None:
    """Mark a listed pair as different people so it leaves the review list."""
    low, high = sorted([a.pk, b.pk])
    DuplicateDismissal.objects.get_or_create(
        member_a_id=low, member_b_id=high, defaults={"dismissed_by": actor}
    )


@transaction.atomic
def group_create(
    *, store: Store, name: str, contact_name: str, contact_phone: str, **fields: Any
) -> MemberGroup:
    return MemberGroup.objects.create(
        store=store, name=name, contact_name=contact_name, contact_phone=contact_phone, **fields
    )


@transaction.atomic
def household_create(*, holder: Member, name: str, share_points: bool = False) -> Household:
    household = Household.objects.create(holder=holder, name=name, share_points=share_points)
    Member.objects.filter(pk=holder.pk).update(household=household)
    return household


@transaction.atomic
def household_add(*, household: Household, member: Member) -> None:
    Member.objects.filter(pk=member.pk).update(household=household)
