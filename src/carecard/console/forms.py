"""Console forms: the member form (会员申请表, M-1) and small HQ forms.

Validation lives in the services (``members.validation.clean_member`` and friends), shared with
the API and the importer. The console only turns POST data into the services' input dict, and
maps their ``FieldError``s back next to the fields. Field names in the HTML are the service keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from carecard.core.errors import FieldError
from carecard.core.roles import Role
from carecard.members.models import (
    AcquisitionChannel,
    ChronicCondition,
    ContactChannel,
    Gender,
    HealthInterest,
)

TEXT_KEYS = (
    "name",
    "phone",
    "gender",
    "id_number",
    "email",
    "address",
    "allergies",
    "medical_history",
    "preferred_channel",
    "acquisition_channel",
    "heard_from",
    "referrer",
    "card_number",
    "birthday_calendar",
    "birthday",
    "lunar_birthday",
)
LIST_KEYS = ("chronic_conditions", "health_interests", "contact_channels")
BOOL_KEYS = ("lunar_leap", "consent_terms", "consent_marketing", "consent_health_data")
HEALTH_KEYS = ("allergies", "medical_history", "chronic_conditions")
BIRTHDAY_KEYS = ("birthday_calendar", "birthday", "lunar_birthday", "lunar_leap")

HEARD_FROM_CHOICES = (
    ("店员推荐", _("店员推荐")),
    ("亲友介绍", _("亲友介绍")),
    ("微信公众号", _("微信公众号")),
    ("社区活动", _("社区活动")),
    ("宣传单页", _("宣传单页")),
    ("路过门店", _("路过门店")),
    ("其他", _("其他")),
)


def enrol_data(post: QueryDict) -> dict[str, Any]:
    """The enrolment input for ``member_enrol`` from the posted form."""
    data: dict[str, Any] = {k: post.get(k, "").strip() for k in TEXT_KEYS if k in post}
    for key in LIST_KEYS:
        data[key] = post.getlist(key)
    for key in BOOL_KEYS:
        data[key] = post.get(key) in ("1", "on", "true")
    return data


def update_data(post: QueryDict, *, editable: set[str]) -> dict[str, Any]:
    """A partial update for ``member_update``: only the keys the form offered this actor."""
    full = enrol_data(post)
    data = {k: v for k, v in full.items() if k in editable}
    if "birthday" in editable:
        for key in BIRTHDAY_KEYS:
            data[key] = full.get(key, "")
    return data


@dataclass
class FormErrors:
    """Field errors keyed by form field, and the rest (shown above the form)."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    @classmethod
    def from_errors(cls, errors: list[FieldError], *, known: set[str]) -> FormErrors:
        out = cls()
        for err in errors:
            key = err.field
            if key in ("lunar_birthday", "birthday_calendar", "lunar_leap"):
                key = "birthday"
            if key in known:
                out.fields.setdefault(key, []).append(str(err.message))
            else:
                out.general.append(str(err.message))
        return out

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)


@dataclass
class Choice:
    value: str
    label: str | Promise
    checked: bool = False


def choices(options: Any, selected: Any, *, include_blank: bool = False) -> list[Choice]:
    pairs = options.choices if hasattr(options, "choices") else options
    chosen = (
        {str(v) for v in selected}
        if isinstance(selected, list | tuple | set)
        else {str(selected or "")}
    )
    out = [Choice("", _("请选择"), not any(chosen))] if include_blank else []
    out += [Choice(str(v), label, str(v) in chosen) for v, label in pairs]
    return out


def member_form_context(values: dict[str, Any]) -> dict[str, Any]:
    """Choice lists for the member form, with the posted (or stored) values checked."""
    return {
        "genders": choices(
            [(Gender.FEMALE, Gender.FEMALE.label), (Gender.MALE, Gender.MALE.label)],
            values.get("gender", ""),
        ),
        "chronic_choices": choices(ChronicCondition, values.get("chronic_conditions", [])),
        "interest_choices": choices(HealthInterest, values.get("health_interests", [])),
        "channel_choices": choices(ContactChannel, values.get("contact_channels", [])),
        "preferred_choices": choices(
            ContactChannel, values.get("preferred_channel", ""), include_blank=True
        ),
        "acquisition_choices": choices(
            [c for c in AcquisitionChannel.choices if c[0] != AcquisitionChannel.IMPORT],
            values.get("acquisition_channel") or AcquisitionChannel.IN_STORE,
        ),
        "heard_from_choices": choices(
            HEARD_FROM_CHOICES, values.get("heard_from", ""), include_blank=True
        ),
    }


def member_values(member: Any, *, phone: str, id_number: str, health: dict[str, Any]) -> dict:
    """Initial values of the edit form from a stored member (already masked for the actor)."""
    return {
        "name": member.name,
        "phone": phone,
        "gender": member.gender,
        "id_number": id_number,
        "email": member.email,
        "address": member.address,
        "birthday_calendar": "lunar" if member.birthday_is_lunar else "solar",
        "birthday": member.birthday.isoformat() if member.birthday else "",
        "lunar_birthday": member.lunar_birthday.replace("L", ""),
        "lunar_leap": "L" in member.lunar_birthday,
        "allergies": "、".join(health.get("allergies", [])),
        "medical_history": "、".join(health.get("medical_history", [])),
        "chronic_conditions": health.get("chronic_conditions", []),
        "health_interests": member.health_interests,
        "contact_channels": member.contact_channels,
        "preferred_channel": member.preferred_channel,
        "acquisition_channel": member.acquisition_channel,
        "heard_from": member.heard_from,
    }


def staff_role_choices(selected: str) -> list[Choice]:
    return choices(Role, selected)


def post_bool(post: QueryDict, key: str) -> bool:
    return post.get(key) in ("1", "on", "true")
