"""The counter page's form (收银台): the basket, the member, the tenders, as posted.

The page keeps no state on the server: every request posts the whole basket (one ``sku`` and
``qty`` per line), and the view answers with the re-priced form. Buttons name what to do
(``drop``, ``pick_member``, ``clear_member``, ``commit``); a scanned code arrives in ``add``.
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

CENT = Decimal("0.01")
ZERO = Decimal("0.00")

# Money tenders a counter without a POS takes, in the order the form shows them. Stored value
# and paper vouchers are left out: they need their own modules at the till.
MONEY_TENDERS: tuple[str, ...] = (
    TenderKind.CASH,
    TenderKind.BANK_CARD,
    TenderKind.WECHAT,
    TenderKind.ALIPAY,
    TenderKind.INSURANCE_POOL,
    TenderKind.INSURANCE_PERSONAL,
)


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
    errors: FormErrors = field(default_factory=FormErrors)
    line_errors: dict[int, list[str]] = field(default_factory=dict)

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
        }

    def add_line_error(self, index: int, message: str) -> None:
        self.line_errors.setdefault(index, []).append(message)

    @property
    def has_errors(self) -> bool:
        """Errors that stop a commit: bad lines or tender amounts. (A code that scanned to
        nothing, or the last attempt's message, does not.)"""
        if self.line_errors:
            return True
        return any(k.startswith("t_") or k == "cash_given" for k in self.errors.fields)


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
    for kind in MONEY_TENDERS:
        form.tenders[kind] = post.get(f"t_{kind}", "").strip()[:14]
    form.points_raw = post.get("t_points", "").strip()[:9]
    form.cash_given = post.get("cash_given", "").strip()[:14]
    form.add_code = post.get("add", "").strip()[:32]
    form.add_qty_raw = post.get("add_qty", "1").strip()[:6] or "1"
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
    for kind in MONEY_TENDERS:
        value = parse_money(form.tenders.get(kind, ""))
        if value is None:
            form.errors.fields[f"t_{kind}"] = [_("金额应为不小于 0 的两位小数")]
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
        for kind in MONEY_TENDERS
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


def map_line_errors(form: CounterForm, errors: list[Any]) -> None:
    """Put the service's ``lines[i].…`` errors next to their line, the rest above the form."""
    for err in errors:
        name = str(err.field)
        if name.startswith("lines[") and "]" in name:
            index = name[6 : name.index("]")]
            if index.isdigit():
                form.add_line_error(int(index), str(err.message))
                continue
        if name.startswith("tenders[") and ".points" in name:
            form.errors.fields["t_points"] = [str(err.message)]
            continue
        if name in ("points",):
            form.errors.fields["t_points"] = [str(err.message)]
            continue
        form.errors.general.append(str(err.message))
