"""The counter (C-1..C-6): quote, commit and return.

``sale_quote`` prices a basket and reads nothing it would lock. ``sale_commit`` and
``sale_return`` are the outermost business operations (``atomic(durable=True)``): they take
the idempotency key first, then lock the member's points account, then write the sale, its
lines, discounts and tenders, the ledger entries and the member's aggregates — all or nothing.
A retry with the same key returns the first answer; the same key with another body is a 409.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from carecard.catalog.models import Product
from carecard.chain.models import Store
from carecard.checkout import config, reads
from carecard.checkout.engine import Line, PricedBasket, price_basket
from carecard.checkout.models import (
    MemberStats,
    Sale,
    SaleDiscount,
    SaleKind,
    SaleLine,
    SaleTender,
    TenderKind,
)
from carecard.core import idempotency, sqlrows
from carecard.core.errors import Conflict, DomainError, FieldError, NotFound, ValidationFailed
from carecard.core.money import allocate
from carecard.coupons import services as coupon_services
from carecard.loyalty import services as points
from carecard.loyalty.earning import Earning, Tender, allocate_tenders, earn_points
from carecard.loyalty.ladder import ladder_advance, ladder_retreat
from carecard.loyalty.locks import lock_account
from carecard.loyalty.models import EntryKind, PointsEntry, ShortfallPolicy
from carecard.loyalty.rules import Member as PricingMember
from carecard.loyalty.rules import birthday_info
from carecard.loyalty.tiers import (
    Measures,
    Progress,
    points_12m,
    tier_evaluate,
    tier_progress,
)
from carecard.members.models import EntryRule, Member, MemberStatus
from carecard.members.services import member_activate, policy_get
from carecard.wallet import selectors as wallet_selectors
from carecard.wallet import services as wallet_services
from carecard.wallet.locks import lock_wallet

CENT = Decimal("0.01")
_PLAIN_TENDERS = frozenset({"cash", "bank_card", "wechat", "alipay"})
_NOT_SELF_PAID = frozenset({"insurance_pool", "insurance_personal", "points", "coupon"})
ZERO = Decimal("0.00")
MAX_LINES = 200
MAX_QUANTITY = 9999


# --------------------------------------------------------------------------- input


@dataclass(frozen=True)
class LineIn:
    sku: str
    quantity: int


@dataclass(frozen=True)
class TenderIn:
    kind: str
    amount: Decimal = ZERO
    points: int = 0  # for kind "points": how many points pay
    reference: str = ""


@dataclass
class Basket:
    """A validated request: the store, the member (or None), products by line."""

    store: Store
    member: Member | None
    lines: list[LineIn]
    products: list[Product]
    coupons: list[str] = field(default_factory=list)
    tier_code: str | None = None
    points_available: int | None = None  # asked for with ``available_at``

    @property
    def pricing_member(self) -> PricingMember | None:
        return _pricing_member(self.member, self.tier_code)


def _bad(field_name: str, code: str, message: str) -> ValidationFailed:
    return ValidationFailed([FieldError(field_name, code, message)])


def load_basket(
    *,
    store_id: int,
    member_id: int | None,
    lines: list[LineIn],
    coupons: list[str] | None = None,
    available_at: dt.datetime | None = None,
) -> Basket:
    """Check the request against the database: store, member, SKUs, quantities. Every bad
    field is reported at once (``lines[2].sku`` …). With ``available_at`` the member's
    spendable points at that moment come with the same read."""
    errors: list[FieldError] = []
    store = config.store(store_id)
    if store is None:
        raise NotFound("store", _("门店不存在"))
    member, available = None, None
    if member_id is not None:
        member, available = reads.member_for_sale(member_id, available_at=available_at)
        if member is None:
            raise NotFound("member", _("会员不存在"))
        if member.status not in (MemberStatus.ACTIVE, MemberStatus.PENDING):
            errors.append(FieldError("member_id", "inactive", _("该会员已注销或已合并")))
    if not lines:
        errors.append(FieldError("lines", "required", _("购物篮中没有商品")))
    if len(lines) > MAX_LINES:
        errors.append(FieldError("lines", "too_many", _("每单最多 %(n)d 行") % {"n": MAX_LINES}))
    found = config.products({line.sku for line in lines if isinstance(line.sku, str)})
    products: list[Product] = []
    for i, line in enumerate(lines):
        product = found.get(line.sku)
        if product is None:
            errors.append(
                FieldError(f"lines[{i}].sku", "unknown", _("商品不存在：%(s)s") % {"s": line.sku})
            )
        elif not product.is_active:
            errors.append(
                FieldError(f"lines[{i}].sku", "inactive", _("商品已停售：%(s)s") % {"s": line.sku})
            )
        if type(line.quantity) is not int or not 1 <= line.quantity <= MAX_QUANTITY:
            errors.append(
                FieldError(
                    f"lines[{i}].quantity",
                    "invalid",
                    _("数量应为 1–%(n)d 的整数") % {"n": MAX_QUANTITY},
                )
            )
        if product is not None:
            products.append(product)
    if errors:
        raise ValidationFailed(errors)
    return Basket(
        store=store,
        member=member,
        lines=lines,
        products=products,
        coupons=list(coupons or []),
        tier_code=_tier_code(member) if member is not None else None,
        points_available=available,
    )


def _engine_lines(basket: Basket) -> list[Line]:
    out = []
    for line, p in zip(basket.lines, basket.products, strict=True):
        # The products are the ones kept by ``config.products`` for its few seconds: their
        # engine items are kept on them for as long.
        item = p.__dict__.get("_engine_item")
        if item is None:
            item = p.__dict__["_engine_item"] = config.engine_item(p)
        out.append(Line(item, line.quantity))
    return out


def _related(member: Member, name: str) -> Any:
    """A reverse one-to-one loaded by ``load_basket``, or None when the member has none."""
    try:
        return getattr(member, name)
    except ObjectDoesNotExist:
        return None


def _tier_code(member: Member) -> str | None:
    state = _related(member, "tier_state")
    return state.tier.code if state is not None else None


def _pricing_member(member: Member | None, tier_code: str | None) -> PricingMember | None:
    if member is None:
        return None
    return PricingMember(
        is_member=member.status == MemberStatus.ACTIVE,
        tier=tier_code,
        birthday=birthday_info(
            member.birthday, is_lunar=member.birthday_is_lunar, lunar_birthday=member.lunar_birthday
        ),
    )


@dataclass(frozen=True)
class CouponRefusal:
    field: str  # coupons[i]
    code: str  # the coupon's code
    reason_code: str
    message: str


def _price(basket: Basket, at: dt.datetime) -> tuple[PricedBasket, list[CouponRefusal]]:
    """Price the basket with its usable coupons; every presented coupon that is not used is
    returned with its reason (unknown, used, expired, other store, minimum spend …)."""
    settings = config.settings_get()
    usable, refused = [], []
    if basket.coupons:
        usable, rejections = coupon_services.coupons_for_checkout(
            codes=basket.coupons,
            member_id=basket.member.pk if basket.member else None,
            store_id=basket.store.pk,
            at=at,
        )
        refused = [CouponRefusal(r.field, r.code, r.reason_code, r.message) for r in rejections]
    priced = price_basket(
        _engine_lines(basket),
        basket.pricing_member,
        config.pricing_rules(basket.store.region_id),
        usable,
        config.pricing_policy(settings),
        timezone.localdate(at),
    )
    index = {code.strip().upper(): i for i, code in enumerate(basket.coupons)}
    for r in priced.coupons_rejected:
        i = index.get(r.code.strip().upper(), 0)
        refused.append(CouponRefusal(f"coupons[{i}]", r.code, r.reason_code, r.message))
    return priced, refused


# --------------------------------------------------------------------------- quote


@dataclass(frozen=True)
class Quote:
    basket: PricedBasket
    earning: Earning | None
    points_available: int
    tier: Progress | None = None
    coupons_refused: list[CouponRefusal] = field(default_factory=list)


def sale_quote(
    *,
    store_id: int,
    member_id: int | None,
    lines: list[LineIn],
    at: dt.datetime | None = None,
    coupons: list[str] | None = None,
    tenders: list[TenderIn] | None = None,
) -> Quote:
    """Price a basket (C-1): lines with discounts and nets, totals, the points it would earn
    (paid as given, or all in cash), the member's available points. Writes nothing."""
    at = at or timezone.now()
    basket = load_basket(
        store_id=store_id, member_id=member_id, lines=lines, coupons=coupons, available_at=at
    )
    day = timezone.localdate(at)
    priced, refused = _price(basket, at)
    earning = None
    if basket.member is not None:
        engine_tenders = _earning_tenders(priced, tenders or [])
        earning = earn_points(
            priced, engine_tenders, config.earning_rule(), basket.pricing_member, day
        )
        account = _related(basket.member, "points_account")
        available = basket.points_available or 0
        progress = _progress(basket.member, account)
        return Quote(
            basket=priced,
            earning=earning,
            points_available=available,
            tier=progress,
            coupons_refused=refused,
        )
    return Quote(basket=priced, earning=None, points_available=0, coupons_refused=refused)


def _progress(member: Member, account: Any) -> Progress | None:
    tiers = config.tiers()
    if not tiers:
        return None
    state = _related(member, "tier_state")
    stats = _related(member, "stats") or MemberStats(member=member)
    m = measures(stats, account.lifetime_earned if account is not None else 0)
    if any(t.basis == "points" and t.window_months for t in tiers):
        m = replace(m, points_12m=points_12m(member.pk, timezone.now()))
    return tier_progress(state.tier if state else None, tiers, m)


def _earning_tenders(priced: PricedBasket, tenders: list[TenderIn]) -> list[Tender]:
    if not tenders:
        return [Tender("cash", priced.net)] if priced.net > 0 else []
    return [Tender(t.kind, t.amount) for t in tenders if t.amount > 0]


# --------------------------------------------------------------------------- commit


def _receipt_no(store: Store, at: dt.datetime) -> str:
    # Unique per store: the second, then 32 random bits (a clash at 300 sales a second in one
    # store is about one in 100 000 seconds, and sale_commit then draws again). Within the
    # column's 40 characters for store codes of up to 16.
    stamp = f"{timezone.localtime(at):%Y%m%d%H%M%S}"
    return f"{store.code[:16]}-{stamp}-{secrets.token_hex(4).upper()}"


def _check_tenders(
    tenders: list[TenderIn], net: Decimal, points_per_yuan: int, member: Member | None
) -> list[TenderIn]:
    """Tenders must cover the net exactly; points pay at the configured rate, whole cents."""
    errors: list[FieldError] = []
    out: list[TenderIn] = []
    for i, t in enumerate(tenders):
        if t.kind not in TenderKind.values:
            errors.append(FieldError(f"tenders[{i}].kind", "unknown", _("未知的支付方式")))
            continue
        if t.kind == TenderKind.POINTS:
            if member is None:
                errors.append(
                    FieldError(f"tenders[{i}].kind", "member_required", _("积分抵现需要会员"))
                )
                continue
            if not points_per_yuan:
                errors.append(FieldError(f"tenders[{i}].kind", "disabled", _("本店未开通积分抵现")))
                continue
            if type(t.points) is not int or t.points <= 0:
                errors.append(FieldError(f"tenders[{i}].points", "invalid", _("积分应为正整数")))
                continue
            amount = Decimal(t.points) / points_per_yuan
            if amount != amount.quantize(CENT):
                errors.append(
                    FieldError(
                        f"tenders[{i}].points",
                        "not_whole_cents",
                        _("%(n)d 分抵 1 元：积分数须能折成整分") % {"n": points_per_yuan},
                    )
                )
                continue
            out.append(TenderIn(kind=t.kind, amount=amount.quantize(CENT), points=t.points))
            continue
        if t.kind == TenderKind.STORED_VALUE and member is None:
            errors.append(
                FieldError(f"tenders[{i}].kind", "member_required", _("储值支付需要会员"))
            )
            continue
        if (
            not isinstance(t.amount, Decimal)
            or t.amount <= 0
            or t.amount != t.amount.quantize(CENT)
        ):
            errors.append(
                FieldError(f"tenders[{i}].amount", "invalid", _("金额应为大于 0 的两位小数"))
            )
            continue
        out.append(t)
    if not errors:
        paid = sum((t.amount for t in out), ZERO)
        if paid != net:
            errors.append(
                FieldError(
                    "tenders",
                    "total_mismatch",
                    _("支付合计 %(p)s 与应付 %(n)s 不符") % {"p": paid, "n": net},
                )
            )
    if errors:
        raise ValidationFailed(errors)
    return out


@dataclass(frozen=True)
class CommitResult:
    sale: Sale
    replayed: bool
    response: dict[str, Any]


_STATS_FIELDS = [f.attname for f in MemberStats._meta.concrete_fields if not f.primary_key]


_READ_NOW: Any = object()


def _stats_add(
    member_id: int,
    *,
    at: dt.datetime,
    store_id: int,
    amount: Decimal,
    visit: int,
    locked: MemberStats | None = _READ_NOW,
) -> MemberStats:
    """Add a sale (``visit`` 1) or a return (``amount`` negative, ``visit`` 0) to the member's
    aggregates; ``locked`` is the row as already read under lock (None: the member has none)."""
    stats = reads.stats_for_update(member_id) if locked is _READ_NOW else locked
    created = stats is None
    if stats is None:
        stats = MemberStats(member_id=member_id)
    month = timezone.localtime(at).strftime("%Y-%m")
    visits, spend = stats.months.get(month, [0, "0.00"])
    stats.months[month] = [visits + visit, str(Decimal(spend) + amount)]
    keep = sorted(stats.months)[-13:]
    stats.months = {k: stats.months[k] for k in keep}
    if visit:
        stats.visits += visit
        if stats.first_purchase_at is None or at < stats.first_purchase_at:
            stats.first_purchase_at = at
        if stats.last_purchase_at is None or at >= stats.last_purchase_at:
            stats.last_purchase_at = at
            stats.last_store_id = store_id
    stats.spend += amount
    now_month = timezone.localtime(max(at, stats.last_purchase_at or at))
    first = (now_month.year * 12 + now_month.month - 1) - 11
    window = {f"{m // 12:04d}-{m % 12 + 1:02d}" for m in range(first, first + 12)}
    stats.visits_12m = sum(v for k, (v, _s) in stats.months.items() if k in window)
    stats.spend_12m = sum((Decimal(s) for k, (_v, s) in stats.months.items() if k in window), ZERO)
    if created:
        sqlrows.insert([stats])
    else:
        sqlrows.update(stats, _STATS_FIELDS)
    return stats


def _year_spend(stats: MemberStats, year: int) -> Decimal:
    return sum(
        (Decimal(spend) for month, (_v, spend) in stats.months.items() if month[:4] == str(year)),
        ZERO,
    )


def _spend_benefits(
    member: Member, stats: MemberStats, *, amount: Decimal, at: dt.datetime, ref: str, actor: Any
) -> list[Any]:
    """Issue the yearly-spend benefits (T-3) this sale's ``amount`` crossed into."""
    benefits = config.spend_benefits()
    if not benefits or member.status != MemberStatus.ACTIVE:
        return []
    year = timezone.localtime(at).year
    after = _year_spend(stats, year)
    before = after - amount
    issued = []
    for benefit in benefits:
        if before < benefit.threshold <= after:
            issued.append(
                coupon_services.coupon_issue(
                    template=benefit.coupon_template,
                    member=member,
                    at=at,
                    source="campaign",
                    reference=f"spend_benefit:{benefit.pk}:{year}",
                    actor=actor,
                )
            )
    return issued


def measures(stats: MemberStats, lifetime_points: int) -> Measures:
    return Measures(
        points=lifetime_points,
        spend=stats.spend,
        spend_12m=stats.spend_12m,
        visits=stats.visits,
        visits_12m=stats.visits_12m,
    )


def sale_commit(
    *,
    scope: str,
    idempotency_key: str,
    body: dict[str, Any],
    store_id: int,
    member_id: int | None,
    lines: list[LineIn],
    tenders: list[TenderIn],
    at: dt.datetime | None = None,
    coupons: list[str] | None = None,
    staff: Any = None,
    terminal_id: int | None = None,
    receipt_no: str = "",
    offline: bool = False,
) -> CommitResult:
    """Record a sale atomically (C-2): priced exactly as the quote, paid by ``tenders``;
    points paid and earned, member aggregates. Idempotent per (``scope``, key)."""
    key = idempotency.check_key(idempotency_key)
    digest = idempotency.request_hash(body)
    at = at or timezone.now()
    try:
        # Priced outside the transaction: on SQLite the transaction holds the database's one
        # write lock, and other tills can price meanwhile.
        basket = load_basket(store_id=store_id, member_id=member_id, lines=lines, coupons=coupons)
        settings = config.settings_get()
        day = timezone.localdate(at)
        priced, refused = _price(basket, at)
        if refused:
            # The customer handed these over expecting a discount: refuse the sale, naming each.
            raise ValidationFailed(
                [
                    FieldError(
                        r.field,
                        r.reason_code,
                        r.message if r.code in r.message else f"{r.code}：{r.message}",
                    )
                    for r in refused
                ]
            )
        checked = _check_tenders(tenders, priced.net, settings.points_per_yuan, basket.member)
        # Pure, from what was read above: computed before the write transaction so SQLite's
        # write lock is held only for the writes.
        paid = [Tender(t.kind, t.amount) for t in checked]
        earning = None
        if basket.member is not None:
            earning = earn_points(priced, paid, config.earning_rule(), basket.pricing_member, day)
        # Which tender paid which line (insurance, points, stored value, vouchers; the rest is
        # plain money): a return gives each back from the lines it returns.
        shares = allocate_tenders(priced, paid, config.earning_rule())
    except DomainError:
        # A retry of a sale that went through finds its own coupons used: it gets the first
        # answer, not an error. (Only refused requests pay for this read.)
        if replayed := _replayed(scope, key, digest):
            return replayed
        raise
    program = config.program() if basket.member else None
    for attempt in range(_RECEIPT_DRAWS):
        try:
            sale, response = _commit_writes(
                basket,
                priced,
                checked,
                earning,
                shares,
                program,
                staff,
                scope,
                key,
                digest,
                at,
                day,
                terminal_id=terminal_id,
                receipt_no=receipt_no,
                offline=offline,
            )
        except DomainError:
            # A retry met its first request (at the member's lock or a coupon's): it rolled
            # back and answers with the first receipt.
            if replayed := _replayed(scope, key, digest):
                return replayed
            raise
        except IntegrityError as exc:
            key_clash = idempotency.key_taken(exc)
            if not key_clash and not _receipt_taken(exc):
                raise
            if replayed := _replayed(scope, key, digest):
                # A retry whose first request committed while this one ran, met at the key
                # or the receipt number: undone, and answered with the first receipt.
                return replayed
            if key_clash:
                raise
            if receipt_no:
                raise Conflict(
                    "receipt_taken",
                    _("本门店已有小票号 %(n)s 的销售") % {"n": receipt_no},
                    errors=[FieldError("receipt_no", "duplicate", _("小票号已被使用"))],
                ) from exc
            if attempt == _RECEIPT_DRAWS - 1:
                raise
            # A number drawn for this sale met another sale's in the same second: draw again.
            continue
        return CommitResult(sale, False, response)
    raise AssertionError("unreachable")


_RECEIPT_DRAWS = 3


def _replayed(scope: str, key: str, digest: str) -> CommitResult | None:
    """The first answer to this sale's key, when a transaction with it has committed."""
    stored = idempotency.replay(scope=scope, key=key, operation="sale", digest=digest)
    if stored is None:
        return None
    return CommitResult(Sale.objects.get(pk=stored.response["sale_id"]), True, stored.response)


def _create_return(store: Store, **fields: Any) -> Sale:
    """The return's receipt row, under a receipt number drawn for it; a number that met
    another sale's in the same second is drawn again, as for sales. Each draw is its own
    savepoint, so a clash undoes that insert only."""
    for attempt in range(_RECEIPT_DRAWS):
        try:
            with transaction.atomic():
                return Sale.objects.create(receipt_no=_receipt_no(store, fields["at"]), **fields)
        except IntegrityError as exc:
            if not _receipt_taken(exc) or attempt == _RECEIPT_DRAWS - 1:
                raise
    raise AssertionError("unreachable")


def _receipt_taken(exc: IntegrityError) -> bool:
    """The store's receipt-number constraint (PostgreSQL names it; SQLite names the columns)."""
    text = str(exc)
    return "sale_store_receipt" in text or "checkout_sale.receipt_no" in text


def _commit_writes(
    basket: Basket,
    priced: PricedBasket,
    checked: list[TenderIn],
    earning: Earning | None,
    shares: list[dict[str, Decimal]],
    program: Any,
    staff: Any,
    scope: str,
    key: str,
    digest: str,
    at: dt.datetime,
    day: dt.date,
    *,
    terminal_id: int | None,
    receipt_no: str,
    offline: bool,
) -> tuple[Sale, dict[str, Any]]:
    member_id = basket.member.pk if basket.member else None
    store_id = basket.store.pk
    # The writes that wait for no answer go out together (PostgreSQL: one round trip).
    with transaction.atomic(durable=True), sqlrows.deferred():
        account, locked_stats, ids = None, None, None
        if basket.member is not None:
            account, locked_stats, ids = reads.lock_account_and_stats(
                basket.member.pk, draw_for_lines=len(priced.lines)
            )
        # The sale is written once with its points: spending either succeeds in full or the
        # whole transaction is refused.
        spent = sum(t.points for t in checked if t.kind == TenderKind.POINTS)
        earned = earning.total if account is not None and earning and earning.total > 0 else 0
        sale = sqlrows.new(
            Sale,
            id=ids.sale if ids else None,
            points_earned=earned,
            points_spent=spent,
            points_balance=account.balance - spent + earned if account is not None else None,
            explanation={"text": earning.text} if earning else {},
            receipt_no=receipt_no or _receipt_no(basket.store, at),
            kind=SaleKind.SALE,
            member_id=member_id,
            store_id=store_id,
            terminal_id=terminal_id,
            staff_id=staff.pk if staff is not None else None,
            at=at,
            business_date=day,
            offline=offline,
            original_total=priced.original,
            discount_total=priced.discount_total,
            net_total=priced.net,
        )
        sqlrows.insert([sale])
        ref = f"sale:{sale.pk}"
        if priced.coupons_applied:
            coupon_services.coupons_redeem(
                codes=[c.code for c in priced.coupons_applied],
                member_id=member_id,
                store_id=store_id,
                at=at,
                reference=ref,
                amounts={c.code: c.amount for c in priced.coupons_applied},
                actor=staff,
            )
        for i, t in enumerate(checked):
            if t.kind == TenderKind.STORED_VALUE:
                # Lock order: points account (above), then the wallet.
                assert basket.member is not None
                try:
                    wallet_services.wallet_pay(
                        account=lock_wallet(basket.member.pk),
                        amount=t.amount,
                        at=at,
                        reference=ref,
                        store_id=store_id,
                        actor=staff,
                    )
                except wallet_services.InsufficientBalance as exc:
                    exc.errors = [FieldError(f"tenders[{i}].amount", "insufficient", exc.message)]
                    raise
            if t.kind == TenderKind.POINTS:
                assert account is not None
                try:
                    points.points_spend(
                        account=account,
                        points=t.points,
                        at=at,
                        kind=EntryKind.PAY,
                        store_id=store_id,
                        reference=ref,
                        reason=_("积分抵现 %(a)s 元") % {"a": t.amount},
                    )
                except points.InsufficientPoints as exc:
                    exc.errors = [FieldError(f"tenders[{i}].points", "insufficient", exc.message)]
                    raise
        line_rows = []
        for pl in priced.lines:
            line_rows.append(
                sqlrows.new(
                    SaleLine,
                    id=ids.lines[pl.index] if ids else None,
                    sale_id=sale.pk,
                    member_id=member_id,
                    line_no=pl.index + 1,
                    product_id=basket.products[pl.index].pk,
                    sku=pl.item.sku,
                    name=pl.item.name,
                    quantity=pl.quantity,
                    unit_price=pl.item.shelf_price,
                    original=pl.original,
                    discount=pl.discount_total,
                    net=pl.net,
                    points=earning.lines[pl.index].points if earning else 0,
                    explanation={
                        **({"text": earning.lines[pl.index].text} if earning else {}),
                        "tenders": {k: str(v) for k, v in shares[pl.index].items() if v > 0},
                    },
                )
            )
        sqlrows.insert(line_rows)
        discount_rows = [
            sqlrows.new(
                SaleDiscount,
                line_id=line_rows[pl.index].pk,
                member_id=member_id,
                kind=d.kind,
                rule_ref=str(d.rule_id or ""),
                coupon_code=d.coupon_code or "",
                amount=d.amount,
                reason=d.reason,
                funded_by=d.funded_by,
                points_funded=d.points_funded,
            )
            for pl in priced.lines
            for d in pl.discounts
            if d.amount > 0
        ]
        sqlrows.insert(discount_rows, ids=False)
        sqlrows.insert(
            [
                sqlrows.new(
                    SaleTender,
                    sale_id=sale.pk,
                    member_id=member_id,
                    kind=t.kind,
                    amount=t.amount,
                    points=t.points,
                    reference=t.reference,
                )
                for t in checked
            ],
            ids=False,
        )
        if earned:
            assert account is not None
            assert earning is not None
            points.points_earn(
                account=account,
                points=earning.total,
                at=at,
                store_id=store_id,
                reference=ref,
                reason=earning.rule_label,
                explanation={"text": earning.text, "lines": [ln.text for ln in earning.lines]},
                program=program,
                entry_id=ids.entry if ids else None,
            )
        issued = []
        if earned and config.has_ladder():
            issued += ladder_advance(
                member=basket.member, points=earned, at=at, reference=ref, actor=staff
            )
        if (
            basket.member is not None
            and basket.member.status == MemberStatus.ACTIVE
            and config.has_purchase_rules()
        ):
            # 消费送券 / 满即送 on what the member paid themselves.
            self_paid = priced.net - sum(
                (t.amount for t in checked if t.kind in _NOT_SELF_PAID), ZERO
            )
            issued = coupon_services.coupons_issue_for_purchase(
                member_id=basket.member.pk,
                store_id=store_id,
                amount=self_paid,
                at=at,
                reference=ref,
                actor=staff,
            )
        activated = False
        if basket.member is not None and basket.member.status == MemberStatus.PENDING:
            # Entry rule "card after one purchase ≥ N": the qualifying sale itself is priced
            # and earns as a walk-in's; the membership counts from the next visit.
            policy = policy_get()
            if policy.entry_rule == EntryRule.PURCHASE and priced.net >= policy.entry_min_purchase:
                member_activate(member=basket.member, reason=ref)
                activated = True
        tier_name = None
        if basket.member is not None and account is not None:
            stats = _stats_add(
                basket.member.pk,
                at=at,
                store_id=store_id,
                amount=priced.net,
                visit=1,
                locked=locked_stats,
            )
            issued += _spend_benefits(
                basket.member, stats, amount=priced.net, at=at, ref=ref, actor=staff
            )
            state = tier_evaluate(
                member_id=basket.member.pk,
                measures=measures(stats, account.lifetime_earned),
                at=at,
                tiers=config.tiers(),
            )
            tier_name = state.tier.name if state is not None else None
        assert account is None or account.balance == sale.points_balance  # noqa: PT018
        response = receipt(sale, lines=line_rows, priced=priced)
        response["tier"] = tier_name
        response["member_activated"] = activated
        response["coupons_used"] = [
            {"code": c.code, "amount": str(c.amount)} for c in priced.coupons_applied
        ]
        response["coupons_issued"] = [c.code for c in issued]
        # The key last: its insert is the commit's only write a retry can collide on, and it
        # goes out with the held writes (PostgreSQL: the same round trip).
        idempotency.record(
            scope=scope,
            key=key,
            operation="sale",
            digest=digest,
            response=response,
            status_code=201,
        )
    return sale, response


def receipt(
    sale: Sale, *, lines: list[SaleLine] | None = None, priced: PricedBasket | None = None
) -> dict[str, Any]:
    """The receipt as JSON (C-4): per line original, discount and net; points and balance."""
    lines = lines if lines is not None else list(sale.lines.order_by("line_no"))
    reasons: dict[int, list[dict[str, str]]] = {}
    if priced is not None:
        for pl in priced.lines:
            reasons[pl.index + 1] = [
                {
                    "kind": d.kind,
                    "reason": d.reason,
                    "amount": str(d.amount),
                    "funded_by": d.funded_by,
                }
                for d in pl.discounts
                if d.amount > 0
            ]
    else:
        for d in SaleDiscount.objects.filter(line__sale=sale).select_related("line"):
            reasons.setdefault(d.line.line_no, []).append(
                {
                    "kind": d.kind,
                    "reason": d.reason,
                    "amount": str(d.amount),
                    "funded_by": d.funded_by,
                }
            )
    return {
        "sale_id": sale.pk,
        "receipt_no": sale.receipt_no,
        "kind": sale.kind,
        "member_id": sale.member_id,
        "store_id": sale.store_id,
        "at": sale.at.isoformat(),
        "lines": [
            {
                "line_no": ln.line_no,
                "sku": ln.sku,
                "name": ln.name,
                "quantity": ln.quantity,
                "unit_price": str(ln.unit_price),
                "original": str(ln.original),
                "discount": str(ln.discount),
                "net": str(ln.net),
                "points": ln.points,
                "discounts": reasons.get(ln.line_no, []),
            }
            for ln in lines
        ],
        "original_total": str(sale.original_total),
        "discount_total": str(sale.discount_total),
        "net_total": str(sale.net_total),
        "points_earned": sale.points_earned,
        "points_spent": sale.points_spent,
        "points_balance": sale.points_balance,
        "recovered_amount": str(sale.recovered_amount),
        "points_text": (sale.explanation or {}).get("text", ""),
    }


# --------------------------------------------------------------------------- return


@dataclass(frozen=True)
class ReturnLineIn:
    line_no: int
    quantity: int


def _share(total: int | Decimal, part: int, whole: int) -> Any:
    """``total × part / whole`` rounded half up (ints stay ints); the last part gets the rest."""
    if part == whole:
        return total
    if isinstance(total, int):
        return int((Decimal(total) * part / whole).to_integral_value(rounding=ROUND_HALF_UP))
    return (total * part / whole).quantize(CENT, rounding=ROUND_HALF_UP)


def sale_return(
    *,
    scope: str,
    idempotency_key: str,
    body: dict[str, Any],
    sale_id: int,
    lines: list[ReturnLineIn],
    at: dt.datetime | None = None,
    staff: Any = None,
    terminal_id: int | None = None,
    store_id: int | None = None,
) -> CommitResult:
    """Return all or part of a sale (C-6): refund each line's net pro rata, reverse the points
    it earned, give back points it spent (pro rata by refunded amount). Points already spent
    follow the program's shortfall policy: debt, or their value kept back from the refund."""
    key = idempotency.check_key(idempotency_key)
    digest = idempotency.request_hash(body)
    if stored := idempotency.replay(scope=scope, key=key, operation="return", digest=digest):
        return CommitResult(Sale.objects.get(pk=stored.response["sale_id"]), True, stored.response)
    at = at or timezone.now()
    original = Sale.objects.filter(pk=sale_id, kind=SaleKind.SALE).select_related("store").first()
    if original is None:
        raise NotFound("sale", _("原销售单不存在"))
    settings = config.settings_get()
    if timezone.localdate(at) - original.business_date > dt.timedelta(days=settings.return_days):
        raise DomainError(
            code="return_window_passed",
            message=_("已超过 %(n)d 天退货期限") % {"n": settings.return_days},
            errors=[FieldError("sale_id", "return_window_passed", _("已超过退货期限"))],
            status=422,
        )
    if not lines:
        raise _bad("lines", "required", _("请选择要退的商品"))
    with transaction.atomic(durable=True):
        record = idempotency.claim(scope=scope, key=key, operation="return", digest=digest)
        if record is None:
            stored = idempotency.replay(scope=scope, key=key, operation="return", digest=digest)
            assert stored is not None
            return CommitResult(
                Sale.objects.get(pk=stored.response["sale_id"]), True, stored.response
            )
        account = lock_account(original.member_id) if original.member_id else None
        # The sale's lines are the lock against two returns of the same items at once.
        sold = {
            ln.line_no: ln
            for ln in SaleLine.objects.filter(sale=original).order_by("pk").select_for_update()
        }
        errors: list[FieldError] = []
        wanted: dict[int, int] = {}
        for i, r in enumerate(lines):
            ln = sold.get(r.line_no)
            if ln is None:
                errors.append(FieldError(f"lines[{i}].line_no", "unknown", _("原单没有该行")))
                continue
            if type(r.quantity) is not int or r.quantity < 1:
                errors.append(FieldError(f"lines[{i}].quantity", "invalid", _("数量应为正整数")))
                continue
            wanted[r.line_no] = wanted.get(r.line_no, 0) + r.quantity
            if wanted[r.line_no] > ln.quantity - ln.returned_quantity:
                errors.append(
                    FieldError(
                        f"lines[{i}].quantity",
                        "exceeds_sold",
                        _("可退数量为 %(n)d") % {"n": ln.quantity - ln.returned_quantity},
                    )
                )
        if errors:
            raise ValidationFailed(errors)
        refunds = {}
        parts: dict[int, dict[str, Decimal]] = {}  # per returned line: tender kind → refund
        points_back = 0
        prior_rows: dict[int, list[SaleLine]] = {}
        for row in SaleLine.objects.filter(returns_line__in=[sold[n] for n in wanted]):
            prior_rows.setdefault(row.returns_line_id, []).append(row)
        for line_no, qty in wanted.items():
            ln = sold[line_no]
            left = ln.quantity - ln.returned_quantity
            prior = prior_rows.get(ln.pk, [])
            net_left = ln.net - sum((p.net for p in prior), ZERO)
            points_left = ln.points - sum(p.points for p in prior)
            refunds[line_no] = (qty, _share(net_left, qty, left), _share(points_left, qty, left))
            points_back += refunds[line_no][2]
            parts[line_no] = {}
            for kind, share in (ln.explanation or {}).get("tenders", {}).items():
                share_left = Decimal(share) - sum(
                    (
                        Decimal((p.explanation or {}).get("tenders", {}).get(kind, "0"))
                        for p in prior
                    ),
                    ZERO,
                )
                parts[line_no][kind] = _share(share_left, qty, left)
        refund_total = sum((r[1] for r in refunds.values()), ZERO)
        ret = _create_return(
            original.store,
            kind=SaleKind.RETURN,
            member_id=original.member_id,
            store_id=store_id or original.store_id,
            terminal_id=terminal_id,
            staff=staff,
            original_sale=original,
            at=at,
            business_date=timezone.localdate(at),
            original_total=sum(
                (
                    _share(sold[n].original, q, sold[n].quantity)
                    for n, (q, _r, _p) in refunds.items()
                ),
                ZERO,
            ),
            discount_total=ZERO,
            net_total=refund_total,
        )
        ret.discount_total = ret.original_total - refund_total
        ref = f"return:{ret.pk}"
        rows = [
            SaleLine(
                sale=ret,
                member_id=original.member_id,
                line_no=i + 1,
                product_id=sold[n].product_id,
                sku=sold[n].sku,
                name=sold[n].name,
                quantity=q,
                unit_price=sold[n].unit_price,
                original=_share(sold[n].original, q, sold[n].quantity),
                discount=_share(sold[n].original, q, sold[n].quantity) - amount,
                net=amount,
                points=pts,
                returns_line=sold[n],
                explanation={"tenders": {k: str(v) for k, v in parts[n].items() if v > 0}},
            )
            for i, (n, (q, amount, pts)) in enumerate(sorted(refunds.items()))
        ]
        SaleLine.objects.bulk_create(rows)
        for n, (q, _a, _p) in refunds.items():
            SaleLine.objects.filter(pk=sold[n].pk).update(
                returned_quantity=F("returned_quantity") + q
            )
        # A coupon cannot be split: only a return of the whole sale gives it back.
        coupons_back = []
        if all(ln.returned_quantity + wanted.get(n, 0) == ln.quantity for n, ln in sold.items()):
            coupons_back = [
                r.coupon.code
                for r in coupon_services.coupons_restore_for(
                    redeemed_reference=f"sale:{original.pk}", at=at, reference=ref, actor=staff
                )
                if r.restored
            ]
        reversed_points = restored = 0
        recovered = ZERO
        if account is not None:
            program = config.program()
            earn_entry = PointsEntry.objects.filter(
                member_id=original.member_id, reference=f"sale:{original.pk}", kind=EntryKind.EARN
            ).first()
            if earn_entry is not None and points_back > 0:
                result = points.points_reverse(
                    account=account,
                    earned=earn_entry,
                    points=points_back,
                    at=at,
                    reference=ref,
                    reason=_("退货扣回积分"),
                    program=program,
                )
                reversed_points = result.reversed
                if reversed_points and config.has_ladder():
                    ladder_retreat(member_id=original.member_id, points=reversed_points)
                if result.shortfall and program.shortfall_policy == ShortfallPolicy.RECOVER_VALUE:
                    recovered = min(
                        refund_total,
                        (program.point_value * result.shortfall).quantize(
                            CENT, rounding=ROUND_HALF_UP
                        ),
                    )
            points_paid = sum((p.get(TenderKind.POINTS, ZERO) for p in parts.values()), ZERO)
            points_tender = original.tenders.filter(kind=TenderKind.POINTS).first()
            if points_paid > 0 and points_tender is not None:
                pay_entry = PointsEntry.objects.get(
                    member_id=original.member_id,
                    reference=f"sale:{original.pk}",
                    kind=EntryKind.PAY,
                )
                # The points that paid the returned lines, valued as they were paid.
                give = int(
                    (points_paid * points_tender.points / points_tender.amount).to_integral_value(
                        rounding=ROUND_HALF_UP
                    )
                )
                restored_before = sum(
                    e.points for e in pay_entry.corrections.filter(kind=EntryKind.RESTORE)
                )
                give = min(give, -pay_entry.points - restored_before)
                if give > 0:
                    points.points_restore(
                        account=account,
                        spent=pay_entry,
                        points=give,
                        at=at,
                        reference=ref,
                        reason=_("退货返还积分"),
                    )
                    restored = give
            _stats_add(
                original.member_id,
                at=original.at,
                store_id=original.store_id,
                amount=-refund_total,
                visit=0,
            )
        wallet_back = sum((p.get(TenderKind.STORED_VALUE, ZERO) for p in parts.values()), ZERO)
        if wallet_back > 0 and original.member_id is not None:
            paid = wallet_selectors.wallet_payment(original.member_id, f"sale:{original.pk}")
            if paid is not None:
                wallet_services.wallet_pay_reverse(
                    account=lock_wallet(original.member_id),
                    paid_entry=paid,
                    amount=wallet_back,
                    at=at,
                    reference=ref,
                    store_id=store_id or original.store_id,
                    actor=staff,
                )
        # Refund by the tenders that paid the returned lines: insurance back to insurance,
        # vouchers as vouchers, points as points (above); the plain money (cash, card, WeChat,
        # Alipay) pro rata over those tenders, less the value of points that could not be taken
        # back (recover_value policy).
        special: dict[str, Decimal] = {}
        for line_parts in parts.values():
            for kind, amount in line_parts.items():
                if kind != TenderKind.POINTS:
                    special[kind] = special.get(kind, ZERO) + amount
        points_value = sum((p.get(TenderKind.POINTS, ZERO) for p in parts.values()), ZERO)
        plain = [t for t in original.tenders.all() if t.kind in _PLAIN_TENDERS]
        plain_total = refund_total - points_value - sum(special.values(), ZERO)
        money_refund = max(ZERO, plain_total - recovered)
        base = sum((t.amount for t in plain), ZERO)
        money_shares = allocate(money_refund, [t.amount for t in plain]) if base > 0 else []
        refund_tenders = [(kind, amount) for kind, amount in sorted(special.items()) if amount > 0]
        refund_tenders += [(t.kind, a) for t, a in zip(plain, money_shares, strict=True) if a > 0]
        SaleTender.objects.bulk_create(
            SaleTender(sale=ret, member_id=original.member_id, kind=kind, amount=amount)
            for kind, amount in refund_tenders
        )
        ret.points_earned = -reversed_points
        ret.points_spent = -restored
        ret.recovered_amount = recovered
        ret.points_balance = account.balance if account is not None else None
        ret.save(
            update_fields=[
                "discount_total",
                "points_earned",
                "points_spent",
                "recovered_amount",
                "points_balance",
            ]
        )
        response = receipt(ret, lines=rows)
        response["refund"] = {
            "money": str(money_refund + sum(special.values(), ZERO)),
            "points_restored": restored,
            "points_reversed": reversed_points,
            "recovered": str(recovered),
            "tenders": [{"kind": k, "amount": str(a)} for k, a in refund_tenders],
            "coupons_restored": coupons_back,
        }
        idempotency.store(record, response=response, status_code=201)
    return CommitResult(ret, False, response)
