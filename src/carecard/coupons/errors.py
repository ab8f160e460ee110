"""The coupons app's domain errors, with stable codes (ARCHITECTURE.md convention 6).

| code | status | raised by |
|---|---|---|
| ``validation_error`` | 422 | bad input anywhere (``ValidationFailed``, field errors) |
| ``coupon_not_found`` | 404 | void / claim / restore of an unknown code |
| ``coupon_template_inactive`` | 422 | issue, claim or batch from a stopped template |
| ``coupon_template_ended`` | 422 | issue after the template's last valid day |
| ``coupon_limit_reached`` | 422 | issue or claim beyond the per-member limit |
| ``member_inactive`` | 422 | issue or claim to a cancelled or merged member |
| ``coupon_already_used`` | 409 | redeem of a coupon another till redeemed meanwhile |
| ``coupon_unusable`` | 422 | redeem of a coupon that is void, expired, not the member's … |
| ``coupon_not_issued`` | 409 | void / claim of a coupon that is used, void or expired |
| ``coupon_already_claimed`` | 409 | claim of a printed code another member holds |
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from carecard.core.errors import Conflict, DomainError, FieldError
from carecard.coupons.rules import Rejection


class CouponError(DomainError):
    """A coupon rule refused the operation (422) with one field error."""

    def __init__(self, code: str, message: str, field: str = "", **detail: object) -> None:
        super().__init__(
            code=code,
            message=message,
            errors=[FieldError(field, code, message)] if field else [],
            status=422,
            detail=dict(detail),
        )


class CouponLimitReached(CouponError):
    def __init__(self, *, limit: int, held: int) -> None:
        super().__init__(
            "coupon_limit_reached",
            _("每人限领 %(n)d 张，该会员已有 %(h)d 张") % {"n": limit, "h": held},
            "member_id",
            limit=limit,
            held=held,
        )


class CouponAlreadyUsed(Conflict):
    """Another till redeemed the coupon between the quote and this commit."""

    def __init__(self, *, index: int, code: str) -> None:
        message = _("券 %(c)s 已被使用") % {"c": code}
        super().__init__(
            "coupon_already_used",
            message,
            errors=[FieldError(f"coupons[{index}]", "coupon_already_used", message)],
            detail={"coupon": code},
        )


class CouponUnusable(DomainError):
    """One or more coupons cannot be redeemed; each field error carries the rejection code."""

    def __init__(self, rejections: list[Rejection]) -> None:
        super().__init__(
            code="coupon_unusable",
            message=_("以下券不能使用：%(c)s")
            % {"c": "、".join(r.code or "?" for r in rejections)},
            errors=[r.as_field_error() for r in rejections],
            status=422,
        )


class CouponNotIssued(Conflict):
    def __init__(self, *, code: str, status: str, action: str) -> None:
        super().__init__(
            "coupon_not_issued",
            _("券 %(c)s 当前状态不能%(a)s") % {"c": code, "a": action},
            errors=[FieldError("code", "coupon_not_issued", _("该券已使用、作废或过期"))],
            detail={"coupon": code, "status": status},
        )
