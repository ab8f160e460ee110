"""The counter page's form (收银台): the basket, the member, the coupons, the tenders, as posted.

The page keeps no state on the server: every request posts the whole basket (one ``sku`` and
``qty`` per line, one ``coupon`` per presented code), and the view answers with the re-priced
form. Buttons name what to do (``drop``, ``pick_member``, ``clear_member``, ``pick_coupon``,
``drop_coupon``, ``sv_fill``, ``commit``); a scanned code arrives in ``add``, a typed coupon
code in ``coupon_add``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.http import QueryDict
from django.utils.translation import gettext as _

from carecard.checkout.models import TenderKind
from carecard.checkout.services import MAX_LINES, MAX_QUANTITY, LineIn, TenderIn
from carecard.console.forms import FormErrors
from carecard.coupons.rules import normalize_code
from carecard.coupons.services import MAX_CODES

CENT = Decimal("0.01")
ZERO = Decimal("0.00")

# Money tenders a counter without a POS takes, in the order the form shows them. Paper
# vouchers are left out (printed coupons are presented as coupon codes instead).
MONEY_TENDERS: tuple[str, ...] = (
    TenderKind.CASH,
    TenderKind.BANK_CARD,
    TenderKind.WECHAT,
    TenderKind.ALIPAY,
    TenderKind.INSURANCE_POOL,
    TenderKind.INSURANCE_PERSONAL,
)
SV = TenderKind.STORED_VALUE
# Every amount tender the form posts: the money tenders, then stored value (shown with the
# member's balance, only once a member is identified).
AMOUNT_TENDERS: tuple[str, ...] = (*MONEY_TENDERS, SV)


def new_key() -> str:
    """A fresh idempotency key for one sale or return, rendered into the form."""
    return uuid.uuid4().hex


@dataclass
class FormLine:
    sku: str
    qty_raw: str
    qty: int | None


@dataclass
class CounterForm:
    key: str
    member_id: int | None = None
    member_q: str = ""
    lines: list[FormLine] = field(default_factory=list)
    tenders: dict[str, str] = field(default_factory=dict)  # raw amounts by kind
    points_raw: str = ""
    cash_given: str = ""
    add_code: str = ""
    add_qty_raw: str = "1"
    coupons: list[str] = field(default_factory=list)  # presented codes, normalised, in order
    coupon_code: str = ""  # a code typed into the coupon box and not taken
    sv_fill: bool = False  # "pay the rest with stored value" was pressed
    errors: FormErrors = field(default_factory=FormErrors)
    line_errors: dict[int, list[str]] = field(default_factory=dict)
    # Fields whose error is about the member's current state (stored value beyond the
    # balance), not the input: shown, but the commit still goes to the service, which checks
    # again under its lock — and replays a sale already recorded with this key.
    state_fields: set[str] = field(default_factory=set)

    # --- parsed values (after ``validate``) ---
    amounts: dict[str, Decimal] = field(default_factory=dict)
    points: int = 0

    @property
    def line_ins(self) -> list[LineIn]:
        return [LineIn(sku=ln.sku, quantity=ln.qty) for ln in self.lines if ln.qty is not None]

    def body(self, store_id: int) -> dict[str, Any]:
        """What the sale's idempotency key is bound to: the request as the clerk entered it.

        Raw values, not derived ones: a double-click re-sent after the first click raised the
        member's tier re-prices differently, and must still replay rather than conflict."""
        return {
            "store": store_id,
            "member": self.member_id,
            "lines": [[ln.sku, ln.qty_raw] for ln in self.lines],
            "tenders": {k: v for k, v in sorted(self.tenders.items()) if v},
            "points": self.points_raw,
            "coupons": list(self.coupons),
        }

    def add_line_error(self, index: int, message: str) -> None:
        self.line_errors.setdefault(index, []).append(message)

    @property
    def has_errors(self) -> bool:
        """Errors that stop a commit: bad lines or tender amounts. (A code that scanned to
        nothing, or the last attempt's message, does not.)"""
        if self.line_errors:
            return True
        return any(
            (k.startswith("t_") or k == "cash_given") and k not in self.state_fields
            for k in self.errors.fields
        )

    def add_coupon(self, raw: str) -> None:
        """Present one more coupon code (typed or picked from the member's coupons)."""
        code = normalize_code(raw)
        if not code:
            return
        if code in self.coupons:
            self.errors.fields["coupon_add"] = [_("券 %(c)s 已在本单中") % {"c": code}]
        elif len(self.coupons) >= MAX_CODES:
            self.errors.fields["coupon_add"] = [_("每单最多使用 %(n)d 张券") % {"n": MAX_CODES}]
            self.coupon_code = raw
        else:
            self.coupons.append(code)


def _int(raw: str) -> int | None:
    raw = raw.strip()
    if not raw or not raw.lstrip("+").isdigit() or len(raw) > 6:
        return None
    return int(raw)


def parse_money(raw: str) -> Decimal | None:
    """A non-negative amount with at most two decimals, or None if it is not one."""
    text = raw.strip().replace(",", "").replace("¥", "").replace("￥", "")
    if not text:
        return ZERO
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or value < 0 or value != value.quantize(CENT) or value > 10**8:
        return None
    return value.quantize(CENT)


def parse(post: QueryDict) -> CounterForm:
    """The form as posted, with the clicked button's action applied (remove, pick, clear)."""
    form = CounterForm(key=post.get("key", "").strip()[:100] or new_key())
    member_raw = post.get("member_id", "").strip()
    form.member_id = int(member_raw) if member_raw.isdigit() and len(member_raw) < 12 else None
    if post.get("pick_member", "").isdigit():
        form.member_id = int(post["pick_member"])
    if post.get("clear_member"):
        form.member_id = None
    form.member_q = post.get("member_q", "").strip()[:64]
    skus = post.getlist("sku")
    qtys = post.getlist("qty")
    drop = post.get("drop", "")
    for i, sku in enumerate(skus[:MAX_LINES]):
        if str(i) == drop:
            continue
        raw = (qtys[i] if i < len(qtys) else "1").strip()[:6]
        qty = _int(raw)
        form.lines.append(FormLine(sku=sku.strip()[:32], qty_raw=raw, qty=qty))
    for i, line in enumerate(form.lines):
        if line.qty is None or not 1 <= line.qty <= MAX_QUANTITY:
            line.qty = None
            form.add_line_error(i, _("数量应为 1–%(n)d 的整数") % {"n": MAX_QUANTITY})
    for kind in AMOUNT_TENDERS:
        form.tenders[kind] = post.get(f"t_{kind}", "").strip()[:14]
    form.points_raw = post.get("t_points", "").strip()[:9]
    form.cash_given = post.get("cash_given", "").strip()[:14]
    form.add_code = post.get("add", "").strip()[:32]
    form.add_qty_raw = post.get("add_qty", "1").strip()[:6] or "1"
    drop_coupon = normalize_code(post.get("drop_coupon", "")[:40])
    for raw in post.getlist("coupon")[:MAX_CODES]:
        code = normalize_code(raw[:40])
        if code and code != drop_coupon and code not in form.coupons:
            form.coupons.append(code)
    form.add_coupon(post.get("pick_coupon", "")[:40])
    form.add_coupon(post.get("coupon_add", "").strip()[:40])
    form.sv_fill = bool(post.get("sv_fill"))
    return form


def add_product(form: CounterForm, sku: str) -> None:
    """Put ``add_qty`` of ``sku`` in the basket: onto its line if it has one."""
    qty = _int(form.add_qty_raw)
    if qty is None or not 1 <= qty <= MAX_QUANTITY:
        form.errors.fields["add_qty"] = [_("数量应为 1–%(n)d 的整数") % {"n": MAX_QUANTITY}]
        return
    line = next((ln for ln in form.lines if ln.sku == sku and ln.qty is not None), None)
    if line is not None:
        line.qty = min(MAX_QUANTITY, line.qty + qty)  # type: ignore[operator]
        line.qty_raw = str(line.qty)
    elif len(form.lines) >= MAX_LINES:
        form.errors.fields["add"] = [_("每单最多 %(n)d 行") % {"n": MAX_LINES}]
        return
    else:
        form.lines.append(FormLine(sku=sku, qty_raw=str(qty), qty=qty))
    form.add_code = ""
    form.add_qty_raw = "1"


def validate_tenders(form: CounterForm, *, has_member: bool) -> None:
    """Parse the amounts typed for each tender; errors go next to the field."""
    for kind in AMOUNT_TENDERS:
        value = parse_money(form.tenders.get(kind, ""))
        if value is None:
            form.errors.fields[f"t_{kind}"] = [_("金额应为不小于 0 的两位小数")]
        elif value > 0 and kind == SV and not has_member:
            form.errors.fields[f"t_{kind}"] = [_("储值支付需要会员")]
        elif value > 0:
            form.amounts[kind] = value
    if form.points_raw:
        points = _int(form.points_raw)
        if points is None:
            form.errors.fields["t_points"] = [_("积分应为正整数")]
        elif points and not has_member:
            form.errors.fields["t_points"] = [_("积分抵现需要会员")]
        else:
            form.points = points
    if form.cash_given and parse_money(form.cash_given) is None:
        form.errors.fields["cash_given"] = [_("金额应为不小于 0 的两位小数")]


@dataclass(frozen=True)
class Payment:
    """How the net will be paid: the typed tenders, plus the rest in cash when the cash field
    is left blank."""

    tenders: list[TenderIn]
    points_value: Decimal
    entered: Decimal  # what the tenders cover
    due: Decimal  # net − entered (≠ 0: cannot commit)
    cash: Decimal
    cash_auto: bool
    change: Decimal | None


def payment(form: CounterForm, *, net: Decimal, points_per_yuan: int) -> Payment:
    points_value = ZERO
    if form.points and points_per_yuan:
        points_value = (Decimal(form.points) / points_per_yuan).quantize(CENT)
    others = sum((v for k, v in form.amounts.items() if k != TenderKind.CASH), ZERO)
    cash_auto = not form.tenders.get(TenderKind.CASH)
    cash = form.amounts.get(TenderKind.CASH, ZERO)
    if cash_auto:
        cash = max(ZERO, net - others - points_value)
    tenders = [TenderIn(kind=TenderKind.CASH, amount=cash)] if cash > 0 else []
    tenders += [
        TenderIn(kind=kind, amount=form.amounts[kind])
        for kind in AMOUNT_TENDERS
        if kind != TenderKind.CASH and kind in form.amounts
    ]
    if form.points:
        tenders.append(TenderIn(kind=TenderKind.POINTS, amount=points_value, points=form.points))
    entered = cash + others + points_value
    change = None
    given = parse_money(form.cash_given) if form.cash_given else None
    if given is not None and given > 0:
        change = given - cash
    return Payment(
        tenders=tenders,
        points_value=points_value,
        entered=entered,
        due=net - entered,
        cash=cash,
        cash_auto=cash_auto,
        change=change,
    )


def _index(name: str, prefix: str) -> int | None:
    """``3`` for ``prefix[3]…``, else None."""
    if not name.startswith(f"{prefix}[") or "]" not in name:
        return None
    index = name[len(prefix) + 1 : name.index("]")]
    return int(index) if index.isdigit() else None


def map_line_errors(
    form: CounterForm, errors: list[Any], tenders: list[TenderIn] | None = None
) -> None:
    """Put the service's ``lines[i].…`` errors next to their line, ``tenders[i].…`` next to
    the tender's field, ``coupons[i]`` in the coupon box, the rest above the form."""
    for err in errors:
        name = str(err.field)
        message = str(err.message)
        index = _index(name, "lines")
        if index is not None:
            form.add_line_error(index, message)
            continue
        index = _index(name, "tenders")
        if index is not None and tenders is not None and index < len(tenders):
            form.errors.fields[f"t_{tenders[index].kind}"] = [message]
            continue
        if (index is not None and ".points" in name) or name == "points":
            form.errors.fields["t_points"] = [message]
            continue
        if _index(name, "coupons") is not None or name == "coupons":
            form.errors.fields.setdefault("coupons", []).append(message)
            continue
        form.errors.general.append(message)
