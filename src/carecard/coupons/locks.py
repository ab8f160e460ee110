"""The one place the coupons app takes row locks (ARCHITECTURE.md: lock, re-read, check, write).

Two kinds of lock, always taken in this order when a transaction needs both:

1. coupon rows (redeem, restore, void, claim), in primary-key order;
2. quota rows (``CouponQuota``: one per member and template with a per-member limit or
   issued by purchase), in primary-key order, before counting the member's coupons of the
   template.

Issue takes only quota rows; no path takes a quota row and then a coupon row, so two
transactions never wait on each other. On SQLite ``select_for_update`` is a no-op and the
``IMMEDIATE`` transaction mode serialises writers instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from carecard.coupons.models import Coupon, CouponQuota


def lock_coupons(codes: Iterable[str]) -> dict[str, Coupon]:
    """Lock the coupons with these (normalised) codes, in pk order; unknown codes are absent.
    Call inside a transaction."""
    locked = (
        Coupon.objects.filter(code__in=set(codes))
        .select_related("template")
        .order_by("pk")
        .select_for_update(of=("self",))
    )
    return {c.code: c for c in locked}


def lock_quotas(template_id: int, member_ids: Iterable[int]) -> None:
    """Create the missing quota rows of ``template_id`` for ``member_ids`` and lock them all in
    pk order. Call inside a transaction, before counting the members' coupons of the template.
    """
    ids = sorted(set(member_ids))
    if not ids:
        return
    # A concurrent first issue may create the same row: the conflict is ignored and the lock
    # below then waits for that transaction. Upsert on the unique constraint, never
    # check-then-insert.
    CouponQuota.objects.bulk_create(
        [CouponQuota(template_id=template_id, member_id=i) for i in ids], ignore_conflicts=True
    )
    list(
        CouponQuota.objects.filter(template_id=template_id, member_id__in=ids)
        .order_by("pk")
        .select_for_update(of=("self",))
        .values_list("pk", flat=True)
    )
