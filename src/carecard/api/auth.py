"""API authentication (A-3, G-6): POS terminal bearer tokens, and staff console sessions.

Integrators authenticate every call with ``Authorization: Bearer <terminal token>``. The token is
looked up by its SHA-256 hash (``chain.services.terminal_authenticate``); an unknown, expired,
revoked or rotated-away token is a 401 in the one error shape. The terminal's store is the
"current store": enrolments are made there, and members of that store are shown unmasked.

A staff member logged in to the console may call the same endpoints with the session cookie (for
HTMX widgets); then the staff role and home store decide what is visible, and unsafe methods need
the CSRF token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from carecard.chain.models import PosTerminal, Staff, Store
from carecard.chain.services import terminal_authenticate
from carecard.core.errors import DomainError, FieldError, PermissionDenied, ValidationFailed
from carecard.core.roles import Perm


class TerminalToken(HttpBearer):
    """``Authorization: Bearer cct_…`` — a POS terminal's token (shown once when issued)."""

    openapi_bearerFormat = "cct_…"
    openapi_description = (
        "POS terminal token (终端凭证), issued per terminal in the console, bound to one store; "
        "stored hashed, rotatable and revocable. Unknown, expired or revoked tokens get 401."
    )

    def authenticate(self, request: HttpRequest, token: str) -> PosTerminal | None:
        return terminal_authenticate(token.strip())


class StaffSession(APIKeyCookie):
    """A logged-in console session (the session cookie); unsafe methods need the CSRF token.

    Unlike ninja's ``SessionAuth`` it only checks CSRF once the session is known to be a logged-in
    staff member, so a request with a bad bearer token stays a 401 rather than a CSRF 403.
    """

    param_name = settings.SESSION_COOKIE_NAME
    openapi_description = (
        "Console session of a logged-in staff member (for the console's own pages); unsafe "
        "methods need the X-CSRFToken header. Integrators use TerminalToken."
    )

    def __init__(self) -> None:
        super().__init__(csrf=False)

    def authenticate(self, request: HttpRequest, key: str | None) -> Staff | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not isinstance(user, Staff):
            return None
        if not user.can(Perm.MEMBER_VIEW):
            return None
        if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE") and check_csrf(request):
            raise DomainError("csrf_failed", _("CSRF 校验失败，请刷新页面后重试"), status=403)
        return user


terminal_token = TerminalToken()
staff_session = StaffSession()
API_AUTH = [terminal_token, staff_session]


@dataclass(frozen=True)
class Caller:
    """Who is calling: a POS terminal (its store is the current store) or a staff member."""

    terminal: PosTerminal | None
    staff: Staff | None
    ip: str | None

    @property
    def actor(self) -> Staff | None:
        """The ``actor`` argument of services: None for a terminal (a terminal is not a user)."""
        return self.staff

    @property
    def terminal_id(self) -> int | None:
        return self.terminal.pk if self.terminal else None

    @property
    def store(self) -> Store | None:
        if self.terminal is not None:
            return self.terminal.store
        return self.staff.home_store if self.staff is not None else None

    @property
    def terminal_store_id(self) -> int | None:
        return self.terminal.store_id if self.terminal is not None else None

    def require_store(self) -> Store:
        """The store a write happens in; an HQ session without a home store has none."""
        store = self.store
        if store is None:
            raise ValidationFailed(
                [FieldError("store", "required", _("总部账号没有所属门店，请在门店终端办理"))]
            )
        return store

    def require_health_scope(self, *, store_id: int) -> None:
        """A terminal writes health data only for its own store's members (A-2, G-3); staff
        permissions are checked by the services themselves."""
        if self.terminal is not None and self.terminal.store_id != store_id:
            raise PermissionDenied(_("无权查看或修改其他门店会员的健康信息"))


def caller(request: HttpRequest) -> Caller:
    auth: Any = getattr(request, "auth", None)
    ip = request.META.get("REMOTE_ADDR")
    if isinstance(auth, PosTerminal):
        return Caller(terminal=auth, staff=None, ip=ip)
    if isinstance(auth, Staff):
        return Caller(terminal=None, staff=auth, ip=ip)
    raise DomainError("unauthorized", _("未认证"), status=401)  # pragma: no cover
