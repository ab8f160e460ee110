"""The member page's stored-value section (储值, S-1, S-2): balance as principal and bonus, the
latest entries, top-up with the bonus tiers in force, and the cash refund that closes it.

Who may do what (A-2, following ``wallet.services`` and the counter):

- top-up takes money at a till, so it needs a till: staff who may use the counter and have a
  home store (clerks, pharmacists, managers; an HQ administrator with a store). Any live member
  of the chain may top up in any store, as they may buy in any store.
- a refund pays cash out and closes the member's stored value: ``card.manage`` (the service
  checks it too), and a store to pay it from.

A top-up form carries a key rendered into the page and passed as the top-up's ``reference``:
a double-click replays the first top-up instead of booking a second one.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from carecard.checkout.selectors import sale_id_of
from carecard.console.counter_forms import parse_money
from carecard.console.forms import FormErrors
from carecard.console.http import done, page, permission
from carecard.console.views_counter import counter_store
from carecard.console.views_loyalty import _member
from carecard.core.errors import Conflict, DomainError, ValidationFailed
from carecard.core.roles import Perm
from carecard.members.models import Member
from carecard.wallet import selectors as wallet_selectors
from carecard.wallet import services as wallet_services
from carecard.wallet.models import RefundRule, TopupTender

ENTRIES = 20
TOPUP_FIELDS = {"amount", "tender", "reference"}
REFUND_FIELDS = {"reason", "tender"}


def _key() -> str:
    return f"console-{uuid.uuid4().hex}"


def can_topup(staff: Any, member: Member) -> bool:
    return member.is_live and counter_store(staff) is not None


def can_refund(staff: Any) -> bool:
    return staff.can(Perm.CARD_MANAGE) and counter_store(staff) is not None


def _wallet_context(
    request: HttpRequest,
    member: Member,
    *,
    topup: dict[str, str] | None = None,
    topup_errors: FormErrors | None = None,
    refund: dict[str, str] | None = None,
    refund_errors: FormErrors | None = None,
) -> dict[str, Any]:
    staff = request.user
    now = timezone.now()
    policy = wallet_selectors.wallet_policy()
    summary = wallet_selectors.wallet_summary(member.pk, at=now)
    refundable = summary.balance > 0 and policy.refund_rule != RefundRule.NONE and can_refund(staff)
    return {
        "member": member,
        "policy": policy,
        "summary": summary,
        "forfeit": summary.balance - summary.refundable,
        "tiers": wallet_selectors.topup_tiers(timezone.localdate(now)) if policy.enabled else [],
        "entries": [
            {"e": e, "sale_id": sale_id_of(e.reference)}
            for e in wallet_selectors.wallet_entries(member.pk, limit=ENTRIES)
        ],
        "can_topup": policy.enabled and can_topup(staff, member),
        "can_refund": refundable,
        "tenders": TopupTender.choices,
        "topup": topup or {"amount": "", "tender": TopupTender.CASH, "key": _key()},
        "topup_errors": topup_errors or FormErrors(),
        "refund": refund or {"reason": "", "tender": TopupTender.CASH},
        "refund_errors": refund_errors or FormErrors(),
    }


def _render(request: HttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    return page(
        request,
        "console/member_wallet.html",
        context,
        partials={"member-wallet": "wallet"},
        status=status,
    )


@permission(Perm.MEMBER_VIEW)
def member_wallet(request: HttpRequest, pk: int) -> HttpResponse:
    return _render(request, _wallet_context(request, _member(pk)))


def _tender(raw: str) -> str | None:
    return raw if raw in TopupTender.values else None


@require_POST
@permission(Perm.MEMBER_VIEW)
def member_wallet_topup(request: HttpRequest, pk: int) -> HttpResponse:
    staff = request.user
    member = _member(pk)
    if not can_topup(staff, member):
        raise PermissionDenied(_("只有门店员工可以办理充值"))
    values = {
        "amount": request.POST.get("amount", "").strip()[:14],
        "tender": request.POST.get("tender", "").strip()[:12],
        "key": request.POST.get("key", "").strip()[:48] or _key(),
    }
    errors = FormErrors()
    amount = parse_money(values["amount"])
    if amount is None or amount <= 0:
        errors.fields["amount"] = [_("请输入大于 0 的金额（最多两位小数）")]
    tender = _tender(values["tender"])
    if tender is None:
        errors.fields["tender"] = [_("请选择收款方式")]
    status = 422
    if not errors:
        assert amount is not None
        assert tender is not None
        try:
            result = wallet_services.wallet_topup(
                member_id=member.pk,
                amount=amount,
                tender=tender,
                store_id=staff.home_store_id,
                actor=staff,
                reference=values["key"],
            )
        except Conflict as exc:
            status = 409
            values["key"] = _key()
            errors.general.append(str(exc.message))
        except ValidationFailed as exc:
            errors = FormErrors.from_errors(exc.errors, known=TOPUP_FIELDS)
        except DomainError as exc:
            if exc.status == 403:
                raise
            status = exc.status
            errors = FormErrors.from_errors(exc.errors, known=TOPUP_FIELDS)
            if not exc.errors:
                errors.general.append(str(exc.message))
        else:
            bonus = result.bonus_entry.amount if result.bonus_entry else Decimal("0.00")
            if bonus:
                text = _("已为 %(name)s 充值 ¥%(a)s，赠送 ¥%(b)s，储值余额 ¥%(bal)s")
            else:
                text = _("已为 %(name)s 充值 ¥%(a)s，储值余额 ¥%(bal)s")
            messages.success(
                request,
                text
                % {
                    "name": member.name,
                    "a": result.entry.amount,
                    "b": bonus,
                    "bal": result.balance,
                },
            )
            return done(request, reverse("console:member_detail", args=[member.pk]))
    context = _wallet_context(request, member, topup=values, topup_errors=errors)
    return _render(request, context, status)


@require_POST
@permission(Perm.CARD_MANAGE)
def member_wallet_refund(request: HttpRequest, pk: int) -> HttpResponse:
    staff = request.user
    member = _member(pk)
    if not can_refund(staff):
        raise PermissionDenied(_("没有所属门店，不能办理储值退款"))
    values = {
        "reason": request.POST.get("reason", "").strip()[:200],
        "tender": request.POST.get("tender", "").strip()[:12],
    }
    errors = FormErrors()
    if not values["reason"]:
        errors.fields["reason"] = [_("请填写退款原因")]
    tender = _tender(values["tender"])
    if tender is None:
        errors.fields["tender"] = [_("请选择退款方式")]
    status = 422
    if not errors:
        assert tender is not None
        try:
            result = wallet_services.wallet_refund(
                member_id=member.pk,
                actor=staff,
                reason=values["reason"],
                store_id=staff.home_store_id,
                tender=tender,
            )
        except ValidationFailed as exc:
            errors = FormErrors.from_errors(exc.errors, known=REFUND_FIELDS)
        except DomainError as exc:
            if exc.status == 403:
                raise
            status = exc.status
            errors = FormErrors.from_errors(exc.errors, known=REFUND_FIELDS)
            if not exc.errors:
                errors.general.append(str(exc.message))
        else:
            messages.success(
                request,
                _("已为 %(name)s 办理储值退款：退还 ¥%(cash)s，作废 ¥%(lost)s")
                % {"name": member.name, "cash": result.cash, "lost": result.forfeited},
            )
            return done(request, reverse("console:member_detail", args=[member.pk]))
    context = _wallet_context(request, member, refund=values, refund_errors=errors)
    return _render(request, context, status)
