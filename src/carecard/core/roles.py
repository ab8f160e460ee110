"""Roles and permissions (A-2). Enforced on the server by every view and API handler.

A permission is a code; a role grants a set of codes. Store roles are scoped to their home store
for members' sensitive data (contact, ID number, health); HQ roles see the whole chain.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    CLERK = "clerk", _("营业员")
    PHARMACIST = "pharmacist", _("驻店药师")
    STORE_MANAGER = "store_manager", _("店长")
    MARKETING = "marketing", _("营运企划")
    HQ_ADMIN = "hq_admin", _("总部管理员")
    AUDITOR = "auditor", _("审计/数据保护")


STORE_ROLES = frozenset({Role.CLERK, Role.PHARMACIST, Role.STORE_MANAGER})
HQ_ROLES = frozenset({Role.MARKETING, Role.HQ_ADMIN, Role.AUDITOR})


class Perm:
    MEMBER_VIEW = "member.view"
    MEMBER_ENROL = "member.enrol"
    MEMBER_EDIT = "member.edit"
    MEMBER_CONTACT = "member.view_contact"  # unmasked phone
    MEMBER_ID_NUMBER = "member.view_id_number"  # unmasked ID number
    MEMBER_HEALTH = "member.view_health"
    MEMBER_MERGE = "member.merge"
    MEMBER_EXPORT = "member.export"
    CARD_MANAGE = "card.manage"
    CHAIN_MANAGE = "chain.manage"
    STAFF_MANAGE = "staff.manage"
    TERMINAL_MANAGE = "terminal.manage"
    CATALOG_MANAGE = "catalog.manage"
    IMPORT_RUN = "import.run"
    AUDIT_VIEW = "audit.view"
    SETTINGS_MANAGE = "settings.manage"
    POINTS_ADJUST = "points.adjust"  # manual points adjustments (P-5)


_COUNTER = {
    Perm.MEMBER_VIEW,
    Perm.MEMBER_ENROL,
    Perm.MEMBER_EDIT,
    Perm.MEMBER_CONTACT,
    Perm.MEMBER_HEALTH,
    Perm.CARD_MANAGE,
}

ROLE_PERMS: dict[str, frozenset[str]] = {
    Role.CLERK: frozenset(_COUNTER),
    Role.PHARMACIST: frozenset(_COUNTER),
    Role.STORE_MANAGER: frozenset(
        _COUNTER
        | {Perm.MEMBER_ID_NUMBER, Perm.MEMBER_MERGE, Perm.TERMINAL_MANAGE, Perm.POINTS_ADJUST}
    ),
    Role.MARKETING: frozenset({Perm.MEMBER_VIEW, Perm.CATALOG_MANAGE}),
    Role.HQ_ADMIN: frozenset(
        _COUNTER
        | {
            Perm.MEMBER_ID_NUMBER,
            Perm.MEMBER_MERGE,
            Perm.MEMBER_EXPORT,
            Perm.CHAIN_MANAGE,
            Perm.STAFF_MANAGE,
            Perm.TERMINAL_MANAGE,
            Perm.CATALOG_MANAGE,
            Perm.IMPORT_RUN,
            Perm.AUDIT_VIEW,
            Perm.SETTINGS_MANAGE,
            Perm.POINTS_ADJUST,
        }
    ),
    Role.AUDITOR: frozenset({Perm.MEMBER_VIEW, Perm.AUDIT_VIEW}),
}

# Permissions that reveal a member's sensitive data: store roles hold them for their store only.
SCOPED_PERMS = frozenset({Perm.MEMBER_CONTACT, Perm.MEMBER_ID_NUMBER, Perm.MEMBER_HEALTH})


def role_has(role: str, perm: str) -> bool:
    return perm in ROLE_PERMS.get(role, frozenset())
