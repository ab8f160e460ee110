"""Members and cards over HTTP (I-1, M-1..M-5, G-1, G-3): the app's ninja router.

Schemas in and out, and calls into ``members.services`` / ``members.selectors``; nothing else.
Who may see what is decided by ``selectors.member_view`` (masking per store scope); domain errors
are rendered once by ``carecard.api.main``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema, Status
from pydantic import AfterValidator

from carecard.api.auth import Caller, caller
from carecard.api.schemas import ErrorOut
from carecard.core.errors import NotFound, PermissionDenied
from carecard.members import selectors, services
from carecard.members.models import Card, Consent, Member

router = Router()

MEMBERS = ["members 会员"]
CARDS = ["cards 会员卡"]

# Generous bounds on free text: the business rules (lengths, formats) live in clean_member and
# answer with Chinese messages per field; these only keep absurd payloads out.
_TEXT = 300
_LIST = 50


def _storable(value: str) -> str:
    """Refuse NUL, which PostgreSQL text cannot hold (pydantic already refuses lone surrogates)."""
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


Text = Annotated[str, Field(max_length=_TEXT), AfterValidator(_storable)]
Clean = Annotated[str, AfterValidator(_storable)]


# --- schemas out ---------------------------------------------------------------------------


class StoreRefOut(Schema):
    code: str
    name: str


class CardOut(Schema):
    number: str
    kind: Literal["physical", "virtual"]
    status: Literal["active", "frozen", "replaced", "cancelled"]
    issued_at: dt.datetime
    frozen_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    fee: Decimal = Field(..., description="Card fee charged (CNY) 工本费")
    replaced_by: str | None = Field(None, description="Number of the replacement card")


class ConsentOut(Schema):
    purpose: Literal["terms", "marketing", "health_data"]
    granted: bool
    text_version: str
    channel: str
    at: dt.datetime


class MemberBriefOut(Schema):
    member_no: str
    name: str
    gender: str
    birthday: dt.date | None
    phone: str = Field(..., description="Masked (138****5678) unless the member is this store's")
    status: str
    own_store: bool = Field(..., description="The member belongs to the caller's store")


class MemberLookupOut(Schema):
    match: str = Field(
        ...,
        description="How the query matched: phone, phone_tail, card, member_no, qr, name, "
        "pinyin, or empty",
    )
    count: int
    results: list[MemberBriefOut]


class MemberOut(Schema):
    member_no: str
    status: str
    name: str
    gender: str
    birthday: dt.date | None
    birthday_is_lunar: bool
    lunar_birthday: str
    phone: str = Field(..., description="Masked unless the member belongs to the caller's store")
    id_number: str = Field(..., description="Always masked for terminals")
    email: str = Field(..., description="Masked (l***@example.com) like the phone")
    address: str = Field(..., description="Empty for another store's member")
    province: str
    city: str
    district: str
    community: str = Field(..., description="Empty for another store's member")
    health_interests: list[str]
    contact_channels: list[str]
    preferred_channel: str
    acquisition_channel: str
    heard_from: str
    referral_code: str
    home_store: StoreRefOut
    own_store: bool
    can_see_health: bool = Field(
        ..., description="GET /members/{member_no}/health is allowed for this caller"
    )
    completeness: int
    is_complete: bool
    valid_until: dt.date | None
    enrolled_at: dt.datetime
    cards: list[CardOut]
    consents: list[ConsentOut] = Field(..., description="The consent in force per purpose")


class HealthOut(Schema):
    member_no: str
    consent_health: bool
    allergies: list[str]
    medical_history: list[str]
    chronic_conditions: list[str]


class CardReplaceOut(Schema):
    old_card: CardOut
    new_card: CardOut
    fee: Decimal = Field(..., description="Replacement fee to collect (CNY) 补卡费")


# --- schemas in ----------------------------------------------------------------------------


class LookupIn(Schema):
    q: Clean = Field(
        ...,
        min_length=1,
        max_length=100,
        description="Phone, last 4 digits + name (5678 张三), card number, member number, "
        "QR token, name, or pinyin initials (zsf)",
    )


class _ProfileFields(Schema):
    gender: Clean | None = Field(None, max_length=10, description="M/F/U or 男/女")
    birthday: Clean | None = Field(None, max_length=20, description="YYYY-MM-DD (solar)")
    birthday_calendar: Literal["solar", "lunar"] | None = None
    lunar_birthday: Clean | None = Field(
        None, max_length=20, description="YYYY-MM-DD or YYYY-LMM-DD (leap month)"
    )
    lunar_leap: bool | None = None
    id_number: Clean | None = Field(None, max_length=30, description="Mainland ID (GB 11643)")
    email: Clean | None = Field(None, max_length=254)
    address: Clean | None = Field(None, max_length=_TEXT)
    province: Clean | None = Field(None, max_length=_TEXT)
    city: Clean | None = Field(None, max_length=_TEXT)
    district: Clean | None = Field(None, max_length=_TEXT)
    community: Clean | None = Field(None, max_length=_TEXT)
    allergies: list[Text] | None = Field(None, max_length=_LIST, description="Drug allergies")
    medical_history: list[Text] | None = Field(None, max_length=_LIST)
    chronic_conditions: list[Text] | None = Field(
        None, max_length=_LIST, description="hypertension, diabetes, hyperlipidaemia, …"
    )
    health_interests: list[Text] | None = Field(
        None, max_length=_LIST, description="weight_loss, diabetes, maternal_infant, sleep, …"
    )
    contact_channels: list[Text] | None = Field(
        None, max_length=_LIST, description="sms, wechat, email, phone"
    )
    preferred_channel: Clean | None = Field(None, max_length=20)
    acquisition_channel: Clean | None = Field(None, max_length=20)
    heard_from: Clean | None = Field(None, max_length=_TEXT)
    campaign_code: Clean | None = Field(None, max_length=_TEXT)


class MemberEnrolIn(_ProfileFields):
    """The enrolment form (M-1). Keys mirror ``members.validation.clean_member``."""

    name: Clean = Field(..., max_length=_TEXT)
    phone: Clean = Field(..., max_length=40, description="Mainland mobile, 11 digits")
    referrer: Clean | None = Field(None, max_length=40, description="Referral code or member no")
    card_number: Clean | None = Field(None, max_length=40, description="Physical card to bind")
    consent_terms: bool = Field(..., description="Must be true: membership terms 会员章程")
    consent_marketing: bool = False
    consent_health_data: bool = Field(
        False, description="Separate consent, required when health fields are given"
    )


class MemberUpdateIn(_ProfileFields):
    """A partial update: only the keys sent are changed. Consents change via /consents."""

    name: Clean | None = Field(None, max_length=_TEXT)
    phone: Clean | None = Field(None, max_length=40)


class ConsentIn(Schema):
    purpose: Literal["terms", "marketing", "health_data"]
    granted: bool
    channel: Clean = Field("pos", min_length=1, max_length=20, description="pos, paper, wechat…")


class CardReplaceIn(Schema):
    reason: Literal["lost", "damaged"] = "lost"
    new_number: Clean | None = Field(
        None, max_length=32, description="Physical card number to issue; generated if empty"
    )


# --- rendering -----------------------------------------------------------------------------


def _card_out(card: Card, numbers: dict[int, str]) -> CardOut:
    return CardOut(
        number=card.number,
        kind=card.kind,
        status=card.status,
        issued_at=card.issued_at,
        frozen_at=card.frozen_at,
        closed_at=card.closed_at,
        fee=card.fee,
        replaced_by=numbers.get(card.replaced_by_id) if card.replaced_by_id else None,
    )


def _consent_out(consent: Consent) -> ConsentOut:
    return ConsentOut(
        purpose=consent.purpose,
        granted=consent.granted,
        text_version=consent.text_version,
        channel=consent.channel,
        at=consent.at,
    )


def _mask_email(email: str) -> str:
    """l***@example.com — the first letter and the domain."""
    local, at, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if at and local else ("***" if email else "")


def _own(member: Member, who: Caller) -> bool:
    store = who.store
    return store is not None and store.pk == member.home_store_id


def _member_out(member: Member, who: Caller) -> MemberOut:
    view = selectors.member_view(
        member=member, actor=who.actor, terminal_store_id=who.terminal_store_id
    )
    cards = selectors.member_cards(member)
    # Replacement cards are the member's own cards: resolve their numbers without a query.
    numbers = {c.pk: c.number for c in cards}
    consents = selectors.current_consents(member)
    return MemberOut(
        member_no=member.member_no,
        status=member.status,
        name=member.name,
        gender=member.gender,
        birthday=member.birthday,
        birthday_is_lunar=member.birthday_is_lunar,
        lunar_birthday=member.lunar_birthday,
        phone=view.phone,
        id_number=view.id_number,
        # Contact details follow the phone: another store's terminal sees the district only.
        email=member.email if view.can_see_contact else _mask_email(member.email),
        address=member.address if view.can_see_contact else "",
        province=member.province,
        city=member.city,
        district=member.district,
        community=member.community if view.can_see_contact else "",
        health_interests=member.health_interests,
        contact_channels=member.contact_channels,
        preferred_channel=member.preferred_channel,
        acquisition_channel=member.acquisition_channel,
        heard_from=member.heard_from,
        referral_code=member.referral_code,
        home_store=StoreRefOut(code=member.home_store.code, name=member.home_store.name),
        own_store=_own(member, who),
        can_see_health=view.can_see_health,
        completeness=member.completeness,
        is_complete=member.is_complete,
        valid_until=member.valid_until,
        enrolled_at=member.enrolled_at,
        cards=[_card_out(c, numbers) for c in cards],
        consents=[_consent_out(c) for _p, c in sorted(consents.items())],
    )


def _member(member_no: str) -> Member:
    # Member numbers are short and printable; anything else cannot match (and NUL would make
    # PostgreSQL refuse the query).
    member = (
        selectors.member_by_no(member_no)
        if member_no.isprintable() and len(member_no) <= 20
        else None
    )
    if member is None:
        raise NotFound("member", _("会员不存在"))
    return member


def _card(number: str) -> Card:
    card = selectors.card_by_number(number)
    if card is None:
        raise NotFound("card", _("会员卡不存在"))
    return card


ERRORS = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}


# --- endpoints -----------------------------------------------------------------------------


@router.get(
    "/members/lookup",
    response={200: MemberLookupOut, 401: ErrorOut, 422: ErrorOut},
    tags=MEMBERS,
    summary="Find members at the counter 会员查询",
    description="By full phone, last 4 digits + name, card number, member number, QR token, "
    "name prefix or pinyin initials (M-5). At most 20 live members. Phones of other stores' "
    "members are masked.",
)
def member_lookup(request: HttpRequest, params: Query[LookupIn]) -> MemberLookupOut:
    who = caller(request)
    match, members = selectors.lookup_members(params.q)
    results = []
    for member in members:
        view = selectors.member_view(
            member=member, actor=who.actor, terminal_store_id=who.terminal_store_id
        )
        results.append(
            MemberBriefOut(
                member_no=member.member_no,
                name=member.name,
                gender=member.gender,
                birthday=member.birthday,
                phone=view.phone,
                status=member.status,
                own_store=_own(member, who),
            )
        )
    return MemberLookupOut(match=match, count=len(results), results=results)


@router.post(
    "/members",
    response={201: MemberOut, 401: ErrorOut, 403: ErrorOut, 409: ErrorOut, 422: ErrorOut},
    tags=MEMBERS,
    summary="Enrol a member 会员入会",
    description="The enrolment form (M-1) at the caller's store. A virtual card is always "
    "issued; `card_number` binds a physical card too. Invalid input is 422 naming each field; "
    "a phone or ID number that is already a member is 409 with `detail.member_no`.",
)
def member_enrol(request: HttpRequest, payload: MemberEnrolIn) -> Status[MemberOut]:
    who = caller(request)
    member = services.member_enrol(
        actor=who.actor,
        store=who.require_store(),
        data=payload.model_dump(exclude_none=True),
        channel="pos" if who.terminal else "console",
        ip=who.ip,
        terminal_id=who.terminal_id,
    )
    return Status(201, _member_out(member, who))


@router.get(
    "/members/{member_no}",
    response={200: MemberOut, **ERRORS},
    tags=MEMBERS,
    summary="Read a member 会员资料",
    description="Profile (phone/ID masked per store scope), cards and the consents in force.",
)
def member_read(request: HttpRequest, member_no: str) -> MemberOut:
    return _member_out(_member(member_no), caller(request))


@router.patch(
    "/members/{member_no}",
    response={200: MemberOut, 409: ErrorOut, **ERRORS},
    tags=MEMBERS,
    summary="Correct a member's profile 修改会员资料",
    description="Partial update: only the keys sent change. Health fields need the member's "
    "health-data consent and, for a terminal, a member of its own store.",
)
def member_update(request: HttpRequest, member_no: str, payload: MemberUpdateIn) -> MemberOut:
    who = caller(request)
    member = _member(member_no)
    data = payload.model_dump(exclude_unset=True)
    if {"allergies", "medical_history", "chronic_conditions"} & set(data):
        who.require_health_scope(store_id=member.home_store_id)
    member = services.member_update(
        actor=who.actor, member=member, data=data, ip=who.ip, terminal_id=who.terminal_id
    )
    return _member_out(member, who)


@router.get(
    "/members/{member_no}/health",
    response={200: HealthOut, **ERRORS},
    tags=MEMBERS,
    summary="Read a member's health data 健康信息",
    description="Allergies, medical history and chronic conditions (sensitive, G-3). Only for "
    "members of the caller's store (otherwise 403 `permission_denied`); every read is audited.",
)
def member_health_read(request: HttpRequest, member_no: str) -> HealthOut:
    who = caller(request)
    member = _member(member_no)
    view = selectors.member_view(
        member=member,
        actor=who.actor,
        with_health=True,
        ip=who.ip,
        terminal_store_id=who.terminal_store_id,
        terminal_id=who.terminal_id,
    )
    if not view.can_see_health:
        raise PermissionDenied(_("无权查看其他门店会员的健康信息"))
    return HealthOut(
        member_no=member.member_no,
        consent_health=member.consent_health,
        allergies=view.health.get("allergies", []),
        medical_history=view.health.get("medical_history", []),
        chronic_conditions=view.health.get("chronic_conditions", []),
    )


@router.post(
    "/members/{member_no}/consents",
    response={201: ConsentOut, **ERRORS},
    tags=MEMBERS,
    summary="Record a consent decision 授权/撤回授权",
    description="Grant or withdraw consent per purpose (G-1); withdrawal takes effect at once.",
)
def member_consent_record(
    request: HttpRequest, member_no: str, payload: ConsentIn
) -> Status[ConsentOut]:
    who = caller(request)
    consent = services.consent_set(
        actor=who.actor,
        member=_member(member_no),
        purpose=payload.purpose,
        granted=payload.granted,
        channel=payload.channel,
        ip=who.ip,
        terminal_id=who.terminal_id,
    )
    return Status(201, _consent_out(consent))


@router.post(
    "/cards/{number}/report-lost",
    response={200: CardOut, 409: ErrorOut, **ERRORS},
    tags=CARDS,
    summary="Report a card lost 挂失",
    description="Freezes the card at once (M-3); points and balances stay with the member.",
)
def card_report_lost(request: HttpRequest, number: str) -> CardOut:
    who = caller(request)
    card = services.card_report_lost(
        actor=who.actor, card=_card(number), ip=who.ip, terminal_id=who.terminal_id
    )
    return _card_out(card, {})


@router.post(
    "/cards/{number}/replace",
    response={201: CardReplaceOut, 409: ErrorOut, **ERRORS},
    tags=CARDS,
    summary="Replace a lost or damaged card 补卡/换卡",
    description="Issues a new card (a lost card must be reported first). Points and balances "
    "carry over; the fee follows the membership policy.",
)
def card_replace(
    request: HttpRequest, number: str, payload: CardReplaceIn
) -> Status[CardReplaceOut]:
    who = caller(request)
    new = services.card_replace(
        actor=who.actor,
        card=_card(number),
        new_number=payload.new_number or "",
        reason=payload.reason,
        store=who.store,
        ip=who.ip,
        terminal_id=who.terminal_id,
    )
    old = _card(number)
    return Status(
        201,
        CardReplaceOut(
            old_card=_card_out(old, {new.pk: new.number}), new_card=_card_out(new, {}), fee=new.fee
        ),
    )
