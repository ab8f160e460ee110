"""Member merge (M-2) for coupons: coupons moved with the generic merge; the per-member quota
lock rows are unique per member and template, so only those the survivor lacks move."""

from __future__ import annotations

from typing import Any

from carecard.coupons.models import CouponQuota


def merge_quotas(*, survivor: Any, absorbed: Any) -> None:
    have = set(
        CouponQuota.objects.filter(member_id=survivor.pk).values_list("template_id", flat=True)
    )
    CouponQuota.objects.filter(member_id=absorbed.pk, template_id__in=have).delete()
    CouponQuota.objects.filter(member_id=absorbed.pk).update(member_id=survivor.pk)
