"""The POS checkout API (C-1, C-2, C-5, C-6): quote, commit, return, offline batch upload.

Schemas in and out, and calls into ``checkout.services``; nothing else. Writes carry an
``Idempotency-Key`` header: a retry returns the first answer, the same key with another body
is a 409. Errors use the API's one shape (``carecard.api.main``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Header, Router, Schema, Status

from carecard.api.auth import Caller, caller
from carecard.api.schemas import ErrorOut
from carecard.checkout import services
from carecard.checkout.models import TenderKind
from carecard.core.errors import DomainError, FieldError, NotFound, ValidationFailed
from carecard.members.models import Member
from carecard.members.selectors import card_by_number

router = Router()
TAGS = ["checkout 收银"]

Sku = Annotated[str, Field(min_length=1, max_length=64)]
Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]


class LineIn(Schema):
    sku: Sku = Field(..., examples=["6901234567890"])
    quantity: int = Field(..., ge=1, le=services.MAX_QUANTITY)


class TenderIn(Schema):
    kind: Literal[tuple(TenderKind.values)] = Field(..., description="cash, bank_card, wechat, …")  # type: ignore[valid-type]
    amount: Money = Field(Decimal("0.00"), description="CNY; for `points` leave 0 and give points")
    points: int = Field(0, ge=0, description="Points that pay (kind `points` only)")
    reference: str = Field("", max_length=64, description="Payment reference 支付流水号")


class BasketIn(Schema):
    member_no: str | None = Field(
        None, max_length=40, description="Member number or card number; omit for a walk-in"
    )
    lines: list[LineIn] = Field(..., min_length=1, max_length=services.MAX_LINES)
    coupons: list[Annotated[str, Field(max_length=40)]] = Field([], max_length=10)


class QuoteIn(BasketIn):
    tenders: list[TenderIn] = Field(
        [], max_length=10, description="How the customer will pay (default: all cash)"
    )


class SaleIn(BasketIn):
    tenders: list[TenderIn] = Field(..., min_length=1, max_length=10)
    at: dt.datetime | None = Field(
        None, description="When the sale happened (offline uploads); default now"
    )
    receipt_no: str = Field("", max_length=40, description="The POS's own receipt number")


class OfflineSaleIn(SaleIn):
    idempotency_key: str = Field(..., min_length=1, max_length=100)
    at: dt.datetime  # required: the original time of the offline sale


class ReturnLineIn(Schema):
    line_no: int = Field(..., ge=1)
    quantity: int = Field(..., ge=1, le=services.MAX_QUANTITY)


class ReturnIn(Schema):
    lines: list[ReturnLineIn] = Field(..., min_length=1, max_length=services.MAX_LINES)


class DiscountOut(Schema):
    kind: str
    reason: str
    amount: Decimal
    funded_by: str


class QuoteLineOut(Schema):
    line_no: int
    sku: str
    name: str
    quantity: int
    unit_price: Decimal
    original: Decimal
    discount: Decimal
    net: Decimal
    points: int
    discounts: list[DiscountOut]
    points_text: str = ""


class QuoteOut(Schema):
    lines: list[QuoteLineOut]
    original_total: Decimal
    discount_total: Decimal
    net_total: Decimal
    points_to_earn: int
    points_text: str
    points_available: int
    tier: str | None = None
    next_tier: str | None = None
    to_next_tier: Decimal | None = Field(None, description="Still needed for the next tier")
    coupons_rejected: list[dict[str, str]] = []


class ReceiptLineOut(Schema):
    line_no: int
    sku: str
    name: str
    quantity: int
    unit_price: Decimal
    original: Decimal
    discount: Decimal
    net: Decimal
    points: int
    discounts: list[DiscountOut]


class RefundOut(Schema):
    money: Decimal
    points_restored: int
    points_reversed: int
    recovered: Decimal
    tenders: list[dict[str, str]]
    coupons_restored: list[str] = []


class ReceiptOut(Schema):
    sale_id: int
    receipt_no: str
    kind: Literal["sale", "return"]
    member_id: int | None
    store_id: int
    at: dt.datetime
    lines: list[ReceiptLineOut]
    original_total: Decimal
    discount_total: Decimal
    net_total: Decimal
    points_earned: int
    points_spent: int
    points_balance: int | None
    recovered_amount: Decimal
    points_text: str
    refund: RefundOut | None = None
    tier: str | None = Field(None, description="The member's tier after this sale")
    coupons_used: list[dict[str, str]] = Field([], description="Coupons redeemed: code, amount")
    coupons_issued: list[str] = Field([], description="Coupons this sale earned (满即送)")
    member_activated: bool = Field(False, description="This sale met the entry rule")
    replayed: bool = False


class BatchItemOut(Schema):
    idempotency_key: str
    status: int
    receipt: ReceiptOut | None = None
    error: ErrorOut | None = None


class BatchOut(Schema):
    results: list[BatchItemOut]


ERRORS: dict[int, Any] = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut}
IdemKey = Annotated[
    str, Header(alias="Idempotency-Key", description="One key per sale; reuse it on retry")
]


def _scope(who: Caller) -> str:
    return f"terminal:{who.terminal_id}" if who.terminal else f"staff:{who.actor.pk}"  # type: ignore[union-attr]


def _member_id(ref: str | None) -> int | None:
    if not ref:
        return None
    member = Member.objects.filter(member_no=ref).only("pk").first()
    if member is None:
        card = card_by_number(ref)
        member = card.member if card is not None else None
    if member is None:
        raise NotFound("member", _("会员不存在：%(r)s") % {"r": ref})
    return member.pk


def _lines(payload: BasketIn) -> list[services.LineIn]:
    return [services.LineIn(sku=ln.sku, quantity=ln.quantity) for ln in payload.lines]


def _tenders(items: list[TenderIn]) -> list[services.TenderIn]:
    return [
        services.TenderIn(kind=t.kind, amount=t.amount, points=t.points, reference=t.reference)
        for t in items
    ]


@router.post(
    "/checkout/quote",
    response={200: QuoteOut, **ERRORS},
    tags=TAGS,
    summary="Price a basket 计价",
    description="Per line the original price, the member discount (with its reason) and the net; "
    "totals; the points the basket will earn paid as given (default all cash). Writes nothing.",
)
def checkout_quote(request: HttpRequest, payload: QuoteIn) -> QuoteOut:
    who = caller(request)
    quote = services.sale_quote(
        store_id=who.require_store().pk,
        member_id=_member_id(payload.member_no),
        lines=_lines(payload),
        coupons=payload.coupons,
        tenders=_tenders(payload.tenders),
    )
    basket, earning = quote.basket, quote.earning
    return QuoteOut(
        lines=[
            QuoteLineOut(
                line_no=pl.index + 1,
                sku=pl.item.sku,
                name=pl.item.name,
                quantity=pl.quantity,
                unit_price=pl.item.shelf_price,
                original=pl.original,
                discount=pl.discount_total,
                net=pl.net,
                points=earning.lines[pl.index].points if earning else 0,
                points_text=earning.lines[pl.index].text if earning else "",
                discounts=[
                    DiscountOut(
                        kind=d.kind, reason=d.reason, amount=d.amount, funded_by=d.funded_by
                    )
                    for d in pl.discounts
                    if d.amount > 0
                ],
            )
            for pl in basket.lines
        ],
        original_total=basket.original,
        discount_total=basket.discount_total,
        net_total=basket.net,
        points_to_earn=earning.total if earning else 0,
        points_text=earning.text if earning else "",
        points_available=quote.points_available,
        tier=quote.tier.tier.name if quote.tier and quote.tier.tier else None,
        next_tier=quote.tier.next_tier.name if quote.tier and quote.tier.next_tier else None,
        to_next_tier=quote.tier.remaining if quote.tier and quote.tier.next_tier else None,
        coupons_rejected=[
            {"field": c.field, "code": c.code, "reason_code": c.reason_code, "message": c.message}
            for c in quote.coupons_refused
        ],
    )


def _commit(who: Caller, key: str, payload: SaleIn, *, offline: bool) -> services.CommitResult:
    body = payload.model_dump(mode="json", exclude={"idempotency_key"})
    return services.sale_commit(
        scope=_scope(who),
        idempotency_key=key,
        body=body,
        store_id=who.require_store().pk,
        member_id=_member_id(payload.member_no),
        lines=_lines(payload),
        tenders=_tenders(payload.tenders),
        coupons=payload.coupons,
        at=payload.at,
        staff=who.actor,
        terminal_id=who.terminal_id,
        receipt_no=payload.receipt_no,
        offline=offline,
    )


@router.post(
    "/checkout/sales",
    response={200: ReceiptOut, 201: ReceiptOut, **ERRORS},
    tags=TAGS,
    summary="Commit a sale 结算",
    description="Records the sale atomically: lines, discounts, tenders, points paid and earned, "
    "member aggregates. `Idempotency-Key` is required: a retry answers 200 with the first "
    "receipt (`replayed: true`); the same key with a different body is 409.",
)
def checkout_commit(
    request: HttpRequest, payload: SaleIn, idempotency_key: IdemKey
) -> Status[ReceiptOut]:
    result = _commit(caller(request), idempotency_key, payload, offline=False)
    return Status(
        200 if result.replayed else 201, ReceiptOut(**result.response, replayed=result.replayed)
    )


@router.post(
    "/checkout/sales/{sale_id}/returns",
    response={200: ReceiptOut, 201: ReceiptOut, **ERRORS},
    tags=TAGS,
    summary="Return items of a sale 退货",
    description="Full or partial, by line number of the original receipt, within the return "
    "window. Points earned are reversed per line; points used are given back pro rata; the "
    "money goes back by the original tenders. Idempotent like a sale.",
)
def checkout_return(
    request: HttpRequest, sale_id: int, payload: ReturnIn, idempotency_key: IdemKey
) -> Status[ReceiptOut]:
    who = caller(request)
    result = services.sale_return(
        scope=_scope(who),
        idempotency_key=idempotency_key,
        body={"sale_id": sale_id, **payload.model_dump(mode="json")},
        sale_id=sale_id,
        lines=[
            services.ReturnLineIn(line_no=ln.line_no, quantity=ln.quantity) for ln in payload.lines
        ],
        staff=who.actor,
        terminal_id=who.terminal_id,
        store_id=who.require_store().pk,
    )
    return Status(
        200 if result.replayed else 201, ReceiptOut(**result.response, replayed=result.replayed)
    )


@router.post(
    "/checkout/sales/batch",
    response={200: BatchOut, **ERRORS},
    tags=TAGS,
    summary="Upload sales made offline 离线补传",
    description="Sales a till made while offline, each with its own `idempotency_key` and its "
    "original time `at`. Processed in time order, each on its own: one bad sale is reported "
    "and does not stop the others; uploading the batch again changes nothing.",
)
def checkout_batch(request: HttpRequest, payload: list[OfflineSaleIn]) -> BatchOut:
    who = caller(request)
    if len(payload) > 500:
        raise ValidationFailed([FieldError("body", "too_many", _("每批最多 500 笔"))])
    results = []
    for item in sorted(payload, key=lambda s: s.at):
        try:
            result = _commit(who, item.idempotency_key, item, offline=True)
        except DomainError as exc:
            results.append(
                BatchItemOut(
                    idempotency_key=item.idempotency_key,
                    status=exc.status,
                    error=ErrorOut(**exc.as_dict()),
                )
            )
            continue
        results.append(
            BatchItemOut(
                idempotency_key=item.idempotency_key,
                status=200 if result.replayed else 201,
                receipt=ReceiptOut(**result.response, replayed=result.replayed),
            )
        )
    return BatchOut(results=results)
