"""Validation of member input, shared by the console form, the API and the import (M-1).

``clean_member`` takes raw values (strings, lists, booleans) and returns the cleaned values and a
list of ``FieldError`` naming every bad field; it touches no database, so the importer can run it
on millions of rows.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _
from django.utils.translation import override

from carecard.core.calendar import InvalidLunarDate, lunar_to_solar
from carecard.core.errors import FieldError
from carecard.core.idcard import InvalidIdNumber, parse_id_number
from carecard.core.phone import InvalidPhone, normalize_mobile
from carecard.members.models import (
    AcquisitionChannel,
    ChronicCondition,
    ContactChannel,
    Gender,
    HealthInterest,
)

HEALTH_FIELDS = ("allergies", "medical_history", "chronic_conditions")
_GENDER_WORDS = {
    "男": "M",
    "女": "F",
    "m": "M",
    "f": "F",
    "male": "M",
    "female": "F",
    "u": "U",
    "未知": "U",
    "": "U",
}
_LUNAR_RE = re.compile(r"^(\d{4})-(L?)(\d{1,2})-(\d{1,2})$")
_SPLIT_RE = re.compile(r"[,，;；、|/\n]+")


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in _SPLIT_RE.split(value) if v.strip()]
    if isinstance(value, Iterable):
        return [str(v).strip() for v in value if str(v).strip()]
    return [str(value).strip()]


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "y", "是", "同意", "on"}


@lru_cache(maxsize=64)
def _choice_maps(choices: type) -> tuple[frozenset[str], dict[str, str]]:
    # Labels in every configured language are accepted; built once per choices class because
    # imports validate millions of rows and translating labels per row dominated the cost.
    by_label: dict[str, str] = {}
    for code, _name in settings.LANGUAGES:
        with override(code):
            by_label.update({str(label): value for value, label in choices.choices})
    return frozenset(choices.values), by_label


def _choices(
    field: str,
    raw: Any,
    choices: type,
    errors: list[FieldError],
    *,
    labels: bool = True,
    single: bool = False,
) -> list[str]:
    # A single-choice field is never split: labels such as 新媒体/微信扫码 contain separators.
    if single:
        text = "" if raw is None else str(raw).strip()
        items = [text] if text else []
    else:
        items = _as_list(raw)
    if not items:
        return []
    values, by_label = _choice_maps(choices)
    if not labels:
        by_label = {}
    out: list[str] = []
    for item in items:
        value = item if item in values else by_label.get(item)
        if value is None:
            errors.append(FieldError(field, "invalid_choice", _("无效的选项：%(v)s") % {"v": item}))
        elif value not in out:
            out.append(value)
    return out


def _parse_date(raw: Any) -> dt.date:
    if isinstance(raw, dt.datetime):
        return raw.date()
    if isinstance(raw, dt.date):
        return raw
    text = str(raw).strip().replace("/", "-").replace(".", "-")
    if re.fullmatch(r"\d{8}", text):
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return dt.date.fromisoformat(text)


def clean_member(
    data: Mapping[str, Any], *, today: dt.date, partial: bool = False
) -> tuple[dict[str, Any], list[FieldError]]:
    """Validate raw member input. With ``partial`` only the given keys are checked (updates)."""
    errors: list[FieldError] = []
    out: dict[str, Any] = {}

    def given(key: str) -> bool:
        return key in data if partial else True

    if given("name"):
        name = re.sub(r"\s+", "", str(data.get("name") or ""))
        if not name:
            errors.append(FieldError("name", "required", _("请填写姓名")))
        elif len(name) > 50:
            errors.append(FieldError("name", "too_long", _("姓名不能超过50个字")))
        out["name"] = name

    if given("phone"):
        raw_phone = str(data.get("phone") or "").strip()
        if not raw_phone:
            errors.append(FieldError("phone", "required", _("请填写手机号")))
        else:
            try:
                out["phone"] = normalize_mobile(raw_phone)
            except InvalidPhone:
                errors.append(FieldError("phone", "invalid", _("手机号格式不正确")))

    id_info = None
    if given("id_number"):
        raw_id = str(data.get("id_number") or "").strip()
        out["id_number"] = ""
        if raw_id:
            try:
                id_info = parse_id_number(raw_id, today=today)
                out["id_number"] = id_info.number
            except InvalidIdNumber as exc:
                message = {
                    "format": _("身份证号应为18位（末位可为X）或15位数字"),
                    "birthday": _("身份证号中的出生日期无效"),
                    "checksum": _("身份证号校验位不正确"),
                }[exc.reason]
                errors.append(FieldError("id_number", exc.reason, message))

    if given("birthday") or given("lunar_birthday"):
        calendar = str(data.get("birthday_calendar") or "solar")
        raw_bd = (
            data.get("lunar_birthday")
            if calendar == "lunar" and data.get("lunar_birthday")
            else data.get("birthday")
        )
        out["birthday_is_lunar"] = calendar == "lunar"
        out["lunar_birthday"] = ""
        birthday = None
        if raw_bd not in (None, ""):
            if calendar == "lunar":
                m = _LUNAR_RE.match(str(raw_bd).strip())
                leap = _as_bool(data.get("lunar_leap")) or bool(m and m.group(2))
                try:
                    if not m:
                        raise InvalidLunarDate(str(raw_bd))
                    year, month, day = int(m.group(1)), int(m.group(3)), int(m.group(4))
                    birthday = lunar_to_solar(year, month, day, leap=leap)
                    out["lunar_birthday"] = f"{year:04d}-{'L' if leap else ''}{month:02d}-{day:02d}"
                except InvalidLunarDate:
                    errors.append(
                        FieldError(
                            "birthday", "invalid_lunar", _("农历日期不存在（注意闰月与小月）")
                        )
                    )
            else:
                try:
                    birthday = _parse_date(raw_bd)
                except (ValueError, TypeError):
                    errors.append(FieldError("birthday", "invalid", _("日期格式应为 YYYY-MM-DD")))
            if birthday and (birthday > today or birthday.year < 1890):
                errors.append(FieldError("birthday", "out_of_range", _("生日不在合理范围内")))
                birthday = None
        if id_info:
            if birthday and birthday != id_info.birthday:
                errors.append(FieldError("birthday", "id_mismatch", _("生日与身份证号不一致")))
            birthday = birthday or id_info.birthday
        out["birthday"] = birthday
    elif id_info:
        out["birthday"] = id_info.birthday

    if given("gender") or id_info:
        raw_gender = str(data.get("gender") or "").strip()
        gender = (
            raw_gender if raw_gender in Gender.values else _GENDER_WORDS.get(raw_gender.lower())
        )
        if gender is None:
            errors.append(FieldError("gender", "invalid", _("性别应为 男/女")))
        if id_info:
            if gender in ("M", "F") and gender != id_info.gender:
                errors.append(FieldError("gender", "id_mismatch", _("性别与身份证号不一致")))
            gender = id_info.gender
        out["gender"] = gender or "U"

    if given("email"):
        email = str(data.get("email") or "").strip()
        if email:
            try:
                validate_email(email)
            except ValidationError:
                errors.append(FieldError("email", "invalid", _("邮箱格式不正确")))
        out["email"] = email

    for key, limit in (
        ("address", 300),
        ("province", 32),
        ("city", 32),
        ("district", 32),
        ("community", 200),
        ("heard_from", 50),
        ("campaign_code", 32),
    ):
        if given(key) and (key in data or not partial):
            value = str(data.get(key) or "").strip()
            if len(value) > limit:
                errors.append(FieldError(key, "too_long", _("不能超过%(n)d个字") % {"n": limit}))
            out[key] = value[:limit]

    if given("allergies"):
        out["allergies"] = _as_list(data.get("allergies"))
    if given("medical_history"):
        out["medical_history"] = _as_list(data.get("medical_history"))
    if given("chronic_conditions"):
        out["chronic_conditions"] = _choices(
            "chronic_conditions", data.get("chronic_conditions"), ChronicCondition, errors
        )
    if given("health_interests"):
        out["health_interests"] = _choices(
            "health_interests", data.get("health_interests"), HealthInterest, errors
        )
    if given("contact_channels"):
        out["contact_channels"] = _choices(
            "contact_channels", data.get("contact_channels"), ContactChannel, errors
        )
    if given("preferred_channel"):
        pref = _choices(
            "preferred_channel", data.get("preferred_channel"), ContactChannel, errors, single=True
        )
        out["preferred_channel"] = pref[0] if pref else ""
        if pref and "contact_channels" in out and pref[0] not in out["contact_channels"]:
            out["contact_channels"].append(pref[0])
    if given("acquisition_channel"):
        acq = _choices(
            "acquisition_channel",
            data.get("acquisition_channel") or "in_store",
            AcquisitionChannel,
            errors,
            single=True,
        )
        out["acquisition_channel"] = acq[0] if acq else "in_store"

    for purpose in ("terms", "marketing", "health_data"):
        key = f"consent_{purpose}"
        if key in data or not partial:
            out[key] = _as_bool(data.get(key, False))

    if not partial:
        if not out.get("consent_terms"):
            errors.append(FieldError("consent_terms", "required", _("入会须同意会员章程")))
        if any(out.get(f) for f in HEALTH_FIELDS) and not out.get("consent_health_data"):
            errors.append(
                FieldError(
                    "consent_health_data",
                    "required",
                    _("记录过敏史、病史或慢病须取得顾客对健康信息处理的单独同意"),
                )
            )
    return out, errors
