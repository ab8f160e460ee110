"""Reads of members shared by console pages, the API and reports (M-2, M-5, G-3)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import QuerySet

from carecard.chain.models import Staff
from carecard.core.audit import AuditAction, audit
from carecard.core.names import is_pinyin_query
from carecard.core.phone import mask_id_number, mask_phone
from carecard.core.roles import Perm
from carecard.members import qr
from carecard.members.models import (
    Card,
    Consent,
    DuplicateDismissal,
    Member,
    MemberStatus,
)

LIVE = (MemberStatus.ACTIVE, MemberStatus.PENDING)
LOOKUP_LIMIT = 20
_PHONE_RE = re.compile(r"^1\d{10}$")
_TAIL_NAME_RE = re.compile(r"^(\d{4})\s*([^\d\s][^\d]*)$|^([^\d\s][^\d]*?)\s*(\d{4})$")
_LOOKUP_FIELDS = (
    "id",
    "member_no",
    "name",
    "gender",
    "birthday",
    "phone",
    "status",
    "home_store_id",
    "completeness",
)


# The hot multi-row lookups are written as SQL: compiling the ORM expression cost ~3 ms on a
# slow store PC, ten times the query itself. Every fragment below is a constant; values are
# always bound parameters.
_HIGH = "\U0010ffff"  # prefix p matches p <= key < p + U+10FFFF, a plain b-tree range


def _raw_members(where: str, params: list[Any], *, order: str, limit: int) -> list[Member]:
    cols = ", ".join(f"m.{Member._meta.get_field(f).column}" for f in _LOOKUP_FIELDS)
    sql = (
        f"SELECT {cols} FROM members_member m"  # noqa: S608 — constant fragments only
        f" WHERE m.status IN ('active', 'pending') AND {where} ORDER BY {order} LIMIT %s"
    )
    return list(Member.objects.raw(sql, [*params, limit]))


def _card_or_tail_pinyin(
    numbers: list[str], tail: str, prefix: str, limit: int
) -> tuple[str, list[Member]]:
    """A card number like "CARD9001" also reads as initials + tail: one statement asks both,
    and the card's live owner wins. Each of the ~100 members with the tail is probed by
    (member, key): COALESCE keeps PostgreSQL from turning EXISTS into a semi-join, and OFFSET 0
    from hashing every key with the prefix instead (6 767 for "zw", 5× slower)."""
    cols = ", ".join(f"m.{Member._meta.get_field(f).column}" for f in _LOOKUP_FIELDS)
    live = "m.status IN ('active', 'pending')"
    marks = ", ".join(["%s"] * len(numbers))
    no_hash = " OFFSET 0" if connection.vendor == "postgresql" else ""  # SQLite: LIMIT first
    # Each branch is wrapped as a subquery: SQLite allows no ORDER BY/LIMIT in a bare branch.
    sql = (
        f"SELECT * FROM (SELECT {cols}, 0 AS via_card FROM members_card c"  # noqa: S608
        f" JOIN members_member m ON m.id = c.member_id WHERE c.number IN ({marks}) AND {live}"
        " ORDER BY m.id LIMIT 1) by_card"
        f" UNION ALL SELECT * FROM (SELECT {cols}, 1 AS via_card FROM members_member m"
        f" WHERE {live} AND m.phone_tail = %s AND COALESCE(EXISTS (SELECT 1"
        " FROM members_membersearchkey k WHERE k.member_id = m.id AND k.key >= %s"
        f" AND k.key < %s{no_hash}), FALSE) ORDER BY m.id LIMIT %s) by_tail"
    )
    rows = list(Member.objects.raw(sql, [*numbers, tail, prefix, prefix + _HIGH, limit]))
    by_card = [m for m in rows if m.via_card == 0]
    if by_card:
        return "card", by_card
    return "phone_tail", rows


def _name_prefix(prefix: str, limit: int) -> list[Member]:
    # Exactly the order of the (name, birthday) index, so the scan stops after ``limit`` rows
    # even for a surname shared by 7 % of the members (an extra sort key would sort them all).
    where = "m.name >= %s AND m.name < %s"
    return _raw_members(where, [prefix, prefix + _HIGH], order="m.name, m.birthday", limit=limit)


def _pinyin(prefix: str, limit: int) -> list[Member]:
    # One statement: the first keys with the prefix (in index order), their members in order of
    # first appearance — a member's first appearance is at its smallest matching key.
    cols = ", ".join(f"m.{Member._meta.get_field(f).column}" for f in _LOOKUP_FIELDS)
    sql = (
        f"SELECT {cols} FROM (SELECT member_id, min(key) AS first_key FROM ("  # noqa: S608
        " SELECT member_id, key FROM members_membersearchkey WHERE key >= %s AND key < %s"
        " ORDER BY key, member_id LIMIT %s) k GROUP BY member_id) s"
        " JOIN members_member m ON m.id = s.member_id"
        " WHERE m.status IN ('active', 'pending') ORDER BY s.first_key, m.id LIMIT %s"
    )
    return list(Member.objects.raw(sql, [prefix, prefix + _HIGH, limit * 2, limit]))


def _prefix_range(qs: QuerySet[Any], column: str, prefix: str) -> QuerySet[Any]:
    """``column`` starts with ``prefix``, written as a range so both SQLite and PostgreSQL use a
    plain b-tree index (LIKE does not on SQLite, nor on PostgreSQL without text_pattern_ops)."""
    return qs.filter(**{f"{column}__gte": prefix, f"{column}__lt": prefix + "\U0010ffff"})


def lookup_members(query: str, *, limit: int = LOOKUP_LIMIT) -> tuple[str, list[Member]]:
    """Find live members at the counter (M-5). Returns (how it matched, members).

    Accepts a full mobile number, the last 4 digits with a name (``5678 张三``), a card number or
    member number, a counter QR token, a name prefix, or pinyin initials / full pinyin (``zsf``).
    """
    q = (query or "").strip()
    if not q:
        return "empty", []
    base = Member.objects.filter(status__in=LIVE).only(*_LOOKUP_FIELDS)
    if q.upper().startswith(qr.PREFIX) and len(q) == 34:
        member_id = qr.read_token(q)
        return "qr", list(base.filter(pk=member_id)) if member_id else []
    compact = q.replace(" ", "").replace("-", "")
    if _PHONE_RE.match(compact):
        return "phone", list(base.filter(phone=compact)[:limit])
    m = _TAIL_NAME_RE.match(q)
    numbers = list(dict.fromkeys((compact, compact.upper())))
    if m and compact.isascii() and compact.isalnum() and is_pinyin_query(m.group(2) or m.group(3)):
        tail = m.group(1) or m.group(4)
        return _card_or_tail_pinyin(numbers, tail, (m.group(2) or m.group(3)).lower(), limit)
    if compact.isascii() and compact.isalnum() and any(ch.isdigit() for ch in compact):
        # Exact identifiers first: a card number like "CARD9001" also reads as name + tail.
        # (Card numbers are ASCII: "5678张三" goes straight to the tail + name search.)
        # One statement: the card's live owner (card numbers are unique).
        owners = base.filter(cards__number__in=numbers).order_by("pk")
        if by_card := list(owners[:1]):
            return "card", by_card
        if compact.isdigit() and len(compact) == 12:
            by_no = list(base.filter(member_no=compact))
            if by_no:
                return "member_no", by_no
    if m:
        tail = m.group(1) or m.group(4)
        name = (m.group(2) or m.group(3)).strip()
        if is_pinyin_query(name):
            return _card_or_tail_pinyin(numbers, tail, name.lower(), limit)
        return "phone_tail", list(_prefix_range(base.filter(phone_tail=tail), "name", name)[:limit])
    if compact.isdigit() and len(compact) == 4:
        return "phone_tail", list(base.filter(phone_tail=compact).order_by("pk")[:limit])
    if compact.isalnum() and any(ch.isdigit() for ch in compact):
        return "member_no", list(base.filter(member_no=compact)[:limit])
    if is_pinyin_query(compact):
        return "pinyin", _pinyin(compact.lower(), limit)
    return "name", _name_prefix(q, limit)


@dataclass
class MemberView:
    """A member as one staff member may see it: masked fields unless the role needs them."""

    member: Member
    phone: str
    id_number: str
    can_see_health: bool
    can_edit: bool
    can_see_contact: bool = False  # unmasked phone, so also e-mail and street address
    health: dict[str, list[str]] = field(default_factory=dict)


def member_view(
    *,
    member: Member,
    actor: Staff | None,
    with_health: bool = False,
    ip: str | None = None,
    terminal_store_id: int | None = None,
    terminal_id: int | None = None,
) -> MemberView:
    """Mask phone/ID per role and store scope (G-3); reading health data is audited (G-4).

    ``actor`` None with ``terminal_store_id`` is a POS terminal: it sees what a clerk of that
    store would see. Lookup rows load only a few columns: a deferred ID number is left blank
    rather than fetched row by row.
    """
    store_id = member.home_store_id
    if actor is None:
        own = terminal_store_id is not None and terminal_store_id == store_id
        see_phone, see_id, see_health = own, False, own
        can_edit = True
    else:
        see_phone = actor.can_for_store(Perm.MEMBER_CONTACT, store_id)
        see_id = actor.can_for_store(Perm.MEMBER_ID_NUMBER, store_id)
        see_health = actor.can_for_store(Perm.MEMBER_HEALTH, store_id)
        can_edit = actor.can(Perm.MEMBER_EDIT)
    raw_id = "" if "id_number" in member.get_deferred_fields() else member.id_number
    view = MemberView(
        member=member,
        phone=(member.phone or "") if see_phone else mask_phone(member.phone or ""),
        id_number=raw_id if see_id else mask_id_number(raw_id),
        can_see_health=see_health,
        can_edit=can_edit,
        can_see_contact=see_phone,
    )
    if with_health and see_health:
        view.health = {
            "allergies": member.allergies,
            "medical_history": member.medical_history,
            "chronic_conditions": member.chronic_conditions,
        }
        audit(
            action=AuditAction.HEALTH_READ,
            actor=actor,
            member_id=member.pk,
            store_id=store_id,
            target=f"member:{member.member_no}",
            ip=ip,
            terminal_id=terminal_id,
        )
    return view


def member_get(pk: int) -> Member:
    return Member.objects.select_related(
        "home_store", "zone", "enrolled_by", "referrer", "group", "household"
    ).get(pk=pk)


def member_by_no(member_no: str) -> Member | None:
    return Member.objects.select_related("home_store").filter(member_no=member_no).first()


def card_by_number(number: str) -> Card | None:
    """A card by its number (as printed, or upper-cased), with its member's home store."""
    number = (number or "").strip()
    if not number or len(number) > 32 or not number.isprintable():
        return None
    cards = list(
        Card.objects.select_related("member", "member__home_store").filter(
            number__in={number, number.upper()}
        )[:2]
    )
    return next((c for c in cards if c.number == number), cards[0] if cards else None)


def member_cards(member: Member) -> list[Card]:
    return list(Card.objects.filter(member=member).order_by("-issued_at", "-pk"))


def current_consents(member: Member) -> dict[str, Consent]:
    latest: dict[str, Consent] = {}
    for consent in Consent.objects.filter(member=member).order_by("-at", "-pk"):
        latest.setdefault(consent.purpose, consent)
    return latest


@dataclass
class DuplicatePair:
    reason: str
    a: Member
    b: Member


def likely_duplicates(*, limit: int = 100) -> list[DuplicatePair]:
    """Pairs of live members with the same name + birthday, or the same name + address (M-2),
    minus pairs already dismissed. Exact phone/ID duplicates cannot exist (constraints)."""
    sql = """
        SELECT a.id, b.id, %s AS reason FROM members_member a
        JOIN members_member b ON a.name = b.name AND a.birthday = b.birthday AND a.id < b.id
        WHERE a.status IN ('active','pending') AND b.status IN ('active','pending')
          AND a.birthday IS NOT NULL
        UNION
        SELECT a.id, b.id, %s AS reason FROM members_member a
        JOIN members_member b ON a.name = b.name AND a.address = b.address AND a.id < b.id
        WHERE a.status IN ('active','pending') AND b.status IN ('active','pending')
          AND a.address <> ''
    """
    with connection.cursor() as cur:
        cur.execute(sql + " ORDER BY 1, 2", ["birthday", "address"])
        rows = cur.fetchall()
    dismissed = set(DuplicateDismissal.objects.values_list("member_a_id", "member_b_id"))
    pairs: dict[tuple[int, int], str] = {}
    for a_id, b_id, reason in rows:
        if (a_id, b_id) in dismissed:
            continue
        pairs.setdefault((a_id, b_id), reason)
        if len(pairs) >= limit:
            break
    ids = {i for pair in pairs for i in pair}
    members = Member.objects.select_related("home_store").in_bulk(ids)
    return [DuplicatePair(reason=r, a=members[a], b=members[b]) for (a, b), r in pairs.items()]
