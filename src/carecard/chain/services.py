"""Write use cases for the chain: stores, zones, staff, terminals, logins."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from carecard.chain.models import PosTerminal, Region, Staff, Store, TradingZone
from carecard.core.audit import AuditAction, audit
from carecard.core.errors import Conflict, DomainError, FieldError, NotFound, ValidationFailed
from carecard.core.roles import HQ_ROLES, Role

TOKEN_PREFIX = "cct_"  # noqa: S105 — a public prefix, not a secret


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def region_upsert(*, code: str, name: str) -> Region:
    region, _created = Region.objects.update_or_create(code=code, defaults={"name": name})
    return region


def store_upsert(*, code: str, name: str, region: Region, **fields: Any) -> Store:
    """Create or update a store by its code."""
    store, _created = Store.objects.update_or_create(
        code=code, defaults={"name": name, "region": region, **fields}
    )
    return store


def zone_upsert(
    *,
    store: Store,
    name: str,
    district: str = "",
    keywords: list[str] | None = None,
    households: int = 0,
) -> TradingZone:
    zone, _created = TradingZone.objects.update_or_create(
        store=store,
        name=name,
        defaults={"district": district, "keywords": keywords or [], "households": households},
    )
    return zone


def _validate_staff(
    *, username: str, role: str, home_store: Store | None, password: str | None
) -> list[FieldError]:
    errors: list[FieldError] = []
    if not username or len(username) > 150:
        errors.append(FieldError("username", "required", _("请填写登录名")))
    if role not in Role.values:
        errors.append(FieldError("role", "invalid", _("未知角色")))
    elif role not in HQ_ROLES and home_store is None:
        errors.append(FieldError("home_store", "required", _("门店角色必须指定所属门店")))
    if password is not None:
        try:
            password_validation.validate_password(password)
        except ValidationError as exc:
            errors.append(FieldError("password", "weak", "；".join(exc.messages)))
    return errors


@transaction.atomic
def staff_create(
    *,
    actor: Staff | None,
    username: str,
    password: str,
    role: str,
    display_name: str = "",
    home_store: Store | None = None,
    staff_code: str = "",
    mobile: str = "",
    check_password: bool = True,
    password_hash: str = "",
) -> Staff:
    """Create a staff account; HQ roles have no home store. Audited.

    ``password_hash`` (from ``make_password``) replaces hashing ``password`` here: the demo chain
    gives dozens of accounts one password and hashes it once (scrypt costs ~0.3 s a hash).
    """
    errors = _validate_staff(
        username=username,
        role=role,
        home_store=home_store,
        password=password if check_password else None,
    )
    if errors:
        raise ValidationFailed(errors)
    if role in HQ_ROLES:
        home_store = None
    try:
        with transaction.atomic():
            staff = Staff(
                username=username,
                role=role,
                display_name=display_name,
                home_store=home_store,
                staff_code=staff_code,
                mobile=mobile,
                is_staff=role == Role.HQ_ADMIN,
                is_superuser=False,
            )
            if password_hash:
                staff.password = password_hash
            else:
                staff.set_password(password)
            staff.save()
    except IntegrityError as exc:
        raise ValidationFailed(
            [FieldError("username", "taken", _("登录名或工号已被使用"))]
        ) from exc
    audit(
        action=AuditAction.STAFF_CREATE,
        actor=actor,
        store_id=staff.home_store_id,
        target=f"staff:{staff.pk}",
        detail={"username": username, "role": role},
    )
    return staff


@transaction.atomic
def staff_set_role(
    *, actor: Staff, staff: Staff, role: str, home_store: Store | None, is_active: bool = True
) -> Staff:
    """Change a staff member's role / home store / active flag. Audited (G-4)."""
    errors = _validate_staff(
        username=staff.username, role=role, home_store=home_store, password=None
    )
    if errors:
        raise ValidationFailed(errors)
    before = {"role": staff.role, "home_store": staff.home_store_id, "active": staff.is_active}
    staff.role = role
    staff.home_store = None if role in HQ_ROLES else home_store
    staff.is_active = is_active
    staff.is_staff = role == Role.HQ_ADMIN
    staff.save(update_fields=["role", "home_store", "is_active", "is_staff"])
    audit(
        action=AuditAction.ROLE_CHANGE,
        actor=actor,
        store_id=staff.home_store_id,
        target=f"staff:{staff.pk}",
        detail={
            "before": before,
            "after": {"role": role, "home_store": staff.home_store_id, "active": is_active},
        },
    )
    return staff


def login_check_lock(*, username: str) -> dt.datetime | None:
    """The time until which the account is locked, or None."""
    locked = Staff.objects.filter(username=username).values_list("locked_until", flat=True).first()
    if locked and locked > timezone.now():
        return locked
    return None


@transaction.atomic
def login_record_failure(*, username: str, ip: str | None) -> dt.datetime | None:
    """Count a failed login; lock the account after too many. Returns the lock end, if any."""
    now = timezone.now()
    updated = Staff.objects.filter(username=username).update(failed_logins=F("failed_logins") + 1)
    locked_until = None
    if updated:
        staff = Staff.objects.get(username=username)
        if staff.failed_logins >= settings.CARECARD_LOGIN_MAX_FAILURES:
            locked_until = now + dt.timedelta(minutes=settings.CARECARD_LOGIN_LOCK_MINUTES)
            Staff.objects.filter(pk=staff.pk).update(locked_until=locked_until, failed_logins=0)
            audit(
                action=AuditAction.LOGIN_LOCKED,
                actor=None,
                target=f"staff:{staff.pk}",
                detail={"username": username, "until": locked_until.isoformat()},
                ip=ip,
            )
    audit(action=AuditAction.LOGIN_FAILED, actor=None, detail={"username": username[:150]}, ip=ip)
    return locked_until


@transaction.atomic
def login_record_success(*, staff: Staff, ip: str | None) -> None:
    Staff.objects.filter(pk=staff.pk).update(failed_logins=0, locked_until=None)
    audit(action=AuditAction.LOGIN, actor=staff, store_id=staff.home_store_id, ip=ip)


@transaction.atomic
def logout_record(*, staff: Staff, ip: str | None) -> None:
    audit(action=AuditAction.LOGOUT, actor=staff, store_id=staff.home_store_id, ip=ip)


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@transaction.atomic
def terminal_create(
    *,
    actor: Staff | None,
    store: Store,
    code: str,
    name: str = "",
    valid_days: int | None = 365,
) -> tuple[PosTerminal, str]:
    """Register a POS terminal; returns it and its token (shown once, stored hashed)."""
    if actor is not None and not actor.can_for_store("terminal.manage", store.pk):
        raise DomainError("permission_denied", _("无权管理该门店的终端"), status=403)
    if actor is not None and not actor.is_hq and actor.home_store_id != store.pk:
        raise DomainError("permission_denied", _("无权管理该门店的终端"), status=403)
    token = _new_token()
    now = timezone.now()
    try:
        with transaction.atomic():
            terminal = PosTerminal.objects.create(
                store=store,
                code=code,
                name=name,
                token_hash=hash_token(token),
                token_prefix=token[:12],
                issued_at=now,
                expires_at=now + dt.timedelta(days=valid_days) if valid_days else None,
            )
    except IntegrityError as exc:
        raise Conflict("terminal_code_taken", _("终端编号已存在")) from exc
    audit(
        action=AuditAction.TERMINAL,
        actor=actor,
        store_id=store.pk,
        target=f"terminal:{terminal.pk}",
        detail={"op": "create", "code": code},
    )
    return terminal, token


@transaction.atomic
def terminal_rotate_token(
    *, actor: Staff | None, terminal: PosTerminal, valid_days: int | None = 365
) -> str:
    """Issue a new token; the old one stops working at once."""
    token = _new_token()
    now = timezone.now()
    terminal.token_hash = hash_token(token)
    terminal.token_prefix = token[:12]
    terminal.issued_at = now
    terminal.expires_at = now + dt.timedelta(days=valid_days) if valid_days else None
    terminal.revoked_at = None
    terminal.save(
        update_fields=["token_hash", "token_prefix", "issued_at", "expires_at", "revoked_at"]
    )
    audit(
        action=AuditAction.TERMINAL,
        actor=actor,
        store_id=terminal.store_id,
        target=f"terminal:{terminal.pk}",
        detail={"op": "rotate"},
    )
    return token


@transaction.atomic
def terminal_revoke(*, actor: Staff | None, terminal: PosTerminal) -> None:
    terminal.revoked_at = timezone.now()
    terminal.save(update_fields=["revoked_at"])
    audit(
        action=AuditAction.TERMINAL,
        actor=actor,
        store_id=terminal.store_id,
        target=f"terminal:{terminal.pk}",
        detail={"op": "revoke"},
    )


def terminal_authenticate(token: str) -> PosTerminal | None:
    """The active terminal for a bearer token, or None (unknown, revoked or expired)."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    terminal = (
        PosTerminal.objects.select_related("store")
        .filter(token_hash=hash_token(token), revoked_at__isnull=True)
        .first()
    )
    if terminal is None:
        return None
    now = timezone.now()
    if terminal.expires_at and terminal.expires_at <= now:
        return None
    # Throttle the last-used write to once a minute so lookups stay read-only on the hot path.
    if terminal.last_used_at is None or now - terminal.last_used_at > dt.timedelta(minutes=1):
        PosTerminal.objects.filter(pk=terminal.pk).update(last_used_at=now)
    return terminal


def store_get(code: str) -> Store:
    try:
        return Store.objects.get(code=code)
    except Store.DoesNotExist as exc:
        raise NotFound("store", _("门店不存在")) from exc
