"""Money helpers: CNY amounts are ``Decimal`` with two places and explicit rounding.

Never ``float``: a float cannot hold 0.1 exactly, so ``to_money`` refuses one instead of
silently carrying the binary error into a receipt.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")

type MoneyInput = Decimal | int | str


def to_money(value: MoneyInput) -> Decimal:
    """Quantize ``value`` to cents, rounding half up (0.005 → 0.01).

    Accepts ``Decimal``, ``int`` or a numeric ``str``; raises ``TypeError`` for ``float`` and
    ``bool`` and ``ValueError`` for NaN, infinity or text that is not a number.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(f"money must be Decimal, int or str, not {type(value).__name__}")
    try:
        amount = Decimal(value)
    except ArithmeticError as exc:  # decimal.InvalidOperation on "abc"
        raise ValueError(f"not a money amount: {value!r}") from exc
    if not amount.is_finite():
        raise ValueError(f"not a money amount: {value!r}")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def is_money(value: object) -> bool:
    """True for a finite ``Decimal`` that is a whole number of cents (``1.5``, ``2.00``)."""
    return (
        isinstance(value, Decimal)
        and value.is_finite()
        and value == value.quantize(CENT, rounding=ROUND_HALF_UP)
    )


def allocate_units(total: int, weights: Sequence[Decimal | int]) -> list[int]:
    """Split the integer ``total`` into parts proportional to ``weights`` (largest remainder).

    The parts sum to ``total`` exactly and each differs from its exact proportional share by
    less than one unit. Leftover units go to the largest fractional remainders, ties to the
    earlier weight, so the result is deterministic. Weights must be ≥ 0; when they are all zero
    the total is split equally (earlier parts take the odd units). A negative ``total`` is split
    like its absolute value and negated.
    """
    if not weights:
        if total:
            raise ValueError("cannot allocate a non-zero total over no weights")
        return []
    if any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative")
    if total < 0:
        return [-part for part in allocate_units(-total, weights)]
    # Exact integer shares: the weights scaled by one power of ten to integers, then each
    # share is total × w ÷ Σw as a quotient and a remainder (Decimal division would round at
    # 28 digits; Fractions gave the same answer at several times the cost — every quote
    # allocates its points this way).
    exact = _integers(weights)
    weight_sum = sum(exact)
    if weight_sum == 0:
        exact = [1] * len(weights)
        weight_sum = len(weights)
    parts, remainders = [], []
    for w in exact:
        part, remainder = divmod(total * w, weight_sum)
        parts.append(part)
        remainders.append(remainder)
    leftover = total - sum(parts)
    by_remainder = sorted(range(len(parts)), key=lambda i: (-remainders[i], i))
    for i in by_remainder[:leftover]:
        parts[i] += 1
    return parts


def _integers(weights: Sequence[Decimal | int]) -> list[int]:
    """The weights times the one power of ten that makes them all integers (same ratios)."""
    if all(type(w) is int for w in weights):
        return list(weights)  # type: ignore[arg-type]
    scale = 0
    for w in weights:
        if isinstance(w, Decimal):
            exponent = w.as_tuple().exponent
            if not isinstance(exponent, int):
                raise ValueError(f"weights must be finite, got {w!r}")
            scale = max(scale, -exponent)
    return [int(w.scaleb(scale)) if isinstance(w, Decimal) else w * 10**scale for w in weights]


def allocate(total: Decimal, weights: Sequence[Decimal | int]) -> list[Decimal]:
    """Split the money ``total`` across ``weights`` in whole cents, summing exactly to ``total``.

    Largest-remainder method (see ``allocate_units``): every part is within one cent of its
    exact proportional share, and when ``0 ≤ total ≤ sum(weights)`` with weights in cents no
    part exceeds its own weight, so a discount allocated by line net never drives a line below
    zero. ``total`` must already be whole cents.
    """
    if not is_money(total):
        raise ValueError(f"total must be a Decimal in whole cents, got {total!r}")
    cents = int(total * 100)
    return [Decimal(part).scaleb(-2) for part in allocate_units(cents, weights)]


def rate_label(rate: Decimal) -> str:
    """Chinese label of a discount rate: ``0.95`` → ``"9.5折"``, ``0.8`` → ``"8折"``."""
    if not isinstance(rate, Decimal) or not Decimal(0) <= rate <= Decimal(1):
        raise ValueError(f"rate must be a Decimal between 0 and 1, got {rate!r}")
    if rate == 1:
        return "原价"
    if rate == 0:
        return "免费"
    tenths = (rate * 10).normalize()
    return f"{tenths:f}折"


def format_cny(amount: Decimal) -> str:
    """``Decimal("12.5")`` → ``"¥12.50"`` for Chinese reasons and receipts."""
    return f"¥{to_money(amount)}"
