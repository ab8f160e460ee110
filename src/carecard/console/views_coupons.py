"""The member page's coupons section (优惠券, V-1..V-3): the member's usable, used and expired
coupons with their terms and validity, and issuing one by hand from a template.

Issuing by hand gives money away outside any campaign rule, so it is for the roles
``coupons.services`` already trusts with void and printed batches (``MANAGER_ROLES``: store
manager, marketing, HQ administrator); a store manager only for their own store's members and
from templates usable in their store (as ``can_adjust`` limits manual points). The issued coupon
is its own record: source ``manual``, issued by, issued store, time.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from carecard.checkout import selectors as checkout_selectors
from carecard.console import selectors as console_selectors
from carecard.console.forms import FormErrors
from carecard.console.http import done, page, permission
from carecard.console.views_loyalty import _member
from carecard.core.errors import DomainError
from carecard.core.roles import Perm
from carecard.coupons import services as coupon_services
from carecard.coupons.models import CouponSource
from carecard.coupons.selectors import member_coupons
from carecard.members.models import Member

TABS = ("usable", "used", "expired")
SHOWN = 20  # used and expired coupons listed per tab


def can_issue(staff: Any, member: Member) -> bool:
    if staff.role not in coupon_services.MANAGER_ROLES or not staff.is_active:
        return False
    if not member.is_live:
        return False
    return staff.is_hq or staff.home_store_id == member.home_store_id


def _issue_store_id(staff: Any) -> int | None:
    """Templates a store's staff may issue from are limited to their store's; HQ: any."""
    return None if staff.is_hq else staff.home_store_id


def _tab(request: HttpRequest) -> str:
    tab = request.GET.get("tab", "")
    return tab if tab in TABS else "usable"


def _rows(coupons: list[Any]) -> list[dict[str, Any]]:
    return [
        {"c": c, "sale_id": checkout_selectors.sale_id_of(c.redeemed_reference)} for c in coupons
    ]


def _coupons_context(
    request: HttpRequest,
    member: Member,
    *,
    tab: str = "usable",
    values: dict[str, str] | None = None,
    errors: FormErrors | None = None,
) -> dict[str, Any]:
    staff = request.user
    now = timezone.now()
    held = member_coupons(member.pk, at=now, limit=SHOWN)
    allowed = can_issue(staff, member)
    shown = {
        "usable": held.usable + held.upcoming,
        "used": held.used,
        "expired": held.expired,
    }[tab]
    return {
        "member": member,
        "tab": tab,
        "counts": {
            "usable": len(held.usable) + len(held.upcoming),
            "used": len(held.used),
            "expired": len(held.expired),
        },
        "rows": _rows(shown),
        "today": timezone.localdate(now),
        "can_issue": allowed,
        "templates": (
            console_selectors.issuable_templates(
                store_id=_issue_store_id(staff), today=timezone.localdate(now)
            )
            if allowed
            else []
        ),
        "issue": values or {"template": ""},
        "issue_errors": errors or FormErrors(),
    }


def _render(request: HttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    return page(
        request,
        "console/member_coupons.html",
        context,
        partials={"member-coupons": "coupons"},
        status=status,
    )


@permission(Perm.MEMBER_VIEW)
def member_coupons_view(request: HttpRequest, pk: int) -> HttpResponse:
    member = _member(pk)
    return _render(request, _coupons_context(request, member, tab=_tab(request)))


@require_POST
@permission(Perm.MEMBER_VIEW)
def member_coupon_issue(request: HttpRequest, pk: int) -> HttpResponse:
    staff = request.user
    member = _member(pk)
    if not can_issue(staff, member):
        raise PermissionDenied(_("只有店长和总部可以手工发券，且店长只能发给本店会员"))
    values = {"template": request.POST.get("template", "").strip()[:12]}
    errors = FormErrors()
    templates = {
        str(t.pk): t
        for t in console_selectors.issuable_templates(
            store_id=_issue_store_id(staff), today=timezone.localdate()
        )
    }
    template = templates.get(values["template"])
    if template is None:
        errors.fields["template"] = [_("请选择可发放的券")]
    status = 422
    if template is not None:
        try:
            coupon = coupon_services.coupon_issue(
                template=template,
                member=member,
                source=CouponSource.MANUAL,
                actor=staff,
                store=staff.home_store_id,
            )
        except DomainError as exc:
            if exc.status == 403:
                raise
            status = exc.status
            # Every refusal (template stopped or ended, limit reached, member inactive) is
            # about the chosen template for this member: show it next to the choice.
            errors.fields["template"] = [str(exc.message)]
        else:
            messages.success(
                request,
                _("已向 %(name)s 发放“%(t)s”，券码 %(code)s")
                % {"name": member.name, "t": template.name, "code": coupon.code},
            )
            return done(request, reverse("console:member_detail", args=[member.pk]))
    context = _coupons_context(request, member, values=values, errors=errors)
    return _render(request, context, status)
