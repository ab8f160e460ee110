"""The console's layout context: the signed-in staff member and the navigation for their role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from carecard.core.roles import HQ_ROLES, STORE_ROLES, Perm


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str | Promise
    url_name: str
    icon: str
    perm: str | None
    section: str | Promise
    roles: frozenset[str] | None = None  # shown only to these roles (as well as ``perm``)


# Order is the order in the sidebar; an item shows only when the role holds its permission.
NAV: tuple[NavItem, ...] = (
    NavItem("home", _("工作台"), "console:home", "home", None, _("门店")),
    NavItem(
        "members", _("会员查询"), "console:member_search", "search", Perm.MEMBER_VIEW, _("门店")
    ),
    NavItem("counter", _("收银台"), "console:counter", "cart", None, _("门店"), STORE_ROLES),
    NavItem(
        "enrol", _("会员建档"), "console:member_enrol", "user-plus", Perm.MEMBER_ENROL, _("门店")
    ),
    NavItem(
        "duplicates", _("疑似重复"), "console:duplicates", "copy", Perm.MEMBER_MERGE, _("会员管理")
    ),
    NavItem("stores", _("门店与商圈"), "console:stores", "store", Perm.CHAIN_MANAGE, _("总部")),
    NavItem("staff", _("员工与角色"), "console:staff", "users", Perm.STAFF_MANAGE, _("总部")),
    NavItem(
        "terminals", _("POS终端"), "console:terminals", "terminal", Perm.TERMINAL_MANAGE, _("总部")
    ),
    NavItem("rules", _("会员规则"), "console:rules", "award", None, _("总部"), HQ_ROLES),
    NavItem("audit", _("审计日志"), "console:audit", "shield", Perm.AUDIT_VIEW, _("总部")),
)


def nav_for(staff: Any, active: str) -> list[dict[str, Any]]:
    """Sections of navigation items the staff member may open, with the active one marked."""
    sections: list[dict[str, Any]] = []
    for item in NAV:
        if item.perm is not None and not staff.can(item.perm):
            continue
        if item.roles is not None and staff.role not in item.roles:
            continue
        if not sections or sections[-1]["title"] != item.section:
            sections.append({"title": item.section, "items": []})
        sections[-1]["items"].append(
            {
                "key": item.key,
                "label": item.label,
                "url": reverse(item.url_name),
                "icon": item.icon,
                "active": item.key == active,
            }
        )
    return sections


def _active_key(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    name = match.url_name if match else ""
    prefixes = (
        ("counter", "counter"),
        ("sale", "counter"),
        ("rules", "rules"),
        ("member_enrol", "enrol"),
        ("member", "members"),
        ("duplicate", "duplicates"),
        ("store", "stores"),
        ("zone", "stores"),
        ("staff", "staff"),
        ("terminal", "terminals"),
        ("audit", "audit"),
    )
    for prefix, key in prefixes:
        if name and name.startswith(prefix):
            return key
    return "home"


def console(request: HttpRequest) -> dict[str, Any]:
    """Navigation and the signed-in staff member's scope, for the base template."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "staff": user,
        "nav_sections": nav_for(user, _active_key(request)),
        "can_enrol": user.can(Perm.MEMBER_ENROL),
        "show_admin_link": bool(user.is_staff and user.can(Perm.SETTINGS_MANAGE)),
    }
