"""The counter (收银台) for stores without an integrated POS, and the receipt page with returns.

Both write through ``checkout.services`` only. The counter page keeps the basket in the form
(see ``counter_forms``); each change re-prices it with ``sale_quote``. A sale or return carries
an idempotency key rendered into the page, so a double-click replays the first result instead
of recording a second sale.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from carecard.chain.models import Store
from carecard.checkout import selectors
from carecard.checkout import services as checkout
from carecard.checkout.config import settings_get
from carecard.checkout.engine import PricedLine
from carecard.checkout.models import Sale, SaleKind, SaleLine, TenderKind
from carecard.console import counter_forms
from carecard.console import selectors as console_selectors
from carecard.console.benefits import refusal_text
from carecard.console.counter_forms import SV, CounterForm
from carecard.console.forms import FormErrors
from carecard.console.http import done, page, permission, wants_partial
from carecard.core.errors import Conflict, DomainError, ValidationFailed
from carecard.core.phone import mask_phone
from carecard.core.roles import STORE_ROLES, Perm, Role
from carecard.loyalty.earning import LineEarning
from carecard.loyalty.selectors import points_summary
from carecard.members import selectors as member_selectors
from carecard.members.models import Member, MemberStatus
from carecard.wallet.models import WalletAccount

# Who may sell and take returns at the console counter. An HQ administrator may too, but
# only with a home store: every sale belongs to a store.
COUNTER_ROLES = STORE_ROLES | {Role.HQ_ADMIN}
LIVE = (MemberStatus.ACTIVE, MemberStatus.PENDING)


def may_use_counter(staff: Any) -> bool:
    return bool(staff.is_active and staff.role in COUNTER_ROLES)


def counter_store(staff: Any) -> Store | None:
    """The store the staff member sells in, or None when they may not sell here."""
    return staff.home_store if may_use_counter(staff) else None


def _require_counter(staff: Any) -> None:
    if not may_use_counter(staff):
        raise PermissionDenied(_("只有门店员工可以使用收银台"))


# --- the counter page --------------------------------------------------------------------------


@dataclass
class Row:
    """One basket line as the page shows it."""

    index: int
    sku: str
    qty_raw: str
    product: Any
    priced: PricedLine | None
    earning: LineEarning | None
    errors: list[str]


def _member(member_id: int | None) -> Member | None:
    if member_id is None:
        return None
    return (
        Member.objects.select_related("home_store")
        .defer("id_number", "allergies", "medical_history", "chronic_conditions")
        .filter(pk=member_id, status__in=LIVE)
        .first()
    )


def _member_results(request: HttpRequest, query: str) -> list[dict[str, Any]]:
    if not query:
        return []
    _how, found = member_selectors.lookup_members(query, limit=8)
    stores = Store.objects.in_bulk({m.home_store_id for m in found})
    return [
        {
            "m": m,
            "phone": member_selectors.member_view(member=m, actor=request.user).phone,
            "store": stores.get(m.home_store_id),
        }
        for m in found
    ]


def _fill_stored_value(
    form: CounterForm, *, net: Decimal, balance: Decimal, points_per_yuan: int
) -> None:
    """用储值付清: stored value takes what the other typed tenders leave, up to the balance."""
    points_value = Decimal("0.00")
    if form.points and points_per_yuan:
        points_value = (Decimal(form.points) / points_per_yuan).quantize(Decimal("0.01"))
    cash_auto = not form.tenders.get(TenderKind.CASH)
    others = sum(
        (
            v
            for k, v in form.amounts.items()
            if k != SV and not (k == TenderKind.CASH and cash_auto)
        ),
        Decimal("0.00"),
    )
    amount = min(balance, max(Decimal("0.00"), net - others - points_value))
    form.errors.fields.pop(f"t_{SV}", None)
    if amount > 0:
        form.tenders[SV] = str(amount)
        form.amounts[SV] = amount
    else:
        form.tenders[SV] = ""
        form.amounts.pop(SV, None)


def _coupon_rows(form: CounterForm, quote: checkout.Quote | None) -> list[dict[str, Any]]:
    """Each presented code with what the quote made of it: used (and for how much) or refused
    (and why, in the staff's language)."""
    applied = {c.code: c for c in quote.basket.coupons_applied} if quote else {}
    refused = {r.code: r for r in quote.coupons_refused} if quote else {}
    rows = []
    for code in form.coupons:
        refusal = refused.get(code)
        rows.append(
            {
                "code": code,
                "applied": applied.get(code),
                "refused": refusal,
                "reason": refusal_text(refusal.reason_code, refusal.message) if refusal else "",
            }
        )
    return rows


def _price(
    form: CounterForm, store: Store, member: Member | None, wallet: WalletAccount | None
) -> dict[str, Any]:
    """Re-price the basket: the quote, how it is paid, per-line rows. Errors land on ``form``."""
    quote = None
    if form.line_ins and not form.line_errors:
        try:
            quote = checkout.sale_quote(
                store_id=store.pk,
                member_id=member.pk if member else None,
                lines=form.line_ins,
                coupons=form.coupons,
            )
        except ValidationFailed as exc:
            counter_forms.map_line_errors(form, exc.errors)
        except DomainError as exc:
            if exc.status == 403:
                raise
            form.errors.general.append(str(exc.message))
    settings = settings_get()
    net = quote.basket.net if quote else Decimal("0.00")
    if form.sv_fill and member is not None and quote is not None:
        _fill_stored_value(
            form,
            net=net,
            balance=wallet.balance if wallet else Decimal("0.00"),
            points_per_yuan=settings.points_per_yuan,
        )
    pay = counter_forms.payment(form, net=net, points_per_yuan=settings.points_per_yuan)
    points_estimated = False
    paid_otherwise = any(t.kind != TenderKind.CASH for t in pay.tenders)
    if quote is not None and member is not None and paid_otherwise:
        if pay.due == 0:
            # Points are earned only on what the member paid themselves (C-4a): price again
            # with the actual tenders.
            try:
                quote = checkout.sale_quote(
                    store_id=store.pk,
                    member_id=member.pk,
                    lines=form.line_ins,
                    coupons=form.coupons,
                    tenders=pay.tenders,
                )
            except DomainError as exc:
                if exc.status == 403:
                    raise
                counter_forms.map_line_errors(form, exc.errors or [])
                if not exc.errors:
                    form.errors.general.append(str(exc.message))
        else:
            points_estimated = True
    products = selectors.products_by_sku([ln.sku for ln in form.lines])
    priced = {pl.index: pl for pl in quote.basket.lines} if quote else {}
    earned = {le.index: le for le in quote.earning.lines} if quote and quote.earning else {}
    rows = []
    for i, line in enumerate(form.lines):
        rows.append(
            Row(
                index=i,
                sku=line.sku,
                qty_raw=line.qty_raw,
                product=products.get(line.sku),
                priced=priced.get(i),
                earning=earned.get(i),
                errors=form.line_errors.get(i, []),
            )
        )
    return {
        "quote": quote,
        "rows": rows,
        "pay": pay,
        "points_estimated": points_estimated,
        "points_per_yuan": settings.points_per_yuan,
        "coupon_rows": _coupon_rows(form, quote),
        "coupons_refused": bool(quote and quote.coupons_refused),
    }


def _tender_rows(form: CounterForm) -> list[dict[str, Any]]:
    return [
        {
            "kind": kind,
            "label": TenderKind(kind).label,
            "value": form.tenders.get(kind, ""),
            "errors": form.errors.fields.get(f"t_{kind}", []),
        }
        for kind in counter_forms.MONEY_TENDERS
    ]


def _counter_context(request: HttpRequest, store: Store, form: CounterForm) -> dict[str, Any]:
    member = _member(form.member_id)
    if form.member_id is not None and member is None:
        form.member_id = None
        form.errors.general.append(_("会员不存在或已注销"))
    counter_forms.validate_tenders(form, has_member=member is not None)
    context: dict[str, Any] = {"store": store, "f": form, "member": member}
    wallet = None
    if member is not None:
        wallet = console_selectors.wallet_account(member.pk)
        balance = wallet.balance if wallet else Decimal("0.00")
        if form.amounts.get(SV, Decimal("0.00")) > balance:
            form.errors.fields[f"t_{SV}"] = [_("储值余额不足，可用 ¥%(a)s") % {"a": balance}]
            form.state_fields.add(f"t_{SV}")
        offered = console_selectors.counter_coupons(
            member.pk, store_id=store.pk, today=timezone.localdate()
        )
        context.update(
            member_phone=member_selectors.member_view(member=member, actor=request.user).phone,
            member_points=points_summary(member.pk),
            standing=selectors.member_tier(member.pk),
            wallet=wallet,
            wallet_balance=balance,
            member_coupons=[c for c in offered if c.code not in form.coupons],
        )
    else:
        context["member_results"] = _member_results(request, form.member_q)
    context.update(_price(form, store, member, wallet))
    context["tender_rows"] = _tender_rows(form)
    context["errors"] = form.errors
    return context


def _apply_scan(form: CounterForm) -> None:
    if not form.add_code:
        return
    product = selectors.product_by_code(form.add_code)
    # A refused code is named in the error and cleared from the box, ready for the next scan.
    if product is None:
        form.errors.fields["add"] = [_("没有找到商品：%(c)s") % {"c": form.add_code}]
        form.add_code = ""
    elif not product.is_active:
        form.errors.fields["add"] = [_("商品已停售：%(n)s") % {"n": product.name}]
        form.add_code = ""
    else:
        counter_forms.add_product(form, product.sku)


def _commit(
    request: HttpRequest, store: Store, form: CounterForm, ctx: dict[str, Any]
) -> tuple[HttpResponse | None, int]:
    """Record the sale: the receipt redirect, or None and a status with the errors on ``form``."""
    if not form.lines:
        form.errors.general.append(_("购物篮中没有商品"))
        return None, 422
    if form.has_errors:
        return None, 422
    # Refused coupons and stored value beyond the balance are not stopped here: the service
    # refuses them with their reasons, and replays a sale this key already recorded (the
    # first click of a double-click used the coupon and the balance).
    staff = request.user
    tenders = ctx["pay"].tenders
    try:
        result = checkout.sale_commit(
            scope=f"staff:{staff.pk}",
            idempotency_key=form.key,
            body=form.body(store.pk),
            store_id=store.pk,
            member_id=form.member_id,
            lines=form.line_ins,
            tenders=tenders,
            coupons=form.coupons,
            staff=staff,
        )
    except Conflict as exc:
        if exc.code != "idempotency_key_reused":
            # Another counter used a coupon between this quote and the commit.
            counter_forms.map_line_errors(form, exc.errors or [], tenders)
            if not exc.errors:
                form.errors.general.append(str(exc.message))
            return None, 409
        # The key already recorded another basket (the page was re-used after a sale): start
        # a new sale rather than guess.
        form.key = counter_forms.new_key()
        form.errors.general.append(
            _("这一单已经结算过。已开始新的一单，请核对商品和金额后再结算。")
        )
        return None, 409
    except DomainError as exc:
        if exc.status == 403:
            raise
        counter_forms.map_line_errors(form, exc.errors or [], tenders)
        if not exc.errors:
            form.errors.general.append(str(exc.message))
        if "coupons" in form.errors.fields:
            form.errors.fields["coupons"].append(_("请移除不能使用的券后再结算"))
        return None, exc.status
    sale = result.sale
    messages.success(
        request,
        _("已结算：小票 %(no)s，实收 ¥%(net)s") % {"no": sale.receipt_no, "net": sale.net_total},
    )
    return done(request, reverse("console:sale_receipt", args=[sale.pk])), 200


@permission(Perm.MEMBER_VIEW)
def counter(request: HttpRequest) -> HttpResponse:
    staff = request.user
    _require_counter(staff)
    store = counter_store(staff)
    if store is None:
        if request.method != "GET":
            raise PermissionDenied(_("没有所属门店，不能收银"))
        return page(request, "console/counter.html", {"store": None})
    if request.method == "GET":
        query = request.GET.get("member_q", "").strip()[:64]
        if wants_partial(request, "counter-member-results"):
            return page(
                request,
                "console/counter.html",
                {"member_results": _member_results(request, query), "f": {"member_q": query}},
                partials={"counter-member-results": "member_results"},
            )
        form = CounterForm(key=counter_forms.new_key(), member_q=query)
        return page(request, "console/counter.html", _counter_context(request, store, form))
    form = counter_forms.parse(request.POST)
    scanned = bool(form.add_code)
    _apply_scan(form)
    ctx = _counter_context(request, store, form)
    status = 200
    if request.POST.get("commit") and scanned:
        # A code still in the scan box when 结算 was pressed: the clerk has not seen the
        # basket with it yet, so show it rather than charge for it.
        form.errors.general.append(_("扫码框中的商品已加入购物篮，请核对金额后再结算。"))
    elif request.POST.get("commit"):
        response, status = _commit(request, store, form, ctx)
        if response is not None:
            return response
        for row in ctx["rows"]:
            row.errors = form.line_errors.get(row.index, [])
    return page(
        request, "console/counter.html", ctx, partials={"counter-form": "form"}, status=status
    )


# --- receipts and returns ----------------------------------------------------------------------


def _sale_or_404(pk: int) -> Sale:
    sale = selectors.receipt_get(pk)
    if sale is None:
        raise Http404(_("小票不存在"))
    return sale


def _receipt_context(
    request: HttpRequest,
    sale: Sale,
    *,
    key: str | None = None,
    values: dict[int, str] | None = None,
    errors: FormErrors | None = None,
    line_errors: dict[int, list[str]] | None = None,
) -> dict[str, Any]:
    staff = request.user
    lines: list[SaleLine] = list(sale.lines.all())
    values = values or {}
    line_errors = line_errors or {}
    rows = [
        {
            "line": ln,
            "discounts": [d for d in ln.discounts.all() if d.amount > 0],
            "returnable": ln.quantity - ln.returned_quantity,
            "value": values.get(ln.line_no, "0"),
            "errors": line_errors.get(ln.line_no, []),
            "why": (ln.explanation or {}).get("text", ""),
        }
        for ln in lines
    ]
    tenders = list(sale.tenders.all())
    wallet_entry = None
    if sale.member_id and any(t.kind == TenderKind.STORED_VALUE for t in tenders):
        wallet_entry = console_selectors.wallet_balance_after(
            sale.member_id, f"{sale.kind}:{sale.pk}"
        )
    context: dict[str, Any] = {
        "sale": sale,
        "is_return": sale.kind == SaleKind.RETURN,
        "rows": rows,
        "tenders": tenders,
        "wallet_entry": wallet_entry,
        "returns": list(sale.returns.all()) if sale.kind == SaleKind.SALE else [],
        # A receipt is printed and handed over: the phone is always masked on it.
        "member_phone": mask_phone(sale.member.phone or "") if sale.member else "",
        "can_counter": counter_store(staff) is not None,
        "return_errors": errors or FormErrors(),
    }
    if sale.kind == SaleKind.RETURN:
        context["refund_money"] = sum((t.amount for t in tenders), Decimal("0.00"))
        context["points_reversed"] = -sale.points_earned
        context["points_restored"] = -sale.points_spent
    else:
        deadline = selectors.return_deadline(sale)
        returnable = any(r["returnable"] > 0 for r in rows)
        context.update(
            deadline=deadline,
            window_open=timezone.localdate() <= deadline,
            returnable=returnable,
            can_return=context["can_counter"] and returnable,
            return_key=key or counter_forms.new_key(),
        )
    return context


@permission(Perm.MEMBER_VIEW)
def sale_receipt(request: HttpRequest, pk: int) -> HttpResponse:
    sale = _sale_or_404(pk)
    return page(request, "console/receipt.html", _receipt_context(request, sale))


def _return_lines(
    post: Any, lines: list[SaleLine]
) -> tuple[list[checkout.ReturnLineIn], dict[int, str], dict[int, list[str]]]:
    wanted, values, errors = [], {}, {}
    for ln in lines:
        raw = post.get(f"qty_{ln.line_no}", "").strip()[:6] or "0"
        values[ln.line_no] = raw
        if not raw.isdigit():
            errors[ln.line_no] = [_("数量应为不小于 0 的整数")]
            continue
        if int(raw) > 0:
            wanted.append(checkout.ReturnLineIn(line_no=ln.line_no, quantity=int(raw)))
    return wanted, values, errors


@require_POST
@permission(Perm.MEMBER_VIEW)
def sale_return(request: HttpRequest, pk: int) -> HttpResponse:
    staff = request.user
    _require_counter(staff)
    store = counter_store(staff)
    if store is None:
        raise PermissionDenied(_("没有所属门店，不能办理退货"))
    sale = _sale_or_404(pk)
    if sale.kind != SaleKind.SALE:
        raise Http404(_("退货单不能再退货"))
    key = request.POST.get("key", "").strip()[:100] or counter_forms.new_key()
    wanted, values, line_errors = _return_lines(request.POST, list(sale.lines.all()))
    errors = FormErrors()
    status = 422
    if not line_errors:
        body = {"sale_id": sale.pk, "lines": [[r.line_no, r.quantity] for r in wanted]}
        try:
            result = checkout.sale_return(
                scope=f"staff:{staff.pk}",
                idempotency_key=key,
                body=body,
                sale_id=sale.pk,
                lines=wanted,
                staff=staff,
                store_id=store.pk,
            )
        except Conflict:
            key = counter_forms.new_key()
            errors.general.append(_("这次退货已经办理过。请刷新页面核对后再试。"))
            status = 409
        except DomainError as exc:
            if exc.status == 403:
                raise
            status = exc.status
            for err in exc.errors:
                name = str(err.field)
                if name.startswith("lines[") and "]" in name:
                    index = int(name[6 : name.index("]")])
                    if index < len(wanted):
                        line_errors.setdefault(wanted[index].line_no, []).append(str(err.message))
                        continue
                if name == "sale_id":
                    continue  # the message above says it
                errors.general.append(str(err.message))
            if not errors.general or exc.code != "validation_error":
                errors.general.insert(0, str(exc.message))
        else:
            ret = result.sale
            refund = result.response.get("refund", {})
            messages.success(
                request,
                _("已退货：退货单 %(no)s，退款 ¥%(money)s")
                % {"no": ret.receipt_no, "money": refund.get("money", ret.net_total)},
            )
            return done(request, reverse("console:sale_receipt", args=[ret.pk]))
    context = _receipt_context(
        request, sale, key=key, values=values, errors=errors, line_errors=line_errors
    )
    return page(
        request,
        "console/receipt.html",
        context,
        partials={"return-form": "return_form"},
        status=status,
    )
