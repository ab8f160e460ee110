"""The member page's points, tier and sales sections (P-5..P-7, T-1, C-4).

Each section is its own page and, for an HTMX request aimed at it, its own partial: the member
page loads them after it renders, so its own query budget does not grow.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from carecard.checkout import selectors
from carecard.console.forms import FormErrors
from carecard.console.http import done, page, permission, wants_partial
from carecard.core.errors import DomainError, ValidationFailed
from carecard.core.roles import Perm
from carecard.loyalty import services as points_services
from carecard.loyalty.models import PointsEntry
from carecard.loyalty.selectors import points_summary
from carecard.members.models import Member


def _member(pk: int) -> Member:
    member = (
        Member.objects.select_related("home_store")
        .only("id", "name", "member_no", "status", "home_store_id", "home_store__name")
        .filter(pk=pk)
        .first()
    )
    if member is None:
        raise Http404(_("会员不存在"))
    return member


def _page_no(request: HttpRequest) -> int:
    raw = request.GET.get("page", "")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 100_000 else 1


def can_adjust(staff: Any, member: Member) -> bool:
    """Manual adjustments (P-5): the permission, and for store roles only their store's members."""
    if not staff.can(Perm.POINTS_ADJUST) or not member.is_live:
        return False
    return staff.is_hq or staff.home_store_id == member.home_store_id


def _ledger_rows(entries: list[PointsEntry]) -> list[dict[str, Any]]:
    return [
        {
            "e": e,
            "why": (e.explanation or {}).get("text", ""),
            "sale_id": selectors.sale_id_of(e.reference),
        }
        for e in entries
    ]


def _points_context(
    request: HttpRequest,
    member: Member,
    *,
    values: dict[str, str] | None = None,
    errors: FormErrors | None = None,
) -> dict[str, Any]:
    page_no = _page_no(request)
    entries, has_next = selectors.points_ledger(member.pk, page=page_no)
    now = timezone.now()
    today = timezone.localdate(now)
    lots = [
        {
            "lot": lot,
            "pending": lot.available_at > now,
            "expired": lot.expires_on is not None and lot.expires_on < today,
        }
        for lot in selectors.points_lots(member.pk)
    ]
    return {
        "member": member,
        "summary": points_summary(member.pk, at=now),
        "lots": lots,
        "ledger": _ledger_rows(entries),
        "page_no": page_no,
        "has_next": has_next,
        "can_adjust": can_adjust(request.user, member),
        "adjust": values or {"direction": "add", "points": "", "reason": ""},
        "adjust_errors": errors or FormErrors(),
    }


@permission(Perm.MEMBER_VIEW)
def member_points(request: HttpRequest, pk: int) -> HttpResponse:
    member = _member(pk)
    if wants_partial(request, "points-ledger"):
        page_no = _page_no(request)
        entries, has_next = selectors.points_ledger(member.pk, page=page_no)
        context = {
            "member": member,
            "ledger": _ledger_rows(entries),
            "page_no": page_no,
            "has_next": has_next,
        }
        return page(request, "console/member_points.html#ledger", context)
    return page(
        request,
        "console/member_points.html",
        _points_context(request, member),
        partials={"member-points": "points", "points-ledger": "ledger"},
    )


@require_POST
@permission(Perm.POINTS_ADJUST)
def member_points_adjust(request: HttpRequest, pk: int) -> HttpResponse:
    staff = request.user
    member = _member(pk)
    if not can_adjust(staff, member):
        raise PermissionDenied(_("只能调整本店会员的积分"))
    values = {
        "direction": "deduct" if request.POST.get("direction") == "deduct" else "add",
        "points": request.POST.get("points", "").strip()[:9],
        "reason": request.POST.get("reason", "").strip()[:200],
    }
    errors = FormErrors()
    amount = int(values["points"]) if values["points"].isdigit() else None
    if amount is None or amount == 0:
        errors.fields["points"] = [_("请输入大于 0 的整数积分")]
    if not values["reason"]:
        errors.fields["reason"] = [_("请填写调整原因")]
    status = 422
    if not errors:
        assert amount is not None
        signed = -amount if values["direction"] == "deduct" else amount
        try:
            points_services.points_adjust(
                member_id=member.pk,
                points=signed,
                reason=values["reason"],
                actor=staff,
                store_id=staff.home_store_id,
            )
        except ValidationFailed as exc:
            errors = FormErrors.from_errors(exc.errors, known={"points", "reason"})
        except DomainError as exc:
            if exc.status == 403:
                raise
            status = exc.status
            errors.fields["points"] = [str(exc.message)]
        else:
            messages.success(
                request,
                _("已为 %(name)s %(how)s %(n)d 积分")
                % {
                    "name": member.name,
                    "how": _("扣减") if signed < 0 else _("增加"),
                    "n": amount,
                },
            )
            return done(request, reverse("console:member_detail", args=[member.pk]))
    context = _points_context(request, member, values=values, errors=errors)
    return page(
        request,
        "console/member_points.html",
        context,
        partials={"member-points": "points"},
        status=status,
    )


@permission(Perm.MEMBER_VIEW)
def member_tier(request: HttpRequest, pk: int) -> HttpResponse:
    member = _member(pk)
    context = {"member": member, "standing": selectors.member_tier(member.pk)}
    return page(request, "console/member_tier.html", context, partials={"member-tier": "tier"})


@permission(Perm.MEMBER_VIEW)
def member_sales(request: HttpRequest, pk: int) -> HttpResponse:
    member = _member(pk)
    page_no = _page_no(request)
    sales, has_next = selectors.member_sales(member.pk, page=page_no)
    context = {"member": member, "sales": sales, "page_no": page_no, "has_next": has_next}
    return page(request, "console/member_sales.html", context, partials={"member-sales": "sales"})
