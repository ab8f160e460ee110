"""Member import (I-2): from an ERP/POS export to members exactly as enrolment creates them.

Each row is validated by ``clean_member`` — the same function the counter form and the API use,
so an import refuses exactly what enrolment refuses — plus the import's own columns (external
code, store code, enrolment time, physical card number). A valid row becomes a member with the
same shape ``member_enrol`` gives it: encrypted ID number and health fields, blind index,
pinyin search keys, a virtual card ``"V" + member_no``, three consent rows, completeness and
trading-area zone.

Two write paths, same rules:

* standard (SQLite and PostgreSQL): batches of ``batch_size`` rows; per batch a handful of
  queries find existing members (by external code), phone / ID-number / card owners, then one
  transaction bulk-creates and bulk-updates. Memory stays bounded by the batch.
* bulk (``bulk=True``, PostgreSQL only): rows are validated in worker processes and streamed with
  ``COPY`` into a temporary staging table; duplicates and conflicts are found with set-based SQL,
  then one ``INSERT … SELECT`` writes the new members and one ``UPDATE … FROM`` the existing
  ones; cards, consents and search keys follow as ``INSERT … SELECT``. One transaction for the file.

A re-import updates the member with the same external code, only in the columns the file has;
it never creates a second member. A phone, ID number or card number that belongs to another
member — in the database or in an earlier row of the same file — rejects the row.
"""

# Raw SQL below (bulk path) interpolates only identifiers generated here (the staging table's
# name, model columns); every value is a bound parameter or comes from the COPY stream.
# ruff: noqa: S608

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from carecard.chain.models import Staff, Store, TradingZone
from carecard.core.audit import AuditAction, audit
from carecard.core.crypto import blind_index
from carecard.core.idcard import InvalidIdNumber, parse_id_number
from carecard.core.importing import (
    Column,
    HeaderMap,
    ImportFailed,
    ImportReport,
    chunked,
    parse_bool,
    parse_datetime,
    read_raw,
)
from carecard.core.names import pinyin_keys
from carecard.core.phone import InvalidPhone, normalize_mobile
from carecard.members.models import (
    AcquisitionChannel,
    Card,
    CardKind,
    ChronicCondition,
    Consent,
    ConsentPurpose,
    ContactChannel,
    Gender,
    HealthInterest,
    Member,
    MemberSearchKey,
    MemberStatus,
)
from carecard.members.services import (
    DEFAULT_REQUIRED_FIELDS,
    LIVE,
    completeness,
    fill_address,
    policy_get,
    valid_until_for,
)
from carecard.members.validation import (  # the private helpers keep the fast path identical
    _GENDER_WORDS,
    HEALTH_FIELDS,
    _as_list,
    _choices,
    clean_member,
)

CONSENT_CHANNEL = "import"
_REFERRAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_GENDERS = frozenset(Gender.values)

MEMBER_COLUMNS = (
    Column(
        "external_code",
        "外部编码",
        ("会员编码", "原会员号", "原卡号", "external_code", "external code", "member code"),
    ),
    Column("name", "姓名", ("会员姓名", "顾客姓名", "name"), required=True),
    Column("phone", "手机", ("手机号", "手机号码", "电话", "phone", "mobile"), required=True),
    Column("gender", "性别", ("gender", "sex")),
    Column("birthday", "生日", ("出生日期", "生日日期", "birthday", "birth date", "dob")),
    Column("birthday_lunar", "农历生日", ("按农历", "是否农历", "lunar", "lunar birthday")),
    Column("lunar_leap", "闰月", ("农历闰月", "lunar_leap", "leap month")),
    Column("id_number", "身份证号", ("身份证", "证件号码", "id_number", "id number")),
    Column("email", "邮箱", ("电子邮箱", "email", "e-mail")),
    Column("address", "地址", ("住址", "家庭住址", "联系地址", "address")),
    Column("province", "省", ("省份", "province")),
    Column("city", "市", ("城市", "city")),
    Column("district", "区县", ("区", "县", "区/县", "district", "county")),
    Column("community", "街道小区", ("小区", "街道", "社区", "community")),
    Column("allergies", "药物过敏", ("过敏史", "过敏药物", "allergies")),
    Column("medical_history", "既往病史", ("病史", "medical_history", "history")),
    Column("chronic_conditions", "慢性病", ("慢病", "chronic_conditions", "conditions")),
    Column("health_interests", "健康兴趣", ("健康资讯兴趣", "兴趣", "interests")),
    Column("contact_channels", "联系渠道", ("可联系渠道", "contact_channels", "channels")),
    Column("preferred_channel", "首选渠道", ("preferred_channel", "preferred channel")),
    Column("acquisition_channel", "开发渠道", ("入会渠道", "acquisition_channel", "source")),
    Column("heard_from", "传播渠道", ("了解途径", "heard_from", "heard from")),
    Column("campaign_code", "推广码", ("活动码", "campaign_code", "campaign")),
    Column("store_code", "门店编码", ("开卡门店", "门店代码", "store_code", "store")),
    Column("staff_code", "开卡员工", ("员工工号", "开卡员工工号", "staff_code", "staff")),
    Column("enrolled_at", "入会时间", ("开卡时间", "入会日期", "开卡日期", "enrolled_at")),
    Column(
        "consent_terms",
        "同意会员章程",
        ("会员章程", "入会协议", "consent_terms", "terms"),
        required=True,
    ),
    Column("consent_marketing", "同意营销信息", ("营销授权", "consent_marketing", "marketing")),
    Column(
        "consent_health_data",
        "同意健康信息处理",
        ("健康信息授权", "consent_health_data", "consent_health", "health consent"),
    ),
    Column("card_number", "卡号", ("实体卡号", "会员卡号", "card_number", "card number")),
)

# Member fields an import can set, by the column that carries them (for re-imports: a column
# that is absent from the file leaves the member's value untouched).
_UPDATE_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "phone": ("phone", "phone_tail"),
    "gender": ("gender",),
    "birthday": ("birthday", "birthday_is_lunar", "lunar_birthday"),
    "id_number": ("id_number", "id_number_index"),
    "email": ("email",),
    "address": ("address", "province", "city", "district", "community", "zone"),
    "province": ("province",),
    "city": ("city",),
    "district": ("district",),
    "community": ("community",),
    "allergies": ("allergies",),
    "medical_history": ("medical_history",),
    "chronic_conditions": ("chronic_conditions",),
    "health_interests": ("health_interests",),
    "contact_channels": ("contact_channels",),
    "preferred_channel": ("preferred_channel",),
    "acquisition_channel": ("acquisition_channel",),
    "heard_from": ("heard_from",),
    "campaign_code": ("campaign_code",),
    "store_code": ("home_store",),
    "staff_code": ("enrolled_by",),
    "enrolled_at": ("enrolled_at",),
    "consent_marketing": ("consent_marketing",),
    "consent_health_data": ("consent_health",),
}
_CLEAN_KEYS = (
    "name",
    "phone",
    "gender",
    "birthday",
    "id_number",
    "email",
    "address",
    "province",
    "city",
    "district",
    "community",
    "allergies",
    "medical_history",
    "chronic_conditions",
    "health_interests",
    "contact_channels",
    "preferred_channel",
    "heard_from",
    "campaign_code",
)


# --- fast path of clean_member ----------------------------------------------------------------
#
# ``clean_member`` is the single source of truth. Most rows of an export are plain (ISO dates,
# known labels, no e-mail, no lunar birthday); for those ``_fast_clean`` computes exactly the
# same output an order of magnitude faster, with the per-value work cached. It never rejects: any
# value it is not sure about returns None and the row goes through ``clean_member``, which then
# produces the result and the error messages. tests/imports/test_fast_clean.py checks the two
# agree on generated rows.

_WS_RE = re.compile(r"\s")
_ISO_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TEXT_LIMITS = (
    ("address", 300),
    ("province", 32),
    ("city", 32),
    ("district", 32),
    ("community", 200),
    ("heard_from", 50),
    ("campaign_code", 32),
)


@lru_cache(maxsize=1 << 16)
def _iso_date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


@lru_cache(maxsize=1 << 14)
def _cached_list(raw: str) -> tuple[str, ...]:
    return tuple(_as_list(raw))


@lru_cache(maxsize=1 << 14)
def _cached_choices(field_name: str, raw: str, choices: type) -> tuple[str, ...] | None:
    errors: list[Any] = []
    single = field_name in ("preferred_channel", "acquisition_channel")
    values = _choices(field_name, raw, choices, errors, single=single)
    return None if errors else tuple(values)


@lru_cache(maxsize=1 << 12)
def _local_date(at: dt.datetime) -> dt.date:
    return timezone.localdate(at)


def _fast_clean(data: dict[str, Any], today: dt.date) -> dict[str, Any] | None:
    """``clean_member(data, today=today)`` for a plain, valid row; None when unsure."""
    if "birthday_calendar" in data:
        return None
    name = data.get("name") or ""
    if not isinstance(name, str) or not name or len(name) > 50 or _WS_RE.search(name):
        return None
    try:
        phone = normalize_mobile(str(data.get("phone") or "").strip())
    except InvalidPhone:
        return None
    out: dict[str, Any] = {"name": name, "phone": phone, "id_number": ""}
    raw_id = str(data.get("id_number") or "").strip()
    id_info = None
    if raw_id:
        try:
            id_info = parse_id_number(raw_id, today=today)
        except InvalidIdNumber:
            return None
        out["id_number"] = id_info.number
    raw_bd = data.get("birthday")
    birthday = None
    if raw_bd not in (None, ""):
        if not isinstance(raw_bd, str) or not _ISO_DATE_RE.fullmatch(raw_bd):
            return None
        birthday = _iso_date(raw_bd)
        if birthday is None or birthday > today or birthday.year < 1890:
            return None
    if id_info:
        if birthday and birthday != id_info.birthday:
            return None
        birthday = birthday or id_info.birthday
    out["birthday_is_lunar"] = False
    out["lunar_birthday"] = ""
    out["birthday"] = birthday
    raw_gender = str(data.get("gender") or "").strip()
    gender = raw_gender if raw_gender in _GENDERS else _GENDER_WORDS.get(raw_gender.lower())
    if gender is None:
        return None
    if id_info:
        if gender in ("M", "F") and gender != id_info.gender:
            return None
        gender = id_info.gender
    out["gender"] = gender or "U"
    if str(data.get("email") or "").strip():
        return None
    out["email"] = ""
    for key, limit in _TEXT_LIMITS:
        value = str(data.get(key) or "").strip()
        if len(value) > limit:
            return None
        out[key] = value
    for key in ("allergies", "medical_history"):
        raw = data.get(key)
        if raw is not None and not isinstance(raw, str):
            return None
        out[key] = list(_cached_list(raw or ""))
    for key, choices in (
        ("chronic_conditions", ChronicCondition),
        ("health_interests", HealthInterest),
        ("contact_channels", ContactChannel),
        ("preferred_channel", ContactChannel),
    ):
        raw = data.get(key)
        if raw is not None and not isinstance(raw, str):
            return None
        found = _cached_choices(key, raw or "", choices)
        if found is None:
            return None
        out[key] = list(found)
    pref = out["preferred_channel"]
    out["preferred_channel"] = pref[0] if pref else ""
    if pref and pref[0] not in out["contact_channels"]:
        out["contact_channels"].append(pref[0])
    acq = _cached_choices(
        "acquisition_channel",
        str(data.get("acquisition_channel") or "in_store"),
        AcquisitionChannel,
    )
    if acq is None:
        return None
    out["acquisition_channel"] = acq[0] if acq else "in_store"
    for purpose in ("terms", "marketing", "health_data"):
        value = data.get(f"consent_{purpose}", False)
        if not isinstance(value, bool):
            return None
        out[f"consent_{purpose}"] = value
    if not out["consent_terms"]:
        return None
    if any(out[f] for f in HEALTH_FIELDS) and not out["consent_health_data"]:
        return None
    return out


# --- context shared with worker processes ---------------------------------------------------


@dataclass
class ImportContext:
    """Everything row preparation needs, loaded once; picklable, no ORM objects."""

    now: dt.datetime
    present: frozenset[str]
    stores: dict[str, tuple[int, int]]  # code -> (store id, region id)
    default_store: tuple[int, int] | None
    staff: dict[str, int]  # staff code or login -> staff id
    zones: dict[int, list[tuple[int, int, str, tuple[str, ...]]]]  # region -> zones
    required_fields: list[str]
    validity_years: int | None
    versions: dict[str, str]
    labels: dict[str, str] = field(default_factory=dict)
    store_regions: dict[int, int] = field(default_factory=dict)

    @classmethod
    def load(cls, *, hmap: HeaderMap, default_store: Store | None) -> ImportContext:
        policy = policy_get()
        stores = {s.code: (s.pk, s.region_id) for s in Store.objects.only("code", "region_id")}
        staff: dict[str, int] = {}
        for pk, username, code in Staff.objects.values_list("pk", "username", "staff_code"):
            staff.setdefault(username, pk)
            if code:
                staff[code] = pk  # a staff code wins over an equal login name
        zones: dict[int, list[tuple[int, int, str, tuple[str, ...]]]] = {}
        for zone in TradingZone.objects.select_related("store").order_by("store_id", "pk"):
            zones.setdefault(zone.store.region_id, []).append(
                (zone.pk, zone.store_id, zone.district, tuple(zone.keywords or ()))
            )
        return cls(
            now=timezone.now(),
            present=frozenset(hmap.index),
            stores=stores,
            default_store=(default_store.pk, default_store.region_id) if default_store else None,
            staff=staff,
            zones=zones,
            required_fields=list(policy.required_fields or []),
            validity_years=policy.validity_years,
            versions={
                ConsentPurpose.TERMS: policy.terms_version,
                ConsentPurpose.MARKETING: policy.marketing_text_version,
                ConsentPurpose.HEALTH_DATA: policy.health_text_version,
            },
            labels={key: hmap.column_name(key) for key in (c.key for c in MEMBER_COLUMNS)},
            store_regions={pk: region for pk, region in stores.values()},
        )

    def zone_for(self, *, store: tuple[int, int], district: str, text: str) -> int | None:
        """In-memory twin of ``members.services.zone_for`` (same order, same matching)."""
        best = None
        for pk, store_id, zone_district, keywords in self.zones.get(store[1], ()):
            if district and zone_district not in (district, ""):
                continue
            if keywords and any(k and k in text for k in keywords):
                if store_id == store[0]:
                    return pk
                best = best or pk
        return best


@dataclass(slots=True)
class Prepared:
    """A validated row, ready to write."""

    row: int
    external_code: str | None
    values: dict[str, Any]  # Member field values (clean_member output + derived)
    consents: dict[str, bool]
    store: tuple[int, int] | None  # (store id, region id); None: keep the member's store
    enrolled_by_id: int | None
    enrolled_at: dt.datetime
    at_given: bool
    id_index: str | None
    card_number: str
    keys: list[str]
    zone_id: int | None
    completeness: int
    is_complete: bool
    valid_until: dt.date | None


RowErrors = list[tuple[str, str, str]]  # (column key, reason, code)


def prepare_row(rec: dict[str, str], row: int, ctx: ImportContext) -> Prepared | RowErrors:
    """Validate one record and compute everything ``member_enrol`` would; no database."""
    errors: RowErrors = []
    present = ctx.present
    data: dict[str, Any] = {k: rec[k] for k in _CLEAN_KEYS if k in present}

    def flag(key: str) -> bool:
        try:
            return parse_bool(rec.get(key, ""), default=False)
        except ValueError as exc:
            errors.append((key, str(exc), "invalid"))
            return False

    for key in ("consent_terms", "consent_marketing", "consent_health_data"):
        data[key] = flag(key)
    if "birthday_lunar" in present and flag("birthday_lunar"):
        data["birthday_calendar"] = "lunar"
        data["lunar_birthday"] = rec.get("birthday", "")
        data["lunar_leap"] = flag("lunar_leap")
    acquisition = rec.get("acquisition_channel", "")
    data["acquisition_channel"] = acquisition or AcquisitionChannel.IMPORT

    external_code = rec.get("external_code", "") or None
    if external_code and len(external_code) > 64:
        errors.append(("external_code", _("不能超过%(n)d个字") % {"n": 64}, "too_long"))
    store_code = rec.get("store_code", "")
    # Without a store a row can still update an existing member (the writer refuses to create
    # a member without one).
    store = ctx.stores.get(store_code) if store_code else ctx.default_store
    if store is None and store_code:
        errors.append(("store_code", _("门店编码不存在：%(c)s") % {"c": store_code}, "unknown"))
    enrolled_by_id = None
    staff_code = rec.get("staff_code", "")
    if staff_code:
        enrolled_by_id = ctx.staff.get(staff_code)
        if enrolled_by_id is None:
            errors.append(("staff_code", _("员工不存在：%(c)s") % {"c": staff_code}, "unknown"))
    enrolled_at = ctx.now
    raw_at = rec.get("enrolled_at", "")
    if raw_at:
        try:
            enrolled_at = parse_datetime(raw_at)
            if enrolled_at > ctx.now:
                errors.append(("enrolled_at", _("入会时间不能晚于现在"), "future"))
                enrolled_at = ctx.now
        except ValueError as exc:
            errors.append(("enrolled_at", str(exc), "invalid"))
    card_number = rec.get("card_number", "")
    if card_number and (not card_number.isalnum() or not card_number.isascii()):
        errors.append(("card_number", _("卡号只能是字母和数字"), "invalid"))
    elif len(card_number) > 32:
        errors.append(("card_number", _("不能超过%(n)d个字") % {"n": 32}, "too_long"))

    today = _local_date(enrolled_at)
    fast = None if errors else _fast_clean(data, today)
    values, field_errors = (fast, []) if fast is not None else clean_member(data, today=today)
    for e in field_errors:
        key = "birthday" if e.field == "lunar_birthday" else e.field
        errors.append((key, str(e.message), e.code))
    if errors:
        return errors
    # Structured columns win; the (slow) address parser runs only when they are missing, exactly
    # as at enrolment.
    fill_address(values)
    pct, complete = completeness(values, ctx.required_fields)
    consents = {p: values.pop(f"consent_{p}") for p in ("terms", "marketing", "health_data")}
    valid_until = valid_until_for(ctx.validity_years, _local_date(enrolled_at))
    return Prepared(
        row=row,
        external_code=external_code,
        values=values,
        consents=consents,
        store=store,
        enrolled_by_id=enrolled_by_id,
        enrolled_at=enrolled_at,
        at_given=bool(raw_at),
        id_index=blind_index(values["id_number"]) if values["id_number"] else None,
        card_number=card_number,
        keys=_name_keys(values["name"]),
        zone_id=ctx.zone_for(
            store=store,
            district=values.get("district", ""),
            text=f"{values.get('community', '')}{values.get('address', '')}",
        )
        if store
        else None,
        completeness=pct,
        is_complete=complete,
        valid_until=valid_until,
    )


@lru_cache(maxsize=1 << 17)
def _name_keys(name: str) -> list[str]:
    # Names repeat a lot across a chain's members; callers never mutate the list.
    return list(dict.fromkeys(k[:64] for k in pinyin_keys(name)))


class _PkSet:
    """Member ids written by this run, as a bitmap: bounded memory at millions of rows."""

    def __init__(self) -> None:
        self.bits = bytearray()

    def add(self, pk: int) -> None:
        byte = pk >> 3
        if byte >= len(self.bits):
            self.bits.extend(bytes(byte - len(self.bits) + 1 + len(self.bits) // 2))
        self.bits[byte] |= 1 << (pk & 7)

    def __contains__(self, pk: int) -> bool:
        byte = pk >> 3
        return byte < len(self.bits) and bool(self.bits[byte] & (1 << (pk & 7)))


class _Numbers:
    """Random 12-digit member numbers and 8-character referral codes, checked in batches."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random(os.urandom(16))

    def member_no(self) -> str:
        return str(self.rng.randrange(10**11, 10**12))

    def referral_code(self) -> str:
        return "".join(self.rng.choices(_REFERRAL_ALPHABET, k=8))


# --- public API -----------------------------------------------------------------------------


def import_members(
    path: Path,
    *,
    bulk: bool = False,
    actor: Staff | None = None,
    default_store: Store | None = None,
    batch_size: int = 2000,
    workers: int | None = None,
) -> ImportReport:
    """Import members from a CSV/XLSX file; see the module docstring and docs/import.md.

    ``default_store`` is the enrolling store for rows without a store code. ``bulk`` selects the
    PostgreSQL COPY path (refused on other databases); ``workers`` is its number of validation
    processes (default: 2 on a multi-core machine for files over 2 MB, else in-process).
    """
    path = Path(path)
    if bulk and connection.vendor != "postgresql":
        raise ImportFailed(
            _(
                "批量通道 (--bulk) 只支持 PostgreSQL（使用 COPY），当前数据库是 %(db)s；"
                "请去掉 --bulk 使用标准导入"
            )
            % {"db": connection.vendor}
        )
    hmap, raw_rows = read_raw(path, MEMBER_COLUMNS)
    report = ImportReport(kind="members", source=str(path))
    ctx = ImportContext.load(hmap=hmap, default_store=default_store)
    if not hmap.has("external_code"):
        report.warnings.append(_("文件没有外部编码列：重复导入同一文件会因手机号重复被拒绝"))
    if hmap.unknown:
        report.warnings.append(_("未识别的列已忽略：%(c)s") % {"c": "、".join(hmap.unknown)})
    if bulk:
        if workers is None:
            big = path.stat().st_size > 2 * 1024 * 1024
            workers = min(2, os.cpu_count() or 1) if big else 0
        _BulkImport(ctx=ctx, hmap=hmap, report=report, actor=actor).run(raw_rows, workers)
    else:
        _StandardImport(ctx=ctx, hmap=hmap, report=report, actor=actor).run(raw_rows, batch_size)
    audit(
        action=AuditAction.IMPORT,
        actor=actor,
        target="import:members",
        detail={
            "file": path.name,
            "bulk": bulk,
            "total": report.total,
            "created": report.created,
            "updated": report.updated,
            "rejected": report.rejected,
        },
    )
    return report.finish()


def _reject(report: ImportReport, ctx: ImportContext, row: int, ref: str | None, errs: RowErrors):
    for key, reason, code in errs:
        report.reject(row, ctx.labels.get(key, key), reason, code=code, ref=ref or "")


def _records(
    raw_rows: Iterable[Sequence[Any]], hmap: HeaderMap
) -> Iterator[tuple[int, dict[str, str]]]:
    for values in raw_rows:
        record = hmap.record(values[1:])
        if any(record.values()):
            yield values[0], record


# --- standard path --------------------------------------------------------------------------


class _StandardImport:
    def __init__(
        self, *, ctx: ImportContext, hmap: HeaderMap, report: ImportReport, actor: Staff | None
    ) -> None:
        self.ctx = ctx
        self.hmap = hmap
        self.report = report
        self.actor_id = actor.pk if actor is not None and actor.pk else None
        self.written = _PkSet()
        self.numbers = _Numbers()

    def run(self, raw_rows: Iterable[Sequence[Any]], batch_size: int) -> None:
        for batch in chunked(_records(raw_rows, self.hmap), batch_size):
            items: list[Prepared] = []
            for row, rec in batch:
                self.report.total += 1
                result = prepare_row(rec, row, self.ctx)
                if isinstance(result, list):
                    _reject(self.report, self.ctx, row, rec.get("external_code"), result)
                else:
                    items.append(result)
            self._dedupe(items)
            if items:
                self._write(items)

    def _fail(self, item: Prepared, key: str, reason: str, code: str) -> None:
        _reject(self.report, self.ctx, item.row, item.external_code, [(key, reason, code)])

    def _dedupe(self, items: list[Prepared]) -> None:
        """Reject later rows of the batch that repeat an earlier row's code, phone, ID or card."""
        seen: dict[str, dict[Any, int]] = {k: {} for k in ("ext", "phone", "id", "card")}
        keep = []
        for item in items:
            checks = (
                ("ext", item.external_code, "external_code", _("外部编码")),
                ("phone", item.values["phone"], "phone", _("手机号")),
                ("id", item.id_index, "id_number", _("身份证号")),
                ("card", item.card_number or None, "card_number", _("卡号")),
            )
            bad = False
            for kind, value, key, label in checks:
                if value is not None and value in seen[kind]:
                    self._fail(
                        item,
                        key,
                        _("%(what)s与本文件第 %(n)d 行重复")
                        % {"what": label, "n": seen[kind][value]},
                        "duplicate_in_file",
                    )
                    bad = True
                    break
            if bad:
                continue
            for kind, value, _key, _label in checks:
                if value is not None:
                    seen[kind][value] = item.row
            keep.append(item)
        items[:] = keep

    def _write(self, items: list[Prepared]) -> None:
        creates, updates, cards = self._decide(items)
        if not creates and not updates:
            return
        written: list[int] = []
        try:
            with transaction.atomic():
                if creates:
                    written += self._create(creates)
                if updates:
                    written += self._update(updates, cards)
        except IntegrityError:
            # A concurrent enrolment took a phone / ID / number between the checks and the
            # insert: retry row by row so only the conflicting rows are rejected.
            retry = [*creates, *(item for item, _m in updates)]
            if len(retry) == 1:
                self._fail(
                    retry[0], "phone", _("与同时进行的入会或导入冲突，请重新导入该行"), "conflict"
                )
                return
            for item in retry:
                self._write([item])
            return
        for pk in written:
            self.written.add(pk)
        self.report.created += len(creates)
        self.report.updated += len(updates)

    def _decide(
        self, items: list[Prepared]
    ) -> tuple[list[Prepared], list[tuple[Prepared, Member]], dict[str, int]]:
        """Split a batch into creates and updates; report the rows that conflict."""
        codes = [i.external_code for i in items if i.external_code]
        existing = {m.external_code: m for m in Member.objects.filter(external_code__in=codes)}
        phones = {
            phone: (pk, no)
            for phone, pk, no in Member.objects.filter(
                status__in=LIVE, phone__in=[i.values["phone"] for i in items]
            ).values_list("phone", "pk", "member_no")
        }
        ids = {
            index: (pk, no)
            for index, pk, no in Member.objects.filter(
                status__in=LIVE, id_number_index__in=[i.id_index for i in items if i.id_index]
            ).values_list("id_number_index", "pk", "member_no")
        }
        cards = dict(
            Card.objects.filter(
                number__in=[i.card_number for i in items if i.card_number]
            ).values_list("number", "member_id")
        )
        creates: list[Prepared] = []
        updates: list[tuple[Prepared, Member]] = []
        for item in items:
            member = existing.get(item.external_code) if item.external_code else None
            target = member.pk if member else None
            error = None
            if member is not None and member.pk in self.written:
                error = ("external_code", _("外部编码在本文件中重复（较早的行已导入该会员）"))
            elif member is not None and member.status not in LIVE:
                error = ("external_code", _("该外部编码对应的会员已合并或注销"))
            elif (owner := phones.get(item.values["phone"])) and owner[0] != target:
                error = ("phone", self._dup_text(_("手机号"), owner))
            elif item.id_index and (owner := ids.get(item.id_index)) and owner[0] != target:
                error = ("id_number", self._dup_text(_("身份证号"), owner))
            elif item.card_number and cards.get(item.card_number, target) != target:
                error = ("card_number", _("该卡号已被使用"))
            if member is None and item.store is None and not error:
                error = ("store_code", _("请填写开卡门店编码"))
            if error:
                self._fail(item, error[0], error[1], "duplicate")
            elif member is None:
                creates.append(item)
            else:
                updates.append((item, member))
        return creates, updates, cards

    def _dup_text(self, what: str, owner: tuple[int, str]) -> str:
        if owner[0] in self.written:
            return _("%(what)s与本文件中较早的一行重复（已导入为会员号 %(no)s）") % {
                "what": what,
                "no": owner[1],
            }
        return _("该%(what)s已是会员（会员号 %(no)s）") % {"what": what, "no": owner[1]}

    def _fresh_numbers(self, n: int) -> list[tuple[str, str]]:
        """n (member number, referral code) pairs unused in the database and among themselves."""
        out: list[tuple[str, str]] = []
        while len(out) < n:
            want = n - len(out)
            nos = {self.numbers.member_no() for _i in range(want)}
            refs = {self.numbers.referral_code() for _i in range(want)}
            nos -= set(Member.objects.filter(member_no__in=nos).values_list("member_no", flat=True))
            nos -= {
                number[1:]
                for number in Card.objects.filter(number__in=["V" + x for x in nos]).values_list(
                    "number", flat=True
                )
            }
            refs -= set(
                Member.objects.filter(referral_code__in=refs).values_list(
                    "referral_code", flat=True
                )
            )
            nos -= {a for a, _b in out}
            refs -= {b for _a, b in out}
            out.extend(zip(nos, refs, strict=False))
        return out

    def _create(self, items: list[Prepared]) -> list[int]:
        numbers = self._fresh_numbers(len(items))
        members = []
        for item, (member_no, referral) in zip(items, numbers, strict=True):
            assert item.store is not None  # checked by _write_batch
            members.append(
                Member(
                    **item.values,
                    member_no=member_no,
                    referral_code=referral,
                    external_code=item.external_code,
                    id_number_index=item.id_index,
                    phone_tail=(item.values["phone"] or "")[-4:],
                    status=MemberStatus.ACTIVE,
                    home_store_id=item.store[0],
                    enrolled_by_id=item.enrolled_by_id,
                    zone_id=item.zone_id,
                    consent_marketing=item.consents["marketing"],
                    consent_health=item.consents["health_data"],
                    completeness=item.completeness,
                    is_complete=item.is_complete,
                    valid_until=item.valid_until,
                    enrolled_at=item.enrolled_at,
                )
            )
        Member.objects.bulk_create(members)
        cards: list[dict[str, Any]] = []
        consents: list[dict[str, Any]] = []
        keys: list[dict[str, Any]] = []
        for item, member in zip(items, members, strict=True):
            assert item.store is not None
            card = {"member_id": member.pk, "issued_at": item.enrolled_at}
            card["issued_store_id"] = item.store[0]
            cards.append({**card, "number": "V" + member.member_no, "kind": CardKind.VIRTUAL})
            if item.card_number:
                cards.append({**card, "number": item.card_number, "kind": CardKind.PHYSICAL})
            for purpose, granted in item.consents.items():
                consents.append(self._consent(member.pk, purpose, granted, item.enrolled_at))
            keys.extend({"member_id": member.pk, "key": k} for k in item.keys)
        _insert_rows(Card, cards)
        _insert_rows(Consent, consents)
        _insert_rows(MemberSearchKey, keys)
        return [m.pk for m in members]

    def _consent(
        self, member_id: int, purpose: str, granted: bool, at: dt.datetime
    ) -> dict[str, Any]:
        return {
            "member_id": member_id,
            "purpose": purpose,
            "granted": granted,
            "text_version": self.ctx.versions[purpose],
            "channel": CONSENT_CHANNEL,
            "at": at,
            "recorded_by_id": self.actor_id,
        }

    def _update(self, pairs: list[tuple[Prepared, Member]], cards: dict[str, int]) -> list[int]:
        now = timezone.now()
        fields: set[str] = set()
        consents: list[dict[str, Any]] = []
        renamed: list[tuple[Member, list[str]]] = []
        new_cards: list[dict[str, Any]] = []
        required = self.ctx.required_fields or DEFAULT_REQUIRED_FIELDS
        for item, member in pairs:
            changes = _changes(item, member, self.ctx)
            if "name" in changes and changes["name"] != member.name:
                renamed.append((member, item.keys))
            for purpose, attr in (
                ("marketing", "consent_marketing"),
                ("health_data", "consent_health"),
            ):
                if attr in changes and changes[attr] != getattr(member, attr):
                    consents.append(self._consent(member.pk, purpose, changes[attr], now))
            for name, value in changes.items():
                setattr(member, name, value)
            member.completeness, member.is_complete = completeness(
                {f: getattr(member, f, None) for f in required}, self.ctx.required_fields
            )
            member.updated_at = now
            fields.update(changes)
            if item.card_number and item.card_number not in cards:
                new_cards.append(
                    {
                        "member_id": member.pk,
                        "number": item.card_number,
                        "kind": CardKind.PHYSICAL,
                        "issued_at": now,
                        "issued_store_id": member.home_store_id,
                    }
                )
        fields.update({"completeness", "is_complete", "updated_at"})
        Member.objects.bulk_update([m for _i, m in pairs], sorted(fields))
        _insert_rows(Consent, consents)
        _insert_rows(Card, new_cards)
        if renamed:
            MemberSearchKey.objects.filter(member__in=[m for m, _k in renamed]).delete()
            _insert_rows(
                MemberSearchKey,
                [{"member_id": m.pk, "key": k} for m, keys in renamed for k in keys],
            )
        return [m.pk for _i, m in pairs]


def _insert_rows(model: Any, rows: list[dict[str, Any]]) -> None:
    """Plain INSERTs of child rows (cards, consents, search keys): each column gets the given
    value or the field's default, prepared by the field exactly as the ORM would. Building model
    instances for millions of small rows cost most of the standard path's time."""
    if not rows:
        return
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    defaults = {f.attname: f.get_default() for f in fields}
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} "
        f"({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    # str / int / bool / None go to the driver as they are (what get_db_prep_save returns for
    # them on these fields); dates, decimals and JSON go through the field.
    plain = (str, int, bool, type(None))
    always = [f.get_internal_type() == "JSONField" for f in fields]
    params = []
    for row in rows:
        values = []
        for f, prep in zip(fields, always, strict=True):
            value = row.get(f.attname, defaults[f.attname])
            if prep or type(value) not in plain:
                value = f.get_db_prep_save(value, connection)
            values.append(value)
        params.append(values)
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _changes(item: Prepared, member: Member, ctx: ImportContext) -> dict[str, Any]:
    """The member fields a re-imported row sets: only those whose columns the file has (an
    empty store or enrolment-time cell keeps the member's value)."""
    v = item.values
    present = ctx.present
    out: dict[str, Any] = {}
    for column in present:
        for name in _UPDATE_FIELDS.get(column, ()):
            if name == "phone_tail":
                out[name] = v["phone"][-4:]
            elif name == "id_number_index":
                out[name] = item.id_index
            elif name == "zone":
                store = item.store or (
                    member.home_store_id,
                    ctx.store_regions.get(member.home_store_id, 0),
                )
                out["zone_id"] = ctx.zone_for(
                    store=store,
                    district=v.get("district", ""),
                    text=f"{v.get('community', '')}{v.get('address', '')}",
                )
            elif name == "home_store":
                if item.store:
                    out["home_store_id"] = item.store[0]
            elif name == "enrolled_by":
                out["enrolled_by_id"] = item.enrolled_by_id
            elif name == "enrolled_at":
                if item.at_given:
                    out[name] = item.enrolled_at
            elif name == "consent_marketing":
                out[name] = item.consents["marketing"]
            elif name == "consent_health":
                out[name] = item.consents["health_data"]
            else:
                out[name] = v[name]
    if "id_number" in present and v["id_number"]:
        # The ID number fixes birthday and gender, as at enrolment.
        out["birthday"] = v["birthday"]
        out["gender"] = v["gender"]
    if "preferred_channel" in present and "contact_channels" not in present:
        pref = v["preferred_channel"]
        channels = list(member.contact_channels or [])
        if pref and pref not in channels:
            out["contact_channels"] = [*channels, pref]
    return out


# --- bulk path (PostgreSQL COPY) --------------------------------------------------------------

_STAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("row_no", "integer"),
    ("external_code", "text"),
    ("member_no", "text"),
    ("referral_code", "text"),
    ("name", "text"),
    ("gender", "text"),
    ("birthday", "date"),
    ("birthday_is_lunar", "boolean"),
    ("lunar_birthday", "text"),
    ("phone", "text"),
    ("phone_tail", "text"),
    ("email", "text"),
    ("id_number", "text"),
    ("id_number_index", "text"),
    ("address", "text"),
    ("province", "text"),
    ("city", "text"),
    ("district", "text"),
    ("community", "text"),
    ("zone_id", "bigint"),
    ("allergies", "text"),
    ("medical_history", "text"),
    ("chronic_conditions", "text"),
    ("health_interests", "jsonb"),
    ("contact_channels", "jsonb"),
    ("preferred_channel", "text"),
    ("acquisition_channel", "text"),
    ("heard_from", "text"),
    ("campaign_code", "text"),
    ("home_store_id", "bigint"),
    ("enrolled_by_id", "bigint"),
    ("consent_terms", "boolean"),
    ("consent_marketing", "boolean"),
    ("consent_health", "boolean"),
    ("completeness", "smallint"),
    ("is_complete", "boolean"),
    ("valid_until", "date"),
    ("enrolled_at", "timestamptz"),
    ("at_given", "boolean"),
    ("card_number", "text"),
    ("search_keys", "text[]"),
)
_STAGE_ONLY = {"row_no", "consent_terms", "at_given", "card_number", "search_keys"}
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

# Set by the parent before the worker pool forks; workers read it (never the database).
_WORKER_STATE: dict[str, Any] = {}


_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")


def _copy_plain(value: str | None) -> str:
    return "\\N" if value is None else value


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


@lru_cache(maxsize=4096)
def _json_list_cached(items: tuple[str, ...]) -> str:
    return json.dumps(list(items)).translate(_ESCAPES)


def _json_list(items: list[str]) -> str:
    return _json_list_cached(tuple(items))


def _bulk_worker_init() -> None:
    _WORKER_STATE["numbers"] = _Numbers()


def _bulk_prepare_chunk(chunk: list[Sequence[Any]]) -> tuple[bytes, list[Any], int, int]:
    """Validate a chunk of raw rows; return COPY text of the good ones and the rejects."""
    ctx: ImportContext = _WORKER_STATE["ctx"]
    hmap: HeaderMap = _WORKER_STATE["hmap"]
    numbers: _Numbers = _WORKER_STATE.setdefault("numbers", _Numbers())
    prep_id = Member._meta.get_field("id_number").get_prep_value
    prep_json = {f: Member._meta.get_field(f).get_prep_value for f in HEALTH_FIELDS}
    lines: list[str] = []
    rejects: list[Any] = []
    total = 0
    for values in chunk:
        record = hmap.record(values[1:])
        if not any(record.values()):
            continue
        total += 1
        row = values[0]
        result = prepare_row(record, row, ctx)
        if isinstance(result, list):
            rejects.append((row, record.get("external_code"), result))
            continue
        v = result.values
        # Only free-text values can hold a tab, newline or backslash; codes, numbers, dates,
        # base64 ciphertexts and pinyin keys never do, so they skip the escaping — and when the
        # row's own cells have none of those characters, no value derived from them has either.
        t = _copy_text if _NEEDS_ESCAPE.search("".join(record.values())) else _copy_plain
        id_number = v["id_number"]
        lines.append(
            "\t".join(
                (
                    str(row),
                    t(result.external_code),
                    numbers.member_no(),
                    numbers.referral_code(),
                    t(v["name"]),
                    v["gender"],
                    v["birthday"].isoformat() if v["birthday"] else "\\N",
                    "t" if v["birthday_is_lunar"] else "f",
                    v["lunar_birthday"],
                    v["phone"],
                    v["phone"][-4:],
                    t(v["email"]),
                    prep_id(id_number) if id_number else "",
                    result.id_index or "\\N",
                    t(v["address"]),
                    t(v["province"]),
                    t(v["city"]),
                    t(v["district"]),
                    t(v["community"]),
                    str(result.zone_id) if result.zone_id else "\\N",
                    prep_json["allergies"](v["allergies"]) if v["allergies"] else "",
                    prep_json["medical_history"](v["medical_history"])
                    if v["medical_history"]
                    else "",
                    prep_json["chronic_conditions"](v["chronic_conditions"])
                    if v["chronic_conditions"]
                    else "",
                    _json_list(v["health_interests"]),
                    _json_list(v["contact_channels"]),
                    v["preferred_channel"],
                    v["acquisition_channel"],
                    t(v["heard_from"]),
                    t(v["campaign_code"]),
                    str(result.store[0]) if result.store else "\\N",
                    str(result.enrolled_by_id) if result.enrolled_by_id else "\\N",
                    "t" if result.consents["terms"] else "f",
                    "t" if result.consents["marketing"] else "f",
                    "t" if result.consents["health_data"] else "f",
                    str(result.completeness),
                    "t" if result.is_complete else "f",
                    result.valid_until.isoformat() if result.valid_until else "\\N",
                    result.enrolled_at.isoformat(),
                    "t" if result.at_given else "f",
                    result.card_number or "\\N",
                    "{" + ",".join(result.keys) + "}",
                )
            )
        )
    text = "\n".join(lines) + "\n" if lines else ""
    return text.encode(), rejects, total, len(lines)


def _prepared_chunks(
    ctx: ImportContext,
    hmap: HeaderMap,
    raw_rows: Iterable[Sequence[Any]],
    workers: int,
    chunk_size: int,
) -> Iterator[tuple[bytes, list[Any], int, int]]:
    """Validated chunks in file order, from ``workers`` processes (or in-process for 0/1)."""
    _WORKER_STATE.clear()
    _WORKER_STATE.update(ctx=ctx, hmap=hmap)
    chunks = chunked(raw_rows, chunk_size)
    if workers <= 1:
        yield from map(_bulk_prepare_chunk, chunks)
        return
    import multiprocessing

    # fork: workers inherit the loaded context; they never touch the database connection and
    # leave with os._exit, so the parent's connection stays intact.
    pool = multiprocessing.get_context("fork").Pool(workers, _bulk_worker_init)
    try:
        yield from pool.imap(_bulk_prepare_chunk, chunks)
    finally:
        pool.terminate()
        pool.join()


def validate_members(
    path: Path,
    *,
    default_store: Store | None = None,
    workers: int | None = None,
    chunk_size: int = 5000,
) -> ImportReport:
    """Check a member file without writing anything (dry run): every row-level rejection that
    the import would report. Duplicates against the database or between rows are found by the
    import itself. Also the validation throughput figure of the benchmark."""
    path = Path(path)
    hmap, raw_rows = read_raw(path, MEMBER_COLUMNS)
    report = ImportReport(kind="members", source=str(path))
    ctx = ImportContext.load(hmap=hmap, default_store=default_store)
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    valid = 0
    for _data, rejects, total, ok in _prepared_chunks(ctx, hmap, raw_rows, workers, chunk_size):
        report.total += total
        valid += ok
        for row, ref, errs in rejects:
            _reject(report, ctx, row, ref, errs)
    _WORKER_STATE.clear()
    report.timings["valid_rows"] = valid
    return report.finish()


class _TimedCursor:
    """Adds each statement's time to the report's timings (``sql: INSERT INTO members_card``)."""

    def __init__(self, cursor: Any, timings: dict[str, float]) -> None:
        self.cursor = cursor
        self.timings = timings

    def execute(self, sql: str, params: Any = None) -> None:
        started = time.perf_counter()
        self.cursor.execute(sql, params)
        key = "sql: " + " ".join(sql.split()[:3])
        self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - started

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cursor, name)


class _BulkImport:
    CHUNK = 5000

    def __init__(
        self, *, ctx: ImportContext, hmap: HeaderMap, report: ImportReport, actor: Staff | None
    ) -> None:
        self.ctx = ctx
        self.hmap = hmap
        self.report = report
        self.actor = actor
        self.stage = f"import_stage_{uuid.uuid4().hex[:12]}"

    def run(self, raw_rows: Iterable[Sequence[Any]], workers: int) -> None:
        timings = self.report.timings
        t0 = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            # A new row's member id is drawn from the members' own sequence as COPY fills the
            # table (an update overwrites it with the existing id; the gap is harmless), so the
            # cards, consents and keys need no lookup by member number after the insert.
            cursor.execute(
                f"CREATE TEMP TABLE {self.stage} ("  # noqa: S608 — generated identifiers only
                + ", ".join(f"{name} {kind}" for name, kind in _STAGE_COLUMNS)
                + ", member_id bigint NOT NULL DEFAULT nextval(pg_get_serial_sequence("
                "'members_member', 'id')),"
                " is_update boolean NOT NULL DEFAULT false,"
                " old_name text, old_status text, old_marketing boolean, old_health boolean"
                ") ON COMMIT DROP"
            )
            self._copy(cursor, raw_rows, workers)
            timings["validate_copy"] = time.perf_counter() - t0
            timed = _TimedCursor(cursor, timings)
            t1 = time.perf_counter()
            self._resolve(timed)
            timings["checks"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            self._write(timed)
            timings["write"] = time.perf_counter() - t2
            cursor.execute(f"DROP TABLE {self.stage}")
            t3 = time.perf_counter()
        # The foreign keys are deferred: PostgreSQL checks every new row's references here.
        timings["commit"] = time.perf_counter() - t3
        _WORKER_STATE.clear()

    def _copy(self, cursor: Any, raw_rows: Iterable[Sequence[Any]], workers: int) -> None:
        columns = ", ".join(name for name, _kind in _STAGE_COLUMNS)
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        waited = 0.0
        with raw.copy(f"COPY {self.stage} ({columns}) FROM STDIN") as copy:
            for data, rejects, total, _valid in _prepared_chunks(
                self.ctx, self.hmap, raw_rows, workers, self.CHUNK
            ):
                self.report.total += total
                for row, ref, errs in rejects:
                    _reject(self.report, self.ctx, row, ref, errs)
                if data:
                    started = time.perf_counter()
                    copy.write(data)
                    waited += time.perf_counter() - started
        # Time the database took to take the stream (the rest of the phase is reading and
        # validating): the COPY baseline of the benchmark compares with this.
        self.report.timings["copy_write"] = waited

    def _reject_sql(self, cursor: Any, sql: str, key: str, reason: str, params: Any = None) -> None:
        """Run a DELETE … RETURNING row_no, external_code, detail; report each row."""
        cursor.execute(sql, params)
        for row, ref, detail in cursor.fetchall():
            text = reason % {"n": detail, "no": detail} if "%(" in reason else reason
            _reject(self.report, self.ctx, row, ref, [(key, text, "duplicate")])

    def _resolve(self, cursor: Any) -> None:
        stage = self.stage
        # Statistics only for the join columns: a full ANALYZE of the wide staging table costs
        # more than the joins it helps.
        cursor.execute(
            f"ANALYZE {stage} (external_code, phone, id_number_index, card_number, member_no)"
        )
        for column, key, what in (
            ("external_code", "external_code", _("外部编码")),
            ("phone", "phone", _("手机号")),
            ("id_number_index", "id_number", _("身份证号")),
            ("card_number", "card_number", _("卡号")),
        ):
            self._reject_sql(
                cursor,
                f"""WITH d AS (
                        SELECT row_no, first_value(row_no) OVER w AS first_row,
                               row_number() OVER w AS rn
                        FROM {stage} WHERE {column} IS NOT NULL
                        WINDOW w AS (PARTITION BY {column} ORDER BY row_no))
                    DELETE FROM {stage} s USING d WHERE s.row_no = d.row_no AND d.rn > 1
                    RETURNING s.row_no, s.external_code, d.first_row""",
                key,
                _("%(what)s与本文件第 %%(n)s 行重复") % {"what": what},
            )
        cursor.execute(
            f"""UPDATE {stage} s SET member_id = m.id, is_update = true, old_name = m.name,
                    old_status = m.status, old_marketing = m.consent_marketing,
                    old_health = m.consent_health
                FROM members_member m WHERE m.external_code = s.external_code"""
        )
        live = [str(s) for s in LIVE]
        self._reject_sql(
            cursor,
            f"""DELETE FROM {stage} s WHERE s.is_update AND s.old_status <> ALL(%s)
                RETURNING s.row_no, s.external_code, s.old_status""",
            "external_code",
            _("该外部编码对应的会员已合并或注销"),
            [live],
        )
        for column, key, label in (
            ("phone", "phone", _("该手机号已是会员（会员号 %(no)s）")),
            ("id_number_index", "id_number", _("该身份证号已是会员（会员号 %(no)s）")),
        ):
            self._reject_sql(
                cursor,
                f"""DELETE FROM {stage} s USING members_member m
                    WHERE m.{column} = s.{column} AND m.status = ANY(%s)
                      AND (NOT s.is_update OR m.id <> s.member_id)
                    RETURNING s.row_no, s.external_code, m.member_no""",
                key,
                label,
                [live],
            )
        self._reject_sql(
            cursor,
            f"""DELETE FROM {stage} s USING members_card c
                WHERE c.number = s.card_number AND (NOT s.is_update OR c.member_id <> s.member_id)
                RETURNING s.row_no, s.external_code, c.number""",
            "card_number",
            _("该卡号已被使用"),
        )
        self._reject_sql(
            cursor,
            f"""DELETE FROM {stage} s WHERE NOT s.is_update AND s.home_store_id IS NULL
                RETURNING s.row_no, s.external_code, NULL""",
            "store_code",
            _("请填写开卡门店编码"),
        )
        # Sentinels for "keep the member's value" on updates: the proposed row of an upsert
        # must satisfy NOT NULL even when the conflict turns it into an update.
        cursor.execute(
            f"""UPDATE {stage} SET home_store_id = coalesce(home_store_id, 0),
                    enrolled_at = CASE WHEN at_given THEN enrolled_at ELSE '-infinity' END
                WHERE is_update"""
        )
        self._fix_numbers(cursor)

    def _fix_numbers(self, cursor: Any) -> None:
        """Replace generated numbers that collide with existing ones or with each other."""
        stage = self.stage
        numbers = _Numbers()
        for column, make, exists in (
            (
                "member_no",
                numbers.member_no,
                "EXISTS (SELECT 1 FROM members_member m WHERE m.member_no = s.member_no)"
                " OR EXISTS (SELECT 1 FROM members_card c WHERE c.number = 'V' || s.member_no)",
            ),
            (
                "referral_code",
                numbers.referral_code,
                "EXISTS (SELECT 1 FROM members_member m WHERE m.referral_code = s.referral_code)",
            ),
        ):
            for _attempt in range(20):
                cursor.execute(
                    f"""SELECT s.row_no FROM {stage} s WHERE NOT s.is_update AND ({exists})
                        UNION SELECT row_no FROM (
                            SELECT row_no, row_number() OVER (
                                PARTITION BY {column} ORDER BY row_no) AS rn
                            FROM {stage} WHERE NOT is_update) d WHERE d.rn > 1"""
                )
                rows = [r[0] for r in cursor.fetchall()]
                if not rows:
                    break
                cursor.executemany(
                    f"UPDATE {stage} SET {column} = %s WHERE row_no = %s",
                    [(make(), row) for row in rows],
                )
            else:  # pragma: no cover — 20 rounds of collisions means a broken generator
                raise ImportFailed(_("无法生成唯一的会员号，请重试"))

    def _insert_select(
        self, cursor: Any, model: Any, exprs: dict[str, str], source: str, suffix: str = ""
    ) -> int:
        """INSERT INTO model's table the given column expressions; every other column gets the
        model field's default, so new fields with defaults need no change here."""
        columns, selects, params = [], [], []
        for f in model._meta.concrete_fields:
            if f.primary_key and f.column not in exprs:
                continue
            columns.append(f.column)
            if f.column in exprs:
                selects.append(exprs[f.column])
            else:
                selects.append("%s")
                params.append(f.get_db_prep_save(f.get_default(), connection))
        cursor.execute(
            f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
            f"SELECT {', '.join(selects)} FROM {source} {suffix}",
            params,
        )
        return int(cursor.rowcount)

    def _write(self, cursor: Any) -> None:
        stage, present, report = self.stage, self.ctx.present, self.report
        cursor.execute(f"SELECT count(*) FILTER (WHERE is_update), count(*) FROM {stage}")
        updated, total = cursor.fetchone()
        report.updated += updated
        report.created += total - updated
        member_cols = {
            name: f"s.{name}" for name, _kind in _STAGE_COLUMNS if name not in _STAGE_ONLY
        }
        member_cols.update(
            {
                "id": "s.member_id",
                "status": f"'{MemberStatus.ACTIVE}'",
                "updated_at": "now()",
            }
        )
        # New and existing members apart: a plain INSERT is cheaper per row than an upsert's
        # speculative insertion, and _resolve already knows which rows are updates. A member
        # created meanwhile by another import with the same external code fails the unique
        # constraint and the whole file rolls back.
        self._insert_select(
            cursor,
            Member,
            member_cols,
            f"{stage} s",
            # No ORDER BY: the staging table is read in COPY (file) order anyway, and sorting
            # a million wide rows would spill to disk.
            "WHERE NOT s.is_update",
        )
        if updated:
            cursor.execute(
                f"UPDATE members_member m SET {self._update_set(present)}"
                f" FROM {stage} s WHERE s.is_update AND m.id = s.member_id"
            )
        actor_id = self.actor.pk if self.actor is not None and self.actor.pk else None
        self._insert_select(
            cursor,
            Card,
            {
                "member_id": "s.member_id",
                "number": "'V' || s.member_no",
                "kind": f"'{CardKind.VIRTUAL}'",
                "issued_at": "s.enrolled_at",
                "issued_store_id": "s.home_store_id",
            },
            f"{stage} s",
            "WHERE NOT s.is_update",
        )
        self._insert_select(
            cursor,
            Card,
            {
                "member_id": "s.member_id",
                "number": "s.card_number",
                "kind": f"'{CardKind.PHYSICAL}'",
                "issued_at": "CASE WHEN s.is_update THEN now() ELSE s.enrolled_at END",
                "issued_store_id": "nullif(s.home_store_id, 0)",
            },
            f"{stage} s",
            "WHERE s.card_number IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM members_card c WHERE c.number = s.card_number)",
        )
        versions = self.ctx.versions
        consent = {
            "member_id": "s.member_id",
            "purpose": "p.purpose",
            "granted": "CASE p.purpose WHEN 'terms' THEN s.consent_terms "
            "WHEN 'marketing' THEN s.consent_marketing ELSE s.consent_health END",
            "text_version": "p.version",
            "channel": f"'{CONSENT_CHANNEL}'",
            "at": "s.enrolled_at",
            "recorded_by_id": "NULL" if actor_id is None else str(int(actor_id)),
        }
        purposes = (
            "(VALUES "
            + ", ".join(
                f"('{p}', {_sql_literal(versions[p])})"
                for p in (
                    ConsentPurpose.TERMS,
                    ConsentPurpose.MARKETING,
                    ConsentPurpose.HEALTH_DATA,
                )
            )
            + ") AS p(purpose, version)"
        )
        self._insert_select(
            cursor,
            Consent,
            consent,
            f"{stage} s CROSS JOIN {purposes}",
            "WHERE NOT s.is_update",
        )
        changed = []
        if "consent_marketing" in present:
            changed.append("(p.purpose = 'marketing' AND s.old_marketing <> s.consent_marketing)")
        if "consent_health_data" in present:
            changed.append("(p.purpose = 'health_data' AND s.old_health <> s.consent_health)")
        if changed:
            self._insert_select(
                cursor,
                Consent,
                {**consent, "at": "now()"},
                f"{stage} s CROSS JOIN {purposes}",
                "WHERE s.is_update AND (" + " OR ".join(changed) + ")",
            )
        cursor.execute(
            f"""INSERT INTO members_membersearchkey (member_id, key)
                SELECT s.member_id, k.key FROM {stage} s,
                    unnest(s.search_keys) AS k(key) WHERE NOT s.is_update"""
        )
        if "name" in present:
            cursor.execute(
                f"""DELETE FROM members_membersearchkey k USING {stage} s
                    WHERE s.is_update AND s.old_name <> s.name AND k.member_id = s.member_id"""
            )
            cursor.execute(
                f"""INSERT INTO members_membersearchkey (member_id, key)
                    SELECT s.member_id, k.key FROM {stage} s,
                        unnest(s.search_keys) AS k(key)
                    WHERE s.is_update AND s.old_name <> s.name"""
            )
        if updated:
            filled, table = self._completeness_sql()
            cursor.execute(
                f"""UPDATE members_member m SET completeness = ({table})[({filled}) + 1],
                        is_complete = ({filled}) = %s
                    FROM {stage} s WHERE s.is_update AND m.id = s.member_id""",
                [len(self.ctx.required_fields or DEFAULT_REQUIRED_FIELDS)],
            )

    def _update_set(self, present: frozenset[str]) -> str:
        sets: dict[str, str] = {}
        for column in present:
            for name in _UPDATE_FIELDS.get(column, ()):
                col = {
                    "zone": "zone_id",
                    "home_store": "home_store_id",
                    "enrolled_by": "enrolled_by_id",
                }.get(name, name)
                sets[col] = f"s.{col}"
        if "home_store_id" in sets:
            sets["home_store_id"] = (
                "CASE WHEN s.home_store_id = 0 THEN m.home_store_id ELSE s.home_store_id END"
            )
        if "enrolled_at" in sets:
            sets["enrolled_at"] = (
                "CASE WHEN s.enrolled_at = '-infinity' THEN m.enrolled_at ELSE s.enrolled_at END"
            )
        if "id_number" in present:
            for col in ("birthday", "gender"):
                if col not in sets:
                    sets[col] = f"CASE WHEN s.id_number <> '' THEN s.{col} ELSE m.{col} END"
        if "preferred_channel" in present and "contact_channels" not in present:
            sets["contact_channels"] = (
                "CASE WHEN s.preferred_channel <> '' AND NOT "
                "(m.contact_channels @> jsonb_build_array(s.preferred_channel))"
                " THEN m.contact_channels || "
                "jsonb_build_array(s.preferred_channel) "
                "ELSE m.contact_channels END"
            )
        sets["updated_at"] = "now()"
        return ", ".join(f"{col} = {expr}" for col, expr in sorted(sets.items()))

    def _completeness_sql(self) -> tuple[str, str]:
        """SQL for the number of filled required fields, and the percent for each count —
        the same rule as ``members.services.completeness`` (empty, [] and "U" are unfilled)."""
        required = self.ctx.required_fields or DEFAULT_REQUIRED_FIELDS
        terms = []
        for name in required:
            column = getattr(_model_field(name), "column", None)
            if column is None:  # not a column of the member: never filled, as in Python
                terms.append("0")
                continue
            col = f"m.{column}"
            terms.append(
                f"(CASE WHEN {col} IS NOT NULL AND {col}::text NOT IN ('', 'U', '[]') "
                "THEN 1 ELSE 0 END)"
            )
        n = len(required)
        pcts = [completeness({f: "x" for f in required[:k]}, required)[0] for k in range(n + 1)]
        return " + ".join(terms) or "0", "ARRAY[" + ", ".join(map(str, pcts)) + "]"


def _model_field(name: str) -> Any:
    try:
        return Member._meta.get_field(name)
    except FieldDoesNotExist:
        return None


def _sql_literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


__all__ = ["MEMBER_COLUMNS", "ImportContext", "import_members", "prepare_row", "validate_members"]
